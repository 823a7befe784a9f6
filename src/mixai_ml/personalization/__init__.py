"""Per-user adapters: fitting them, evaluating them as production would use them, their store."""
