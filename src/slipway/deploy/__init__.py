"""Deployments: a persisted state machine that moves an app from one release to another."""
