"""Benchmarks: each runnable with one command that prints a results table."""
