"""The agent's main loop: the watchers feed the cache; each batch of changes re-judges
what it affects and records what moved; timers send heartbeats, record scans from the
cache after changes settle (so findings open, resolve and close as deleted), and run a
full rescan from fresh LISTs as a safety net."""

from __future__ import annotations

import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from kubeproof.agent.record import AgentRecorder, transition_row
from kubeproof.agent.reevaluate import (
    Plan,
    SubjectKey,
    Transition,
    apply_verdicts,
    diff_verdicts,
    evaluate_plan,
    judged_diff,
    key_of,
    plan_for,
    verdicts_of,
)
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
from kubeproof.model import Result, Subject
from kubeproof.scan import ScanReport, scan_inventory
from kubeproof.sources.cluster import ApiClient, ClusterError, discover
from kubeproof.sources.kubeconfig import ClusterConnection
from kubeproof.store.db import Store

EXIT_OK, EXIT_STORE_LOST = 0, 3


@dataclass(frozen=True)
class AgentOptions:
    full_rescan_interval_s: float = 3600.0
    heartbeat_interval_s: float = 60.0
    settle_s: float = 5.0  # after transitions: record a scan from the cache this much later
    watch_timeout_s: int = WATCH_TIMEOUT_S
    batch_s: float = 0.05  # events arriving this close together are judged together
    initial_list_timeout_s: float = 300.0
    store_retry_s: float = 5.0


@dataclass
class _Cause:
    change: Change
    at: datetime


def _weight(cause: _Cause, key: SubjectKey) -> int:
    """Which change best explains a subject's transition: a change of the subject's own
    judged fields, then any change of judged fields, then anything (a status update)."""
    change = cause.change
    if not judged_diff(change.before, change.after):
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
        self.verdicts: dict[str, Result] = {}
        self.recorder = AgentRecorder(store, cluster, self.run_id, log=log)
        self._log = log or sys.stderr
        self._queue: queue.Queue[Message] = queue.Queue()
        self._watchers: list[KindWatcher] = []
        self._checks = framework.checks
        self._timers = _Timers()
        self._source = f"cluster {cluster} ({connection.server})"

    # -- lifecycle ---------------------------------------------------------------------

    def run(self, stop: threading.Event) -> int:
        """List, record the first scan, then watch until `stop` is set. Raises
        ClusterError when the cluster cannot be read at all."""
        client = ApiClient(self.connection)
        discovery = discover(client)
        for kind, (state, detail) in discovery.missing.items():
            self.cache.coverage.record(kind, state, detail)
        resources = list(discovery.resources.values())
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

    def _run(self, stop: threading.Event, kinds: set[str]) -> int:
        first = wait_for_lists(self._queue, kinds, stop, self.options.initial_list_timeout_s)
        for message in first:
            self._apply(message)
        if stop.is_set():
            return EXIT_OK
        if not any(entry.complete for entry in self.cache.coverage.kinds.values()):
            raise ClusterError(f"could not list any kind from {self.connection.server}")
        self._say(f"watching {len(kinds)} kinds, {len(self.cache)} objects")
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
        rows: list[dict[str, Any]] = []
        if workload_checks is not None:
            plan = Plan(workload_checks, workloads=frozenset(workload_causes))
            rows += self._judge(plan, lambda t: workload_causes[key_of(t.result.subject)])
        for plan, cause in others:
            rows += self._judge(plan, _always(cause))
        if rows:
            self.recorder.add_transitions(rows)
            self._flush()
            if self._timers.scan_due is None:
                self._timers.scan_due = time.monotonic() + self.options.settle_s

    def _judge(self, plan: Plan, cause_of: Callable[[Transition], _Cause]) -> list[dict[str, Any]]:
        fresh = evaluate_plan(plan, self.cache, self._checks, self._context)
        transitions = diff_verdicts(plan, self.verdicts, fresh, self._present)
        apply_verdicts(plan, self.verdicts, fresh)
        rows = []
        for transition in transitions:
            cause = cause_of(transition)
            rows.append(self._row(transition, cause.change, cause.at))
        return rows

    def _row(self, transition: Transition, change: Change | None, at: datetime) -> dict[str, Any]:
        row = transition_row(transition, change, self.cluster, self.run_id, at)
        self.counters.add(f"transitions_{transition.transition}")
        self._say(
            f"{transition.transition}: {transition.result.check.id} {transition.result.subject}"
        )
        return row

    def _context(self, inventory: Inventory) -> Context:
        return Context(inventory, pss_level=self.framework.pss_level, cluster_name=self.cluster)

    def _present(self, subject: Subject) -> bool:
        if subject.kind == "Cluster":
            return True
        return self.cache.get(subject.kind, subject.namespace, subject.name) is not None

    # -- scans -------------------------------------------------------------------------

    def _full_evaluation(self, why: str, *, record_transitions: bool = True) -> bool:
        """Judge the whole cache, record it as a scan, and record any verdict the
        incremental judgement missed. False when the scan could not be recorded."""
        inventory = self.cache.inventory()
        report: ScanReport = scan_inventory(
            inventory, self.framework, cluster_name=self.cluster, sources=[self._source]
        )
        fresh = verdicts_of(report.results)
        if record_transitions:
            everything = Plan(frozenset(c.spec.id for c in self._checks))
            missed = diff_verdicts(everything, self.verdicts, list(fresh.values()), self._present)
            now = datetime.now(UTC)
            self.recorder.add_transitions([self._row(t, None, now) for t in missed])
        self.verdicts = fresh
        recorded = self.recorder.record_scan(report, inventory)
        if recorded is None:
            return False
        self._say(
            f"recorded scan #{recorded.scan_id} ({why}): {recorded.results} results; findings "
            f"{recorded.opened} opened, {recorded.reopened} reopened, {recorded.resolved} "
            f"resolved, {recorded.deleted} closed (subject deleted)"
        )
        return True

    def _on_timers(self) -> None:
        now = time.monotonic()
        timers = self._timers
        if now >= timers.heartbeat:
            self._heartbeat("alive")
        if self.recorder.pending and now >= timers.flush_retry:
            self._flush()
        if timers.scan_due is not None and now >= timers.scan_due:
            ok = self._full_evaluation("changes settled")
            timers.scan_due = None if ok else now + self.options.store_retry_s
        if now >= timers.rescan:
            timers.rescan = now + self.options.full_rescan_interval_s
            self._rescan()

    def _rescan(self) -> None:
        """The safety net: every watcher relists its kind (the cache then matches a fresh
        LIST, whatever a watch may have missed), then the whole cache is judged and
        recorded as a scan."""
        kinds = {w.kind for w in self._watchers}
        for watcher in self._watchers:
            watcher.request_relist()
        stop = threading.Event()
        relisted = wait_for_lists(self._queue, kinds, stop, self.options.initial_list_timeout_s)
        self._process(relisted)
        self.counters.add("full_rescans")
        if not self._full_evaluation("full rescan"):
            self._timers.scan_due = time.monotonic() + self.options.store_retry_s

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
