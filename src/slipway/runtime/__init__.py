"""Where instances run. Kept import-light: the shim starts from here for every instance."""
