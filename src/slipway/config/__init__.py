"""slipway.toml: schema (pure) and loading."""

CONFIG_FILE = "slipway.toml"
