"""The agent's main loop: the watchers feed the cache; each batch of changes re-judges
what it affects and records what moved; timers send heartbeats, record scans from the
cache after changes settle (so findings open, resolve and close as deleted; judged and
recorded on a thread of their own, agent/settled.py), and run a full rescan from fresh
LISTs as a safety net."""

from __future__ import annotations

import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from kubeproof.agent import memory, settled
from kubeproof.agent.attribution import Actor, AuditAttribution
from kubeproof.agent.baselines import BASELINE_DECISION, DRIFT_GROUP, AgentBaselines
from kubeproof.agent.record import AgentRecorder, transition_row
from kubeproof.agent.reevaluate import (
    Plan,
    SubjectKey,
    Transition,
    Verdict,
    apply_verdicts,
    diff_slices,
    diff_verdicts,
    evaluate_plan,
    judged_diff,
    key_of,
    plan_for,
    verdicts_of,
)
from kubeproof.agent.settled import InFlight, Judged
from kubeproof.agent.state import Change, ObjectCache
from kubeproof.agent.watch import (
    WATCH_TIMEOUT_S,
    Counters,
    Event,
    KindWatcher,
    Listed,
    Message,
    start_watchers,
    wait_for_lists,
)
from kubeproof.engine import Context
from kubeproof.frameworks import Framework
from kubeproof.inventory import Inventory
from kubeproof.inventory.security_spec import ApprovedBaselines
from kubeproof.model import Result, Subject
from kubeproof.scan import scan_inventory
from kubeproof.sources.cluster import ApiClient, ClusterError, discover
from kubeproof.sources.kubeconfig import ClusterConnection
from kubeproof.store.db import Store

EXIT_OK, EXIT_STORE_LOST = 0, 3
SETTLED, FULL_RESCAN = "changes settled", "full rescan"


@dataclass(frozen=True)
class AgentOptions:
    full_rescan_interval_s: float = 3600.0
    heartbeat_interval_s: float = 60.0
    settle_s: float = 5.0  # after transitions: record a scan from the cache this much later
    watch_timeout_s: int = WATCH_TIMEOUT_S
    batch_s: float = 0.05  # events arriving this close together are judged together
    initial_list_timeout_s: float = 300.0
    store_retry_s: float = 5.0
    baseline_poll_s: float = 5.0  # how often to look for new baseline decisions
    audit_log: Path | None = None  # who made each change, from this audit log
    audit_wait_s: float = 1.0  # how long a transition waits for its audit event
    scan_stop_wait_s: float = 60.0  # on stop, how long a scan being recorded may finish


@dataclass
class _Cause:
    change: Change | None
    at: datetime


@dataclass
class _Awaiting:
    """A transition row, until it is recorded (with its actor, when audit data has it)."""

    row: dict[str, Any]
    transition: Transition
    change: Change | None
    at: datetime
    actor: Actor | None = None


def _weight(cause: _Cause, key: SubjectKey) -> int:
    """Which change best explains a subject's transition: a change of the subject's own
    judged fields, then any change of judged fields, then anything (a status update)."""
    change = cause.change
    if change is None or not judged_diff(change.before, change.after):
        return 0
    return 2 if key_of(change.current) == key else 1


def _always(cause: _Cause) -> Callable[[Transition], _Cause]:
    return lambda _transition: cause


@dataclass
class _Timers:
    heartbeat: float = 0.0
    rescan: float = 0.0
    scan_due: float | None = None
    flush_retry: float = 0.0
    baselines: float = 0.0


