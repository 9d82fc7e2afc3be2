"""The evidence store's tables (SQLAlchemy 2 typed ORM). Changing them needs an Alembic
revision under migrations/versions/.

Append-only evidence: `scans` and `results` are written once, and each scan is covered by
an entry of the hash-chained `ledger`. `subjects`, `findings` and `finding_events` are the
current state and its history, derived from the scans in the order they were recorded.
Exceptions (risk acceptances) and their revocations are evidence too: written once and
chained in the same ledger (revision 0002). `scan_check_counts` and `scan_subject_counts`
(revision 0004) summarise each scan's results for the period report: derived data, written
with the scan and left out of the ledger.

Namespaces and containers are stored as "" when absent, so that unique keys over them
behave the same on every database (NULLs never compare equal).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from kubeproof.store.decoding import StoredDate, StoredJSON, StoredTime, name_columns

NAME = 253  # a Kubernetes name's maximum length
FINGERPRINT = 32
DIGEST = 64


def _time() -> Any:
    return StoredTime(timezone=True)


class Base(DeclarativeBase):
    pass


class ScanRow(Base):
    """One recorded scan: where, when, by what, and how much of the source could be read."""

    __tablename__ = "scans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster: Mapped[str] = mapped_column(String(NAME), index=True)
    sources: Mapped[list[str]] = mapped_column(StoredJSON)
    framework: Mapped[str] = mapped_column(String(100))
    catalogue_digest: Mapped[str] = mapped_column(String(DIGEST))
    tool_version: Mapped[str] = mapped_column(String(50))
    pss_version: Mapped[str | None] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(_time())
    finished_at: Mapped[datetime | None] = mapped_column(_time())
    recorded_at: Mapped[datetime] = mapped_column(_time())
    objects: Mapped[int] = mapped_column(Integer)
    files: Mapped[int] = mapped_column(Integer)
    # [{kind, state, detail}] sorted by kind; kinds not listed are complete when
    # coverage_complete_by_default (files) and unread otherwise (a cluster).
    coverage: Mapped[list[dict[str, str]]] = mapped_column(StoredJSON)
    coverage_complete_by_default: Mapped[bool]
    input_errors: Mapped[int] = mapped_column(Integer)
    result_count: Mapped[int] = mapped_column(Integer)
    totals: Mapped[dict[str, int]] = mapped_column(StoredJSON)


class ResultRow(Base):
    """One result of one check for one subject in one scan, as the engine judged it."""

    __tablename__ = "results"
    __table_args__ = (Index("ix_results_scan_fingerprint", "scan_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"))
    fingerprint: Mapped[str] = mapped_column(String(FINGERPRINT), index=True)
    check_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    severity: Mapped[str] = mapped_column(String(10))
    api_version: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(NAME))
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    container: Mapped[str] = mapped_column(String(NAME))
    message: Mapped[str] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    location_file: Mapped[str | None] = mapped_column(Text)
    location_line: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any] | None] = mapped_column(StoredJSON)


class SubjectRow(Base):
    """A subject (top-owner workload, namespace, object) as seen over time in a cluster."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("cluster", "kind", "namespace", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(NAME))
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    first_seen: Mapped[datetime] = mapped_column(_time())
    first_scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"))
    last_seen: Mapped[datetime] = mapped_column(_time())
    last_scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"))
    # Set when a scan that could read the subject's whole kind no longer found it.
    deleted_at: Mapped[datetime | None] = mapped_column(_time())
    deleted_scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id"))
    # The top owner's metadata.uid and labels (its own and its pod template's, redacted
    # like every stored text) as last seen by a scan (revision 0005); None if never seen.
    uid: Mapped[str | None] = mapped_column(String(NAME))
    labels: Mapped[dict[str, str] | None] = mapped_column(StoredJSON)


