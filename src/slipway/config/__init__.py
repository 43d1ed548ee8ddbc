"""slipway.toml: schema (pure) and loading."""
