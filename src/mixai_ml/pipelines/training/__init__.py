"""``training``: governance-filtered inputs and each task's model."""