class FindingRow(Base):
    """A failing (check, subject) in a cluster, from the scan that first saw it fail to
    the scan that saw it pass (resolved) or its subject gone (deleted)."""

    __tablename__ = "findings"
    __table_args__ = (
        UniqueConstraint("cluster", "fingerprint"),
        Index("ix_findings_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster: Mapped[str] = mapped_column(String(NAME))
    fingerprint: Mapped[str] = mapped_column(String(FINGERPRINT))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"), index=True)
    check_id: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(NAME))
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    container: Mapped[str] = mapped_column(String(NAME))
    state: Mapped[str] = mapped_column(String(10))  # open | resolved | deleted
    first_seen: Mapped[datetime] = mapped_column(_time())
    first_scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"))
    last_seen: Mapped[datetime] = mapped_column(_time())  # last scan that saw it fail
    last_scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"))
    last_status: Mapped[str] = mapped_column(String(20))  # in the latest scan that judged it
    message: Mapped[str] = mapped_column(Text)  # the latest failing message (redacted)
    closed_at: Mapped[datetime | None] = mapped_column(_time())
    closed_scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id"))
    reopened: Mapped[int] = mapped_column(Integer, default=0)


class FindingEventRow(Base):
    """What a scan did to a finding: opened, reopened, resolved or deleted."""

    __tablename__ = "finding_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id"), index=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"))
    at: Mapped[datetime] = mapped_column(_time())
    event: Mapped[str] = mapped_column(String(10))


class LedgerEntryRow(Base):
    """One link of the hash chain: entry_hash = SHA-256(canonical content, prev_hash)."""

    __tablename__ = "ledger"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entry_type: Mapped[str] = mapped_column(String(20))  # scan, exception, exception_revoked
    scan_id: Mapped[int | None] = mapped_column(ForeignKey("scans.id"), unique=True)
    exception_id: Mapped[int | None] = mapped_column(ForeignKey("exceptions.id"), unique=True)
    revocation_id: Mapped[int | None] = mapped_column(
        ForeignKey("exception_revocations.id"), unique=True
    )
    recorded_at: Mapped[datetime] = mapped_column(_time())
    prev_hash: Mapped[str] = mapped_column(String(DIGEST))
    entry_hash: Mapped[str] = mapped_column(String(DIGEST), unique=True)
    # Ed25519 over the entry hash when a signing key was given (revision 0005): the
    # signature in hex and the signing key's id (never the key).
    signature: Mapped[str | None] = mapped_column(String(128))
    key_id: Mapped[str | None] = mapped_column(String(DIGEST))


class LedgerHeadRow(Base):
    """The single row writers lock to append in turn; it also remembers the newest entry,
    so that dropping the last entries is detected too."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    entry_hash: Mapped[str] = mapped_column(String(DIGEST))


class ExceptionRow(Base):
    """An accepted risk: failing checks on some subjects, accepted by an owner until a
    date. Written once; revoking adds an ExceptionRevocationRow. Each is chained in the
    ledger. Scope fields combine with AND; empty lists mean "not narrowed by this"."""

    __tablename__ = "exceptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checks: Mapped[list[str]] = mapped_column(StoredJSON)  # check ids or shell globs
    subjects: Mapped[list[str]] = mapped_column(StoredJSON)  # Kind/namespace/name[container]
    namespaces: Mapped[list[str]] = mapped_column(StoredJSON)
    selector: Mapped[dict[str, Any] | None] = mapped_column(StoredJSON)  # a LabelSelector
    owner: Mapped[str] = mapped_column(String(NAME))
    reason: Mapped[str] = mapped_column(Text)
    ticket: Mapped[str | None] = mapped_column(String(NAME))
    approver: Mapped[str | None] = mapped_column(String(NAME))
    created_at: Mapped[datetime] = mapped_column(_time())
    # Holds until the start (00:00 UTC) of this date; expired on it.
    expires_on: Mapped[date] = mapped_column(StoredDate, index=True)


class ExceptionRevocationRow(Base):
    """An exception withdrawn before its expiry: by whom, when and why."""

    __tablename__ = "exception_revocations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exception_id: Mapped[int] = mapped_column(ForeignKey("exceptions.id"), unique=True)
    revoked_at: Mapped[datetime] = mapped_column(_time())
    revoked_by: Mapped[str] = mapped_column(String(NAME))
    reason: Mapped[str] = mapped_column(Text)


def table_of(model: type[Base]) -> Table:
    """The Core table of a model: bulk inserts through Core skip the ORM's per-row work."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class AgentTransitionRow(Base):
    """A verdict the agent saw change between two scans (revision 0003): newly failing,
    resolved, changed (still failing, differently) or deleted, when it was observed, and a
    redacted diff of the judged fields of the object whose change caused it. Findings
    themselves still move only with recorded scans."""

    __tablename__ = "agent_transitions"
    __table_args__ = (Index("ix_agent_transitions_cluster_observed", "cluster", "observed_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(NAME))
    run_id: Mapped[str] = mapped_column(String(36))
    observed_at: Mapped[datetime] = mapped_column(_time())  # the watch event arrived
    recorded_at: Mapped[datetime] = mapped_column(_time())
    transition: Mapped[str] = mapped_column(String(10))  # failing|resolved|changed|deleted
    fingerprint: Mapped[str] = mapped_column(String(FINGERPRINT), index=True)
    check_id: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(NAME))
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    container: Mapped[str] = mapped_column(String(NAME))
    status_before: Mapped[str | None] = mapped_column(String(20))
    status_after: Mapped[str | None] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)  # redacted
    cause: Mapped[str] = mapped_column(Text)  # the changed object: Kind/namespace/name
    diff: Mapped[list[dict[str, Any]] | None] = mapped_column(StoredJSON)  # redacted
    # Who made the change, from the audit event that wrote the cause (revision 0007);
    # None when no audit data was given or no event matched.
    actor_user: Mapped[str | None] = mapped_column(Text)
    actor_verb: Mapped[str | None] = mapped_column(String(20))
    actor_time: Mapped[datetime | None] = mapped_column(_time())
    actor_source_ip: Mapped[str | None] = mapped_column(String(64))
    actor_audit_id: Mapped[str | None] = mapped_column(String(64))
    # The ledger entry that chains this row (revision 0007; None for rows written before).
    ledger_seq: Mapped[int | None] = mapped_column(Integer, index=True)


