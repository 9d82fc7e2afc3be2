"""Audit detections and Falco alerts as evidence: each detection, as `kubeproof audit`
printed it, goes to the shared background writer (store/batch_writer.py) that records it
in the evidence store in batches (one `detections` ledger entry per batch,
store/detections.py), with the receiver's heartbeats, off the path that reads events.

The writer takes the printed JSON line itself (bytes already made for standard output), so
recording costs the receiver one append, and what is stored is exactly what was printed.
While the store cannot be written, detections and heartbeats stay buffered and are retried
with back-off, said on standard error at every failure and in the metrics. Past
`max_buffered` detections a new one is not buffered: each such loss is counted and logged
(the detection is still on standard output). What is buffered is written at shutdown.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import exc

from kubeproof.redaction import redact
from kubeproof.store.batch_writer import BatchWriter
from kubeproof.store.db import Store, describe
from kubeproof.store.detections import write_detections
from kubeproof.store.ledger import LedgerError
from kubeproof.store.schema import FINGERPRINT, NAME

FLUSH_INTERVAL_S = 2.0
BATCH_SIZE = 500
MAX_BUFFERED = 100_000
HEARTBEAT_INTERVAL_S = 60.0
STORE_ERRORS = (exc.SQLAlchemyError, OSError, LedgerError)
_DETECTOR = 100  # detections.detector_id


def new_run_id() -> str:
    return str(uuid.uuid4())


def _fit(text: str, limit: int) -> str:
    """Text a database column of `limit` characters takes: NUL (which PostgreSQL refuses)
    replaced, and an over-long value shortened with a digest of the whole, so that two
    long values stay apart and the same value always fits the same way."""
    text = text.replace("\x00", "\ufffd")
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    if limit < 2 * len(digest):  # no room for a readable start
        return digest[:limit]
    return f"{text[: limit - len(digest) - 1]}~{digest}"


def _time(text: Any, fallback: datetime) -> datetime:
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            pass
    return fallback


def _without_nul(value: Any) -> Any:
    """JSON with NUL characters (which PostgreSQL's json type refuses) replaced."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    return value


def detection_row(
    printed: Mapping[str, Any], *, cluster: str, run_id: str, received_at: datetime
) -> dict[str, Any]:
    """A detection as printed (`result_json`) as a row of `detections`. The evidence key
    is the first audit ID that matched, or the Falco alert's key."""
    evidence = printed.get("evidence")
    evidence = dict(evidence) if isinstance(evidence, Mapping) else {}
    subject = printed.get("subject")
    subject = subject if isinstance(subject, Mapping) else {}
    falco = evidence.get("source") == "falco"
    audit_ids = evidence.get("auditIDs")
    if falco:
        key = str(printed.get("key", ""))
    elif isinstance(audit_ids, list) and audit_ids:
        key = str(audit_ids[0])
    else:
        key = str(printed.get("key", ""))
    criteria = printed.get("criteria")
    return {
        "cluster": _fit(cluster, NAME),
        "source": "falco" if falco else "audit",
        "detector_id": _fit(str(printed.get("check", "")), _DETECTOR),
        "severity": _fit(str(printed.get("severity", "")), 10),
        "criteria": sorted(criteria) if isinstance(criteria, Mapping) else [],
        "api_version": _fit(str(subject.get("apiVersion") or ""), NAME),
        "kind": _fit(str(subject.get("kind") or ""), NAME),
        "namespace": _fit(str(subject.get("namespace") or ""), NAME),
        "name": _fit(str(subject.get("name") or ""), NAME),
        "container": _fit(str(subject.get("container") or ""), NAME),
        "fingerprint": _fit(str(printed.get("fingerprint", "")), FINGERPRINT),
        "evidence_key": _fit(redact(key), NAME),
        "observed_at": _time(evidence.get("time" if falco else "firstTime"), received_at),
        "received_at": received_at,
        "evidence": _without_nul(evidence),
        "message": _fit(str(printed.get("message", "")), 1 << 20),
        "run_id": run_id,
    }


Counters = Callable[[], dict[str, int]]


class DetectionRecorder(BatchWriter[tuple[bytes, float]]):
    """Collects printed detections (an append under a lock, from any thread) and writes
    them, and a heartbeat every `heartbeat_interval_s` when `counters` is given, from one
    background thread every `flush_interval_s` or `batch_size` detections."""

    what = "audit evidence"
    items = "detections"

    def __init__(
        self,
        store: Store,
        *,
        cluster: str,
        run_id: str,
        log: Callable[[str], None],
        counters: Counters | None = None,
        heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        batch_size: int = BATCH_SIZE,
        max_buffered: int = MAX_BUFFERED,
    ) -> None:
        super().__init__(
            store,
            thread_name="kubeproof-detection-writer",
            log=log,
            flush_interval_s=flush_interval_s,
            batch_size=batch_size,
            max_buffered=max_buffered,
        )
        self.cluster = cluster
        self.run_id = run_id
        self.counters = counters
        self.heartbeat_interval_s = heartbeat_interval_s
        self._heartbeats: list[dict[str, Any]] = []
        self._next_heartbeat = 0.0

    # -- the receiving side ------------------------------------------------------------

    def add(self, printed_line: bytes, received_at: float | None = None) -> None:
        """One detection as its printed JSON line."""
        self._append((printed_line, time.time() if received_at is None else received_at))

    def _dropped_line(self, dropped: int) -> str:
        return (
            f"audit evidence LOST: {self.max_buffered} detections wait for the store "
            f"{self.store.url}; {dropped} detections printed but not recorded so far"
        )

    def _shutdown_line(self, left: int) -> str:
        return (
            f"audit evidence LOST at shutdown: {left} detections (printed on standard "
            f"output) could not be written to {self.store.url}: {self.state.last_error}"
        )

    # -- heartbeats --------------------------------------------------------------------

    def start(self) -> DetectionRecorder:
        if self.counters is not None:
            self._heartbeat("started")
        super().start()
        return self

    def _wait_s(self) -> float:
        wait = super()._wait_s()
        if self.counters is not None:
            wait = min(wait, max(0.0, self._next_heartbeat - time.monotonic()))
        return wait

    def _tick(self) -> None:
        if self.counters is not None and time.monotonic() >= self._next_heartbeat:
            self._heartbeat("alive")

    def _closing(self) -> None:
        if self.counters is not None:
            self._heartbeat("stopped")

    def _heartbeat(self, state: str) -> None:
        assert self.counters is not None
        self._next_heartbeat = time.monotonic() + self.heartbeat_interval_s
        counters = dict(self.counters())
        counters["pending_detections"] = self.pending
        counters["store_failures"] = self.state.failures
        counters["detections_lost"] = self.state.dropped
        with self._lock:
            self._heartbeats.append(
                {
                    "cluster": _fit(self.cluster, NAME),
                    "run_id": self.run_id,
                    "at": datetime.now(UTC),
                    "state": state,
                    "interval_s": max(1, round(self.heartbeat_interval_s)),
                    "counters": dict(sorted(counters.items())),
                }
            )

    def _unwritten(self) -> bool:
        with self._lock:
            return bool(self._heartbeats)

    def _buffered(self) -> str:
        with self._lock:
            heartbeats = len(self._heartbeats)
        return f"{self.pending} detections and {heartbeats} heartbeats"

    # -- the writing side --------------------------------------------------------------

    def _write(self, batch: Sequence[tuple[bytes, float]]) -> int:
        """The batch and every heartbeat waiting, in one transaction."""
        with self._lock:
            beats = list(self._heartbeats)
        rows = [
            detection_row(
                orjson.loads(line),
                cluster=self.cluster,
                run_id=self.run_id,
                received_at=datetime.fromtimestamp(at, UTC),
            )
            for line, at in batch
        ]
        try:
            with self.store.writing() as session:
                written = write_detections(session, rows, beats, datetime.now(UTC))
        except STORE_ERRORS as error:
            text = describe(error) if isinstance(error, exc.DBAPIError) else redact(str(error))
            self._failed(text or type(error).__name__)
            return 0
        with self._lock:
            del self._heartbeats[: len(beats)]
        self._succeeded()
        if written is not None:
            self.state.recorded += written.detections
            self.state.duplicates += written.duplicates
            self.state.batches += 1
        return len(batch)

    def metrics_lines(self) -> list[str]:
        state = self.state
        return self._metric_lines(
            "kubeproof_audit_evidence",
            "Detections waiting to be written to the evidence store.",
            (
                ("recorded", "Detections written to the evidence store.", state.recorded),
                (
                    "duplicates",
                    "Detections the store already held: not written again.",
                    state.duplicates,
                ),
                ("batches", "Ledger entries (batches of detections) written.", state.batches),
                ("write_failures", "Failed attempts to write a batch.", state.failures),
                ("dropped", "Detections not recorded because the buffer was full.", state.dropped),
            ),
        )


@dataclass(frozen=True)
class Recorded:
    detections: int
    duplicates: int
    entries: list[int]


def record_printed(
    store: Store, printed: list[dict[str, Any]], *, cluster: str, run_id: str
) -> Recorded:
    """Record detections at once (`audit scan`), in batches of BATCH_SIZE, each with its
    ledger entry; a store error propagates (what was written before it stays)."""
    now = datetime.now(UTC)
    rows = [detection_row(p, cluster=cluster, run_id=run_id, received_at=now) for p in printed]
    new = duplicates = 0
    entries: list[int] = []
    for start in range(0, len(rows), BATCH_SIZE):
        with store.writing() as session:
            written = write_detections(session, rows[start : start + BATCH_SIZE], [], now)
        if written is None:
            duplicates += len(rows[start : start + BATCH_SIZE])
            continue
        new += written.detections
        duplicates += written.duplicates
        entries.append(written.ledger_seq)
    return Recorded(new, duplicates, entries)
