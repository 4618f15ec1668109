"""verdict_cache component."""
