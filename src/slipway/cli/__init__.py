"""The slipway command line: a client of the daemon's API."""
