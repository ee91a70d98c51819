"""Alembic environment: migrate on the connection :func:`oco_l3.state.upgrade_schema` hands over (its transaction)."""

from __future__ import annotations

from alembic import context

from oco_l3.state._schema import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
