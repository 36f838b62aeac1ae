"""Outside systems behind small Protocols: each has a real implementation and an in-memory twin."""
