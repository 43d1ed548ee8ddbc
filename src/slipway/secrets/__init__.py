"""Secrets: app config values stored encrypted, never in plain text."""
