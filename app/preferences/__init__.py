"""Per-user delivery preferences by category and channel."""
