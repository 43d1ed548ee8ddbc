"""CLI start-up: how long `slipway status`, `ps`, `hosts`, `--version` take as processes, next
to `python -c pass` in the same run."""
