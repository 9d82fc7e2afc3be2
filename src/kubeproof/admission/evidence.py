"""Admission decisions as evidence: each decision becomes a row of identities and digests
(never the object's body), handed to the shared background writer (store/batch_writer.py)
that records them in the evidence store in batches, one ledger entry per batch, off the
request path.

The writer's buffer is bounded. While the store cannot be written, decisions stay in it
and are retried with back-off; the webhook says so on every channel it has (a log line
per failure, metrics, and /readyz). Only a full buffer loses decisions, and each one lost
is counted and logged. On shutdown the buffer is flushed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import exc

from kubeproof.admission.decide import Decision, RuleOutcome
from kubeproof.admission.review import AdmissionRequest
from kubeproof.inventory.objects import as_dict
from kubeproof.inventory.workloads import POD_SPEC_PATHS, containers_of
from kubeproof.redaction import redact
from kubeproof.risk_acceptance import RiskException
from kubeproof.store.batch_writer import BatchWriter
from kubeproof.store.db import Store, describe
from kubeproof.store.decisions import record_batch

FLUSH_INTERVAL_S = 2.0
BATCH_SIZE = 500
MAX_BUFFERED = 50_000
EXCEPTIONS_REFRESH_S = 60.0


def decision_values(
    request: AdmissionRequest,
    decision: Decision,
    policy_digest: str,
    decided_at: datetime,
    image_digest: Callable[[str], str | None] | None = None,
) -> dict[str, Any]:
    """What one decision records: identities and digests only. `image_digest` names the
    digest of an image reference (Decider.image_digest); by default only pinned ones."""
    owner = decision.owner or ("", "")
    return {
        "uid": request.uid,
        "decided_at": decided_at,
        "username": request.username,
        "groups": list(request.groups),
        "operation": request.operation,
        "api_group": request.group,
        "kind": request.kind,
        "namespace": request.namespace,
        "name": request.name or _object_name(request),
        "owner_kind": owner[0],
        "owner_name": owner[1],
        "images": request_images(request, image_digest or _pinned_digest),
        "rules": _rules(decision.judged),
        "decision": decision.outcome,
        "allowed": decision.allowed,
        "mode": decision.mode,
        "dry_run": request.dry_run,
        "policy_digest": policy_digest,
        "reason": decision.reason,
    }


# Most decisions under one policy judge the same rules with the same outcomes: they share
# one (never mutated) list, so a full buffer costs about 1 KiB per decision, not 5.
_SHARED_RULES: dict[tuple[RuleOutcome, ...], list[dict[str, str]]] = {}


def _rules(judged: tuple[RuleOutcome, ...]) -> list[dict[str, str]]:
    shared = _SHARED_RULES.get(judged)
    if shared is None:
        shared = [
            {"check": r.check_id, "outcome": r.outcome}
            | ({"exception": r.exception_id} if r.exception_id else {})
            for r in judged
        ]
        if len(_SHARED_RULES) >= 1000:
            _SHARED_RULES.clear()
        _SHARED_RULES[judged] = shared
    return shared


def _object_name(request: AdmissionRequest) -> str:
    metadata = as_dict(as_dict(request.obj).get("metadata"))
    name = metadata.get("name")
    return name if isinstance(name, str) else ""


def _pinned_digest(image: str) -> str | None:
    return image.rsplit("@", 1)[1] if "@" in image else None


def request_images(
    request: AdmissionRequest, image_digest: Callable[[str], str | None] = _pinned_digest
) -> list[dict[str, Any]]:
    """Each container's image reference and its digest, where known."""
    keys = POD_SPEC_PATHS.get(request.kind)
    if keys is None:
        return []
    template: Any = request.obj
    for key in keys:
        template = as_dict(template).get(key)
    images = []
    for container in containers_of(as_dict(as_dict(template).get("spec"))):
        image = container.image
        digest = image_digest(image) if image else None
        images.append({"container": container.name, "image": redact(image), "digest": digest})
    return images


