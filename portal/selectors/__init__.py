"""Read-only queries behind what operators see (services write, selectors read)."""
