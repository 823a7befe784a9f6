"""``evaluation``: held-out metrics against the baselines and the active model; promotion."""
