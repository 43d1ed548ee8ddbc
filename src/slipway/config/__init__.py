"""slipway.toml: schema (pure) and loading."""

import re

CONFIG_FILE = "slipway.toml"
# An app's name (the schema checks it; kept here, free of pydantic, for the CLI's read path)
APP_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
