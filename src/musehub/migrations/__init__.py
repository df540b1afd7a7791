"""Alembic migrations of the hub's database (applied by ``musehub.db.migrate``)."""
