"""slipway: put web services into production on your own Linux servers, safely."""

__version__ = "0.1.0"
