"""A recoverable control plane: its home copied, encrypted, to another host, and restored."""
