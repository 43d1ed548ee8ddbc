"""Faults of a fleet under steady load through its virtual address: an lb host killed or cut
off, an app host killed or cut off, the control plane lost and restored; against a plain
HAProxy in front of the same instances (`python -m bench.faults`)."""
