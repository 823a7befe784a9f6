"""``ingest``: the service's leftover journals into ``model_metrics`` / ``ab_test_assignments``."""
