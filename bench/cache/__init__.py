"""bench/cache: requests/s and p99 of a cacheable path through HAProxy, with and without
[edge.cache], in the same run (see bench/README.md)."""
