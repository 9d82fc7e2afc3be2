"""What the agent writes to the evidence store: transitions, heartbeats, and scans.

Nothing is dropped when the database is unavailable: transitions and heartbeats wait in
memory, in order, and go in with the next write that succeeds; scans are judged again
from the cache when they can be recorded. Every failed attempt says so on stderr. Past
`max_pending` rows waiting, the agent stops (a loud failure) rather than grow without
bound, and whatever is still waiting is written to stderr as JSON lines.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import exc

from kubeproof.agent.attribution import NO_ACTOR
from kubeproof.agent.reevaluate import Transition, judged_diff
from kubeproof.agent.state import Change
from kubeproof.inventory import Inventory
from kubeproof.redaction import redact
from kubeproof.scan import ScanReport
from kubeproof.store.db import Store, describe
from kubeproof.store.ledger import LedgerError
from kubeproof.store.monitoring import write_monitoring
from kubeproof.store.record import Recorded, present_subjects, record_scan, subject_identities

MAX_PENDING = 100_000
# A damaged ledger (its head row gone) is reported and retried like an unreachable store.
STORE_ERRORS = (exc.SQLAlchemyError, OSError, LedgerError)


FULL_EVALUATION = "full evaluation"  # the cause of a transition no single change explains


def transition_row(
    transition: Transition,
    cause: Change | None,
    cluster: str,
    run_id: str,
    observed_at: datetime,
    *,
    why: str = "",
) -> dict[str, Any]:
    """A transition as a row; `cause` is the object change that moved it (None when a
    full evaluation or `why`, such as a baseline decision, did). Who made the change is
    filled in later, when audit data shows it."""
    result = transition.result
    subject = result.subject
    return {
        "cluster": cluster,
        "run_id": run_id,
        "observed_at": observed_at,
        "recorded_at": observed_at,  # set again when written
        "transition": transition.transition,
        "fingerprint": transition.fingerprint,
        "check_id": result.check.id,
        "severity": result.check.severity.value,
        "kind": subject.kind,
        "namespace": subject.namespace or "",
        "name": subject.name,
        "container": subject.container or "",
        "status_before": transition.before.value if transition.before else None,
        "status_after": transition.after.value if transition.after else None,
        "message": redact(result.message),
        "cause": str(cause.current.subject) if cause else why or FULL_EVALUATION,
        "diff": (judged_diff(cause.before, cause.after) or None) if cause else None,
        **NO_ACTOR,
    }


class AgentRecorder:
    def __init__(
        self,
        store: Store,
        cluster: str,
        run_id: str,
        *,
        max_pending: int = MAX_PENDING,
        log: TextIO | None = None,
    ) -> None:
        self.store = store
        self.cluster = cluster
        self.run_id = run_id
        self.max_pending = max_pending
        self._log = log or sys.stderr
        self._transitions: list[dict[str, Any]] = []
        self._heartbeats: list[dict[str, Any]] = []
        self.written_transitions = 0
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._transitions) + len(self._heartbeats)

    @property
    def overflowing(self) -> bool:
        return self.pending > self.max_pending

    def add_transitions(self, rows: Sequence[dict[str, Any]]) -> None:
        self._transitions.extend(rows)

    def add_heartbeat(self, state: str, interval_s: int, counters: dict[str, int]) -> None:
        self._heartbeats.append(
            {
                "cluster": self.cluster,
                "run_id": self.run_id,
                "at": datetime.now(UTC),
                "state": state,
                "interval_s": interval_s,
                "counters": dict(sorted(counters.items())),
            }
        )

    def flush(self) -> bool:
        """Write everything waiting in one transaction; False (and a message) on failure,
        with everything still waiting."""
        if not self.pending:
            return True
        now = datetime.now(UTC)
        transitions = [{**row, "recorded_at": now} for row in self._transitions]
        try:
            with self.store.writing() as session:
                # One ledger entry chains the batch: `evidence verify` covers monitoring.
                write_monitoring(session, transitions, self._heartbeats, now)
        except STORE_ERRORS as error:
            self._failed("record transitions", error)
            return False
        self.written_transitions += len(transitions)
        self._transitions.clear()
        self._heartbeats.clear()
        return True

    def record_scan(self, report: ScanReport, inventory: Inventory) -> Recorded | None:
        """A scan in the store as `kubeproof scan --db` records it; None on failure. The
        report's results are dropped as they are written."""
        try:
            return record_scan(
                self.store,
                report,
                cluster=self.cluster,
                present=present_subjects(inventory),
                identities=subject_identities(inventory),
                release_results=True,  # the agent keeps only verdicts
            )
        except STORE_ERRORS as error:
            self._failed("record a scan", error)
            return None

    def dump_pending(self, stream: TextIO) -> int:
        """Write whatever is still waiting to `stream` as JSON lines (never lost)."""
        count = 0
        for row in self._transitions + self._heartbeats:
            stream.write(json.dumps(row, default=str, sort_keys=True) + "\n")
            count += 1
        stream.flush()
        return count

    def _failed(self, what: str, error: BaseException) -> None:
        self.failures += 1
        reason = describe(error) if isinstance(error, exc.DBAPIError) else redact(str(error))
        print(
            f"kubeproof agent: cannot {what} in {self.store.url}: {reason}; "
            f"{self.pending} rows waiting, will retry",
            file=self._log,
            flush=True,
        )
