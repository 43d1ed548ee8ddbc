"""Per-request data from HAProxy, per release per second."""
