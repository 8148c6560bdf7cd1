"""Storage: table schemas, atomic Parquet parts, resumable units of work and shards."""
