"""Code-only deploys of examples/hello: with the virtualenv reused (the default) against
`[build] reuse = false` (every release built anew, as before), in the same run."""
