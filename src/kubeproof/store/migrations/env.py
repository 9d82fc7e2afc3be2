"""Alembic environment: kubeproof always hands in an open connection (see migrate.py)."""

from __future__ import annotations

from alembic import context

from kubeproof.store.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through kubeproof.store.migrate, which passes a connection")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