class DecisionRecorder(BatchWriter[dict[str, Any]]):
    """Collects decision rows on the request path (an append under a lock) and writes
    them from one background thread, every `flush_interval_s` or `batch_size` rows."""

    what = "admission evidence"
    items = "decisions"

    def __init__(
        self,
        store: Store,
        *,
        cluster: str,
        webhook: str,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        batch_size: int = BATCH_SIZE,
        max_buffered: int = MAX_BUFFERED,
        log: Callable[[str], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(
            store,
            thread_name="kubeproof-decision-writer",
            log=log,
            flush_interval_s=flush_interval_s,
            batch_size=batch_size,
            max_buffered=max_buffered,
        )
        self.cluster = cluster
        self.webhook = webhook
        self._clock = clock

    def add(self, values: dict[str, Any]) -> None:
        """One decision's row (`decision_values`)."""
        self._append(values)

    def _dropped_line(self, dropped: int) -> str:
        return (
            f"admission evidence LOST: the buffer holds {self.max_buffered} decisions "
            f"the store has not taken; {dropped} decisions dropped so far"
        )

    def _shutdown_line(self, left: int) -> str:
        return (
            f"admission evidence LOST at shutdown: {left} decisions could not be written "
            f"to {self.store.url}: {self.state.last_error}"
        )

    def _write(self, batch: Sequence[dict[str, Any]]) -> int:
        try:
            record_batch(
                self.store,
                batch,
                cluster=self.cluster,
                webhook=self.webhook,
                recorded_at=self._clock(),
            )
        except (exc.SQLAlchemyError, OSError, ValueError, TypeError) as error:
            if not _refused(error):
                self._failed(_why(error))
                return 0
            # Retrying would fail forever and hold back every decision behind it: write the
            # batch's decisions one by one, and lose (loudly) only those that cannot be.
            return self._write_one_by_one(batch, error) if len(batch) > 1 else self._lost(error)
        self._succeeded()
        self.state.recorded += len(batch)
        self.state.batches += 1
        return len(batch)

    def _write_one_by_one(self, batch: Sequence[dict[str, Any]], error: Exception) -> int:
        self._log(f"admission evidence: a batch was refused ({_why(error)}); writing it one by one")
        for index, decision in enumerate(batch):
            if not self._write([decision]):
                return index  # the store itself failed: the rest stays buffered
        return len(batch)

    def _lost(self, error: Exception) -> int:
        """A decision the store refuses whatever happens: counted, logged, dropped."""
        self.state.dropped += 1
        self._log(
            f"admission evidence LOST: the store refused a decision ({_why(error)}); "
            f"{self.state.dropped} decisions dropped so far"
        )
        return 1

    def render_metrics(self) -> str:
        state = self.state
        lines = self._metric_lines(
            "kubeproof_admission_evidence",
            "Decisions waiting to be written to the evidence store.",
            (
                ("recorded", "Decisions written to the evidence store.", state.recorded),
                ("batches", "Ledger entries (batches of decisions) written.", state.batches),
                ("write_failures", "Failed attempts to write a batch.", state.failures),
                ("dropped", "Decisions lost because the buffer was full.", state.dropped),
            ),
        )
        return "\n".join(lines) + "\n"


def _refused(error: Exception) -> bool:
    """An error retrying cannot cure: the data itself was refused (by the database, or
    while turning it into parameters), not the connection or the server."""
    if isinstance(error, (exc.DataError, exc.IntegrityError, ValueError, TypeError)):
        return True
    return isinstance(error, exc.StatementError) and not isinstance(error, exc.DBAPIError)


def _why(error: Exception) -> str:
    return describe(error) if isinstance(error, exc.DBAPIError) else type(error).__name__


class StoreExceptions:
    """The store's exceptions (not revoked), re-read every `interval_s` seconds on a
    background thread. A failed read keeps the last good set and says so: an exception
    granted meanwhile applies late, one revoked meanwhile stops applying late (by at
    most the interval while the store answers)."""

    def __init__(
        self,
        store: Store,
        *,
        interval_s: float = EXCEPTIONS_REFRESH_S,
        log: Callable[[str], None],
    ) -> None:
        self.store = store
        self.interval_s = interval_s
        self._log = log
        self._current: tuple[RiskException, ...] = ()
        self._stopping = threading.Event()
        self.loaded_at: datetime | None = None
        self._thread = threading.Thread(target=self._run, name="kubeproof-exceptions", daemon=True)

    def __call__(self) -> Sequence[RiskException]:
        return self._current

    def refresh(self) -> bool:
        from kubeproof.risk_acceptance import ExceptionSpecError
        from kubeproof.store.exceptions import scan_exceptions

        now = datetime.now(UTC)
        try:
            self._current = tuple(scan_exceptions(self.store, now=now))
        except (exc.SQLAlchemyError, OSError, ExceptionSpecError) as error:
            text = describe(error) if isinstance(error, exc.DBAPIError) else str(error)
            self._log(
                f"admission exceptions: cannot re-read them from {self.store.url}: "
                f"{redact(text)}; keeping the {len(self._current)} read before"
            )
            return False
        self.loaded_at = now
        return True

    def start(self) -> StoreExceptions:
        self.refresh()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.refresh()

    def close(self) -> None:
        self._stopping.set()
