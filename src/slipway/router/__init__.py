"""The data plane (HAProxy) and the code that drives it."""
