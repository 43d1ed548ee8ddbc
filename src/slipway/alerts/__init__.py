"""Alerts: rule evaluation state and the notifiers that tell people about it."""
