"""The evidence store: scans, results, findings over time and a tamper-evident ledger,
in SQLite (default) or PostgreSQL. See docs/store.md.

Kept free of imports: `kubeproof scan` checks for $KUBEPROOF_DB on every run, and must
not pay for loading SQLAlchemy unless it records. Use kubeproof.store.db (open_store),
kubeproof.store.record (record_scan), kubeproof.store.ledger (verify) and
kubeproof.store.findings (list_findings, subject_history).
"""

ENVIRONMENT_VARIABLE = "KUBEPROOF_DB"