class Agent:
    def __init__(
        self,
        connection: ClusterConnection,
        store: Store,
        framework: Framework,
        cluster: str,
        options: AgentOptions,
        *,
        log: TextIO | None = None,
    ) -> None:
        self.connection = connection
        self.framework = framework
        self.cluster = cluster
        self.options = options
        self.run_id = str(uuid.uuid4())
        self.cache = ObjectCache()
        self.counters = Counters()
        self.verdicts: dict[str, Verdict] = {}
        self._scan: InFlight | None = None  # the whole-cache scan being judged, if any
        self._scan_why = SETTLED  # what the next whole-cache scan is for
        self.recorder = AgentRecorder(store, cluster, self.run_id, log=log)
        self._log = log or sys.stderr
        self._queue: queue.Queue[Message] = queue.Queue()
        self._watchers: list[KindWatcher] = []
        self._checks = framework.checks
        self._timers = _Timers()
        self._source = f"cluster {cluster} ({connection.server})"
        self.baselines = AgentBaselines(store, cluster)
        self.audit: AuditAttribution | None = None
        self._awaiting: list[_Awaiting] = []
        # Told of each recorded transition (notifications, /metrics); never the store's job.
        self.transition_listeners: list[Callable[[dict[str, Any], Result], None]] = []
        self.watch_lag_s = 0.0  # how long the last batch of watch events waited to be judged
        self.last_full_scan: datetime | None = None  # the last whole-cache scan recorded

    @property
    def scan_pending(self) -> bool:
        """A whole-cache scan is in flight or due: the store is behind the cache."""
        return self._scan is not None or self._timers.scan_due is not None

    # -- lifecycle ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        """List, record the first scan, then watch until `stop` is set. Raises
        ClusterError when the cluster cannot be read at all."""
        memory.limit_arenas()  # before the watcher threads start
        client = ApiClient(self.connection)
        discovery = discover(client)
        for kind, (state, detail) in discovery.missing.items():
            self.cache.coverage.record(kind, state, detail)
        resources = list(discovery.resources.values())
        if self.options.audit_log is not None:
            self.audit = AuditAttribution(
                self.options.audit_log,
                {r.spec.kind: (r.api_version.rpartition("/")[0], r.plural) for r in resources},
            )
        self._watchers = start_watchers(
            client,
            resources,
            self._queue,
            stop,
            self.counters,
            watch_timeout_s=self.options.watch_timeout_s,
        )
        try:
            return self._run(stop, {r.spec.kind for r in resources})
        finally:
            stop.set()
            for watcher in self._watchers:
                watcher.close()
            if self.audit is not None:
                self.audit.close()

    def _run(self, stop: threading.Event, kinds: set[str]) -> int:
        # Not kept in a local: the first lists would hold every object they brought for as
        # long as the agent runs, however often the cache replaces them.
        for message in wait_for_lists(
            self._queue, kinds, stop, self.options.initial_list_timeout_s
        ):
            self._apply(message)
        if stop.is_set():
            return EXIT_OK
        if not any(entry.complete for entry in self.cache.coverage.kinds.values()):
            raise ClusterError(f"could not list any kind from {self.connection.server}")
        self._say(f"watching {len(kinds)} kinds, {len(self.cache)} objects")
        self.baselines.refresh(self._say)
        self._release_attributed()  # opens the audit log at its end
        self._full_evaluation("initial list", record_transitions=False)
        now = time.monotonic()
        self._timers.rescan = now + self.options.full_rescan_interval_s
        self._heartbeat("started")
        while not stop.is_set():
            batch = self._next_batch(stop)
            if batch:
                self._process(batch)
            self._on_timers()
            if self.recorder.overflowing:
                self._say(
                    f"the evidence store has been unavailable too long: {self.recorder.pending} "
                    "rows waiting; stopping, the rows follow on stderr"
                )
                self.recorder.dump_pending(self._log)
                return EXIT_STORE_LOST
        return self._shutdown()

    def _shutdown(self) -> int:
        if self._scan is not None and self._scan.wait(self.options.scan_stop_wait_s):
            self._collect_scan()
        self._release_attributed(everything=True)
        self._heartbeat("stopped")
        if self.recorder.flush():
            self._say(f"stopped; {self.recorder.written_transitions} transitions recorded")
            return EXIT_OK
        count = self.recorder.dump_pending(self._log)
        self._say(f"stopped; {count} rows could not be recorded and were written above")
        return EXIT_STORE_LOST

    # -- changes -----------------------------------------------------------------------

    def _next_batch(self, stop: threading.Event) -> list[Message]:
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self.options.batch_s
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch

    def _apply(self, message: Message) -> list[tuple[Change, datetime]]:
        if isinstance(message, Listed):
            changes = self.cache.replace_kind(
                message.kind, message.objects, message.state, message.detail
            )
            return [(change, message.at) for change in changes]
        assert isinstance(message, Event)
        if message.type == "DELETED":
            change = self.cache.remove(message.obj)
        else:
            change = self.cache.put(message.obj)
        return [] if change is None else [(change, message.at)]

    def _process(self, batch: Sequence[Message]) -> None:
        if batch:
            self.watch_lag_s = (datetime.now(UTC) - min(m.at for m in batch)).total_seconds()
        workload_causes: dict[SubjectKey, _Cause] = {}
        workload_checks: frozenset[str] | None = None
        others: list[tuple[Plan, _Cause]] = []
        for message in batch:
            for change, at in self._apply(message):
                plan = plan_for(change, self.cache, self._checks)
                if plan is None:
                    continue
                cause = _Cause(change, at)
                if plan.workloads is not None:
                    workload_checks = plan.checks
                    for key in plan.workloads:
                        known = workload_causes.get(key)
                        if known is None or _weight(cause, key) > _weight(known, key):
                            workload_causes[key] = cause
                elif all(plan != known for known, _ in others):
                    others.append((plan, cause))
        rows: list[_Awaiting] = []
        if workload_checks is not None:
            plan = Plan(workload_checks, workloads=frozenset(workload_causes))
            rows += self._judge(plan, lambda t: workload_causes[key_of(t.result.subject)])
        for plan, cause in others:
            rows += self._judge(plan, _always(cause))
        self._record(rows)

    def _record(self, rows: list[_Awaiting]) -> None:
        if not rows:
            return
        if self.audit is None:
            self._release(rows)
        else:
            self._awaiting.extend(rows)
            self._release_attributed()
        if self._timers.scan_due is None:
            self._timers.scan_due = time.monotonic() + self.options.settle_s

    def _release_attributed(self, *, everything: bool = False) -> None:
        """Record the transitions whose audit event has been read, or that waited long
        enough (recorded without one: never held back for good)."""
        if self.audit is None:
            return
        self.audit.poll()  # always: the log is read from where the agent started
        if not self._awaiting:
            return
        now = datetime.now(UTC)
        ready, waiting = [], []
        for item in self._awaiting:
            if item.change is not None:
                actor = self.audit.actor_of(item.change, item.at)
                if actor is not None:
                    item.row.update(actor.columns())
                    item.actor = actor
            waited = (now - item.at).total_seconds() >= self.options.audit_wait_s
            # Once the log holds later requests, the change's own event is not coming.
            given_up = waited or self.audit.caught_up(item.at)
            if everything or item.actor is not None or given_up or item.change is None:
                ready.append(item)
            else:
                waiting.append(item)
        self._awaiting = waiting
        self._release(ready)

    def _release(self, items: list[_Awaiting]) -> None:
        if not items:
            return
        for item in items:
            result = item.transition.result
            by = f" by {item.actor}" if item.actor is not None else ""
            self._say(f"{item.transition.transition}: {result.check.id} {result.subject}{by}")
            for listener in self.transition_listeners:
                listener(item.row, result)
        self.recorder.add_transitions([item.row for item in items])
        self._flush()

    def _judge(
        self, plan: Plan, cause_of: Callable[[Transition], _Cause], why: str = ""
    ) -> list[_Awaiting]:
        fresh = evaluate_plan(plan, self.cache, self._checks, self._context)
        transitions = diff_verdicts(plan, self.verdicts, fresh, self._present)
        judged = apply_verdicts(plan, self.verdicts, fresh)
        if self._scan is not None:
            self._scan.touched |= judged  # newer than what the scan in flight says
        rows = []
        for transition in transitions:
            cause = cause_of(transition)
            rows.append(self._row(transition, cause.change, cause.at, why))
        return rows

    def _row(
        self, transition: Transition, change: Change | None, at: datetime, why: str = ""
    ) -> _Awaiting:
        row = transition_row(transition, change, self.cluster, self.run_id, at, why=why)
        self.counters.add(f"transitions_{transition.transition}")
        return _Awaiting(row, transition, change, at)

    def _context(self, inventory: Inventory) -> Context:
        return Context(
            inventory,
            pss_level=self.framework.pss_level,
            cluster_name=self.cluster,
            baselines=self.baselines.current,
        )

    def _present(self, subject: Subject) -> bool:
        if subject.kind == "Cluster":
            return True
        return self.cache.get(subject.kind, subject.namespace, subject.name) is not None

    # -- scans -------------------------------------------------------------------------

    def _full_evaluation(self, why: str, *, record_transitions: bool = True) -> bool:
        """Judge the whole cache here and now, record it as a scan (and any verdict the
        incremental judgement missed). False when the scan could not be recorded."""
        judged = self._judge_snapshot(self.cache.snapshot(), self.baselines.current)
        return self._adopt(judged, why, set(), record_transitions=record_transitions)

    def _judge_snapshot(self, inventory: Inventory, baselines: ApprovedBaselines | None) -> Judged:
        """Judge a snapshot of the cache and record it as a scan; runs on any thread (it
        reads nothing the loop changes). The report is dropped once recorded: only the
        compact verdicts stay."""
        report = scan_inventory(
            inventory,
            self.framework,
            cluster_name=self.cluster,
            sources=[self._source],
            baselines=baselines,
        )
        verdicts = verdicts_of(report.results, self.verdicts)
        return Judged(verdicts, self.recorder.record_scan(report, inventory))

    def _adopt(
        self, judged: Judged, why: str, touched: set[str], *, record_transitions: bool = True
    ) -> bool:
        """Take a whole-cache judgement's verdicts, except those the loop judged again since
        its snapshot (`touched`: newer), and record what the incremental judgement missed."""
        fresh = judged.verdicts
        if record_transitions:
            old = {fp: v for fp, v in self.verdicts.items() if fp not in touched}
            new = {fp: v for fp, v in fresh.items() if fp not in touched}
            now = datetime.now(UTC)
            missed = diff_slices(old, new, self._present)
            self._release([self._row(t, None, now) for t in missed])
        for fingerprint in touched:
            known = self.verdicts.get(fingerprint)
            if known is None:
                fresh.pop(fingerprint, None)
            else:
                fresh[fingerprint] = known
        self.verdicts = fresh
        memory.release_free_memory()  # what the scan freed: the next peak starts lower
        recorded = judged.recorded
        if recorded is None:
            return False
        self.last_full_scan = datetime.now(UTC)
        self._say(
            f"recorded scan #{recorded.scan_id} ({why}): {recorded.results} results; findings "
            f"{recorded.opened} opened, {recorded.reopened} reopened, {recorded.resolved} "
            f"resolved, {recorded.deleted} closed (subject deleted)"
        )
        return True

    def _start_scan(self) -> None:
        """Judge and record a snapshot of the cache on a thread of its own."""
        why, self._scan_why = self._scan_why, SETTLED
        baselines = self.baselines.current
        self._scan = settled.start(
            why, self.cache.snapshot(), lambda snapshot: self._judge_snapshot(snapshot, baselines)
        )

    def _collect_scan(self) -> None:
        """Adopt the scan in flight once it is done; retry later when the store failed."""
        flight = self._scan
        if flight is None or not flight.done:
            return
        self._scan = None
        if flight.error is not None:
            raise flight.error  # a bug, not the store: as loud as on the loop itself
        assert flight.judged is not None
        if not self._adopt(flight.judged, flight.why, flight.touched):
            self._scan_why = flight.why
            self._timers.scan_due = time.monotonic() + self.options.store_retry_s

    def _on_timers(self) -> None:
        now = time.monotonic()
        timers = self._timers
        if now >= timers.heartbeat:
            self._heartbeat("alive")
        if self.recorder.pending and now >= timers.flush_retry:
            self._flush()
        self._release_attributed()
        if now >= timers.baselines:
            timers.baselines = now + self.options.baseline_poll_s
            self._on_baseline_decisions()
        self._collect_scan()
        # One scan in flight at a time: one that comes due meanwhile starts afterwards,
        # from a newer snapshot.
        if timers.scan_due is not None and now >= timers.scan_due and self._scan is None:
            timers.scan_due = None
            self._start_scan()
        if now >= timers.rescan:
            timers.rescan = now + self.options.full_rescan_interval_s
            self._rescan()

    def _on_baseline_decisions(self) -> None:
        """A baseline approved or revoked since the last look: judge drift again for every
        workload, so that an approval clears a flag (and a revocation shows) without
        waiting for a change to the workload."""
        if not self.baselines.refresh(self._say):
            return
        plan = Plan(frozenset(c.spec.id for c in self._checks if c.spec.group == DRIFT_GROUP))
        if plan.checks:
            now = datetime.now(UTC)
            self._record(self._judge(plan, lambda _t: _Cause(None, now), BASELINE_DECISION))

    def _rescan(self) -> None:
        """The safety net: every watcher relists its kind (the cache then matches a fresh
        LIST, whatever a watch may have missed), then the whole cache is judged and
        recorded as a scan (once no other scan is in flight)."""
        kinds = {w.kind for w in self._watchers}
        for watcher in self._watchers:
            watcher.request_relist()
        stop = threading.Event()
        relisted = wait_for_lists(self._queue, kinds, stop, self.options.initial_list_timeout_s)
        self._process(relisted)
        self.counters.add("full_rescans")
        self._scan_why = FULL_RESCAN
        self._timers.scan_due = time.monotonic()

    def _heartbeat(self, state: str) -> None:
        self._timers.heartbeat = time.monotonic() + self.options.heartbeat_interval_s
        counters = self.counters.snapshot()
        counters["objects"] = len(self.cache)
        counters["pending_rows"] = self.recorder.pending
        counters["store_failures"] = self.recorder.failures
        self.recorder.add_heartbeat(state, int(self.options.heartbeat_interval_s), counters)
        self._flush()

    def _flush(self) -> None:
        if not self.recorder.flush():
            self._timers.flush_retry = time.monotonic() + self.options.store_retry_s

    def _say(self, text: str) -> None:
        print(f"kubeproof agent: {text}", file=self._log, flush=True)
