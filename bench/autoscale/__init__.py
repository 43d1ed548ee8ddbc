"""Autoscaling under a load ramp, against a fixed minimum and a fixed maximum count (issue 16);
`python -m bench.autoscale`."""
