"""The evidence store: scans, results, findings over time and a tamper-evident ledger,
in SQLite (default) or PostgreSQL. See docs/store.md.

Kept free of imports: `kubeproof scan` checks for $KUBEPROOF_DB on every run, and must
not pay for loading SQLAlchemy unless it records. Use kubeproof.store.db (open_store),
kubeproof.store.record (record_scan), kubeproof.store.ledger (verify) and
kubeproof.store.findings (list_findings, subject_history).
"""

ENVIRONMENT_VARIABLE = "KUBEPROOF_DB"


# Here rather than in kubeproof.store.db, so that the command line can catch them
# without importing SQLAlchemy.
class StoreError(Exception):
    """The store cannot be used as asked: bad URL, unreachable database, broken schema.
    The message names the database without its password."""


class DamagedStore(StoreError):
    """A stored row cannot be decoded: the store was damaged or tampered with."""
