"""The application database: schema, migrations and connections."""

from mixai_ml.db.engine import database_url, get_engine
from mixai_ml.db.ensure import MigrationError
from mixai_ml.db.migrations import apply_migrations

__all__ = ["MigrationError", "apply_migrations", "database_url", "get_engine"]
