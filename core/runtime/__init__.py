"""The long-running core: tiers, ingestion guard, buffered output, hot reload, status."""
