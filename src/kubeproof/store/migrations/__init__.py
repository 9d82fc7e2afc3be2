"""Alembic migrations of the evidence store (run by kubeproof.store.migrate)."""