class AgentHeartbeatRow(Base):
    """The agent was alive and watching at `at` (revision 0003): gaps between heartbeats
    longer than the interval are gaps in monitoring."""

    __tablename__ = "agent_heartbeats"
    __table_args__ = (Index("ix_agent_heartbeats_cluster_at", "cluster", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    cluster: Mapped[str] = mapped_column(String(NAME))
    run_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(_time())
    state: Mapped[str] = mapped_column(String(10))  # started | alive | stopped
    interval_s: Mapped[int] = mapped_column(Integer)
    counters: Mapped[dict[str, int]] = mapped_column(StoredJSON)
    ledger_seq: Mapped[int | None] = mapped_column(Integer, index=True)  # as transitions
    # Who was alive (revision 0008): the agent, or an audit receiver (`kubeproof audit
    # follow|serve`), whose heartbeats its `detections` entries chain.
    component: Mapped[str] = mapped_column(String(10), default="agent", server_default="agent")


class ScanCheckCountRow(Base):
    """How many results of one scan had one check and status (and, for not_evaluated, one
    reason): the period report reads these instead of every result (revision 0004)."""

    __tablename__ = "scan_check_counts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"), index=True)
    check_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)  # only for not_evaluated
    results: Mapped[int] = mapped_column(Integer)


