"""SQLite state: apps, releases, instances, deployments and their events."""
