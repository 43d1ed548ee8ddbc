"""Managed databases: PostgreSQL on a host of the fleet, run by that host's agent, with
continuous archiving and verified backups through pgBackRest."""