class ScanSubjectCountRow(Base):
    """One subject (kind, namespace, top-owner name) in one scan: its results counted by
    status, from which the report draws per-workload timelines (revision 0004)."""

    __tablename__ = "scan_subject_counts"

    scan_id: Mapped[int] = mapped_column(ForeignKey("scans.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    results: Mapped[int] = mapped_column(Integer)
    fail: Mapped[int] = mapped_column(Integer)
    not_evaluated: Mapped[int] = mapped_column(Integer)
    excepted: Mapped[int] = mapped_column(Integer)


class AdmissionBatchRow(Base):
    """Admission decisions the webhook recorded together (revision 0006): one ledger entry
    covers the batch and a digest over every decision in it. The batch names its ledger
    entry (not the other way round), so the ledger table needs no column per evidence kind."""

    __tablename__ = "admission_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ledger_seq: Mapped[int] = mapped_column(ForeignKey("ledger.seq"), unique=True)
    cluster: Mapped[str] = mapped_column(String(NAME), index=True)
    webhook: Mapped[str] = mapped_column(String(NAME))  # the instance that decided
    recorded_at: Mapped[datetime] = mapped_column(_time())
    first_decided_at: Mapped[datetime] = mapped_column(_time())
    last_decided_at: Mapped[datetime] = mapped_column(_time())
    decisions: Mapped[int] = mapped_column(Integer)


class AdmissionDecisionRow(Base):
    """One admission decision: who asked to do what to which object, the images (by
    digest where pinned), every rule judged with its outcome, and the answer. Identities
    and digests only: an object's body is never stored (revision 0006)."""

    __tablename__ = "admission_decisions"
    __table_args__ = (Index("ix_admission_decisions_decided_at", "decided_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("admission_batches.id"), index=True)
    uid: Mapped[str] = mapped_column(String(NAME))  # the AdmissionReview request uid
    decided_at: Mapped[datetime] = mapped_column(_time())
    username: Mapped[str] = mapped_column(Text)
    groups: Mapped[list[str]] = mapped_column(StoredJSON)
    operation: Mapped[str] = mapped_column(String(20))
    api_group: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(NAME))
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))  # "" when only generateName was set
    owner_kind: Mapped[str] = mapped_column(String(NAME))  # top owner where known, else ""
    owner_name: Mapped[str] = mapped_column(String(NAME))
    images: Mapped[list[dict[str, Any]]] = mapped_column(StoredJSON)  # {container, image, digest}
    rules: Mapped[list[dict[str, Any]]] = mapped_column(StoredJSON)  # {check, outcome[, exception]}
    decision: Mapped[str] = mapped_column(String(20))  # allowed | denied | warned | audited ...
    allowed: Mapped[bool]
    mode: Mapped[str] = mapped_column(String(10))
    dry_run: Mapped[bool]
    policy_digest: Mapped[str] = mapped_column(String(DIGEST))
    reason: Mapped[str] = mapped_column(Text)  # redacted


class BaselineRow(Base):
    """An approved baseline of a workload, or its revocation (revision 0007): the
    security-relevant fields of its pod spec as approved, their digest, who decided, why,
    and the ledger entry that chains every row of that one decision. Written once; the
    newest row of a workload says what is approved now."""

    __tablename__ = "baselines"
    __table_args__ = (Index("ix_baselines_subject", "cluster", "kind", "namespace", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ledger_seq: Mapped[int] = mapped_column(ForeignKey("ledger.seq"), index=True)
    cluster: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(NAME))
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(10))  # approved | revoked
    digest: Mapped[str | None] = mapped_column(String(DIGEST))  # of the approved spec
    spec: Mapped[dict[str, Any] | None] = mapped_column(StoredJSON)  # redacted; None when revoked
    decided_by: Mapped[str] = mapped_column(String(NAME))
    reason: Mapped[str] = mapped_column(Text)
    ticket: Mapped[str | None] = mapped_column(String(NAME))
    decided_at: Mapped[datetime] = mapped_column(_time())


class DetectionRow(Base):
    """One audit detection or Falco alert as `kubeproof audit` printed it (revision 0008):
    the detector, its subject, the evidence key that makes a re-sent batch idempotent, and
    the redacted evidence. Written once, in batches each chained by one `detections`
    ledger entry that the row names."""

    __tablename__ = "detections"
    __table_args__ = (
        UniqueConstraint("cluster", "detector_id", "evidence_key"),
        Index("ix_detections_cluster_observed", "cluster", "observed_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ledger_seq: Mapped[int] = mapped_column(ForeignKey("ledger.seq"), index=True)
    cluster: Mapped[str] = mapped_column(String(NAME))
    source: Mapped[str] = mapped_column(String(10))  # audit | falco
    detector_id: Mapped[str] = mapped_column(String(100))
    severity: Mapped[str] = mapped_column(String(10))
    criteria: Mapped[list[str]] = mapped_column(StoredJSON)
    api_version: Mapped[str] = mapped_column(String(NAME))
    kind: Mapped[str] = mapped_column(String(NAME))  # User, ServiceAccount, a workload, Node
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    container: Mapped[str] = mapped_column(String(NAME))
    fingerprint: Mapped[str] = mapped_column(String(FINGERPRINT))
    evidence_key: Mapped[str] = mapped_column(String(NAME))  # first audit ID, or Falco's key
    observed_at: Mapped[datetime] = mapped_column(_time())  # the first matching event
    received_at: Mapped[datetime] = mapped_column(_time())  # when kubeproof saw it
    evidence: Mapped[dict[str, Any]] = mapped_column(StoredJSON)  # redacted, as printed
    message: Mapped[str] = mapped_column(Text)  # redacted
    run_id: Mapped[str] = mapped_column(String(36))  # the receiver run that recorded it


# So that a value that cannot be decoded is reported with its table and column.
name_columns(Base.metadata)
