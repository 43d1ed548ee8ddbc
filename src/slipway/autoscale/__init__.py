"""Autoscaling: how many instances of a process type follow what users feel."""
