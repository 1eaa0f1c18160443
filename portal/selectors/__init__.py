"""Read-only queries: selectors read, services write."""
