"""Alembic migrations of the state schema (run by :func:`oco_l3.state.upgrade_schema` when a database is opened)."""
