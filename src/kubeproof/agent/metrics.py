"""`kubeproof agent --metrics-port`: Prometheus metrics of the agent, on kubeproof's shared
server (plain HTTP; bind it to loopback or a pod network a scraper reaches).

Results come from the agent's current verdicts (what the last judgement said, by criterion,
severity and status); open and overdue findings from the evidence store (re-read at most
every 30 s, so a scrape does not load the database); counters from the watchers and the
transitions recorded since the agent started.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubeproof.agent.reevaluate import Verdict
from kubeproof.model import Result, Severity
from kubeproof.prometheus import family
from kubeproof.serving import Server
from kubeproof.store.findings import DEFAULT_SLA_DAYS, list_findings
from kubeproof.store.lifecycle import OPEN

FINDINGS_REFRESH_S = 30.0


class AgentMetrics:
    """Reads the agent's state on demand; `on_transition` is one of its listeners."""

    def __init__(
        self,
        agent: Any,  # kubeproof.agent.loop.Agent (not imported: the loop imports much)
        sla: Mapping[Severity, int] = DEFAULT_SLA_DAYS,
        extra: Callable[[], list[str]] | None = None,
    ) -> None:
        self.agent = agent
        self.sla = sla
        self._extra = extra
        self._lock = threading.Lock()
        self._transitions: Counter[tuple[str, str, str]] = Counter()
        self._findings: tuple[float, Counter[tuple[str, str]]] | None = None
        self._findings_error = False

    def on_transition(self, row: dict[str, Any], result: Result) -> None:
        with self._lock:
            key = (str(row.get("transition", "")), result.check.id, result.check.severity.value)
            self._transitions[key] += 1

    def _open_findings(self) -> Counter[tuple[str, str]] | None:
        """(severity, overdue yes/no) → count, for this cluster; None when the store cannot
        be read (the metric is then left out, never reported as zero)."""
        now = time.monotonic()
        if self._findings is not None and now - self._findings[0] < FINDINGS_REFRESH_S:
            return self._findings[1]
        from sqlalchemy.exc import SQLAlchemyError

        from kubeproof.store import StoreError

        counts: Counter[tuple[str, str]] = Counter()
        try:
            with self.agent.recorder.store.reading() as session:
                views = list_findings(
                    session,
                    state=OPEN,
                    cluster=self.agent.cluster,
                    sla=self.sla,
                    now=datetime.now(UTC),
                )
        except (StoreError, SQLAlchemyError, OSError):
            self._findings_error = True
            return None
        self._findings_error = False
        for view in views:
            counts[(view.row.severity, "true" if view.overdue else "false")] += 1
        self._findings = (now, counts)
        return counts

    def render(self) -> str:
        agent = self.agent
        verdicts: dict[str, Verdict] = dict(agent.verdicts)  # copied: the loop replaces it
        results: Counter[tuple[str, str, str]] = Counter()
        for result in verdicts.values():
            for criterion in result.check.criteria:
                key = (criterion, result.check.severity.value, result.status.value)
                results[key] += 1
        lines = family(
            "kubeproof_agent_results",
            "gauge",
            "Current verdicts, by Trust Services Criterion, severity and status.",
            (
                ({"criterion": c, "severity": s, "status": st}, n)
                for (c, s, st), n in sorted(results.items())
            ),
        )
        findings = self._open_findings()
        if findings is not None:
            lines += family(
                "kubeproof_agent_open_findings",
                "gauge",
                "Open findings of this cluster in the evidence store, by severity and whether "
                "they are past their remediation deadline.",
                (({"severity": s, "overdue": o}, n) for (s, o), n in sorted(findings.items())),
            )
        lines += family(
            "kubeproof_agent_findings_store_up",
            "gauge",
            "1 when the open findings could be read from the evidence store.",
            [({}, 0 if self._findings_error else 1)],
        )
        with self._lock:
            transitions = sorted(self._transitions.items())
        lines += family(
            "kubeproof_agent_transitions_total",
            "counter",
            "Transitions recorded since the agent started, by transition, check and severity.",
            (({"transition": t, "check": c, "severity": s}, n) for (t, c, s), n in transitions),
        )
        counters = agent.counters.snapshot()
        lines += family(
            "kubeproof_agent_watch_events_total",
            "counter",
            "What the watchers saw: events, bookmarks, malformed events, reconnects, relists.",
            (
                ({"what": name}, count)
                for name, count in sorted(counters.items())
                if not name.startswith("transitions_")
            ),
        )
        lines += family(
            "kubeproof_agent_watch_lag_seconds",
            "gauge",
            "How long the last batch of watch events waited between arriving and being judged.",
            [({}, float(agent.watch_lag_s))],
        )
        lines += family(
            "kubeproof_agent_objects",
            "gauge",
            "Objects in the agent's cache.",
            [({}, len(agent.cache))],
        )
        lines += family(
            "kubeproof_agent_pending_rows",
            "gauge",
            "Transition and heartbeat rows waiting for the evidence store.",
            [({}, agent.recorder.pending)],
        )
        last: datetime | None = agent.last_full_scan
        if last is not None:
            lines += family(
                "kubeproof_agent_last_full_scan_timestamp_seconds",
                "gauge",
                "When the whole cache was last judged and recorded as a scan (Unix time).",
                [({}, last.timestamp())],
            )
        if self._extra is not None:
            lines += self._extra()
        return "\n".join(lines) + "\n"


class MetricsServer(Server):
    """GET /metrics (and /healthz) over plain HTTP."""

    def __init__(self, address: tuple[str, int], metrics: AgentMetrics) -> None:
        self.metrics = metrics
        super().__init__(address, None, max_connections=16)

    def render_metrics(self) -> str:
        return self.metrics.render()
