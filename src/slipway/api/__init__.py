"""The daemon's HTTP API."""

API_PREFIX = "/v1"
