"""Zero-downtime deploys under load: slipway's blue-green deploys and warm rollbacks against a
naive stop-then-start deploy, measured in the same run. `python -m bench.zero_downtime`."""
