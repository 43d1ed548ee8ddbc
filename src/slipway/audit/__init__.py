"""The audit log: who did what, when, from where and with what outcome, hash-chained."""
