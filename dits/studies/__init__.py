"""Studies built on the library: the replication study and the influence validity experiments."""
