"""What `kubeproof audit serve` receives, without the HTTP: the API server's audit webhook
batches (EventList) into the same detector pipeline as `audit follow`, and Falco alerts
into results attached to workloads. Counts what it saw, for /metrics.

Requests arrive on several connection threads; one lock keeps the pipeline (its
baseline, its duplicate filter, its bursts) in arrival order.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeproof.audit.events import MalformedEvent, SeenAuditIds, decode_document, parse_event
from kubeproof.audit.falco import FalcoAlert, FalcoError, check_for, parse_alert, parse_alerts
from kubeproof.audit.pipeline import Pipeline, iso_time, masked
from kubeproof.audit.pod_owner import PodOwners
from kubeproof.model import Result, Status, Subject
from kubeproof.prometheus import family

Emit = Callable[[Result], None]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    message: str


class Receiver:
    def __init__(self, pipeline: Pipeline, pod_owners: PodOwners, emit: Emit) -> None:
        self.pipeline = pipeline
        self.pod_owners = pod_owners
        self._emit = emit
        self._lock = threading.Lock()
        self._batches = 0
        self._falco_seen = SeenAuditIds(capacity=200_000)
        self.bad_bodies: Counter[tuple[str, str]] = Counter()  # (endpoint, reason)
        self.detections: Counter[tuple[str, str]] = Counter()  # (detector, severity)
        self.falco_alerts: Counter[tuple[str, str]] = Counter()  # (priority, outcome)

    # -- the audit webhook backend -----------------------------------------------------

    def audit_batch(self, body: bytes) -> Reply:
        """One POST of the webhook backend. 400 only when the body as a whole is not an
        EventList (or Event); a bad item in a good list is skipped and counted."""
        try:
            documents = decode_document(body)
        except MalformedEvent as error:
            return self._bad("audit", "not-event-list", f"not an audit EventList: {error}")
        if len(documents) == 1 and b'"EventList"' not in body:  # a lone Event
            try:
                parse_event(documents[0])
            except MalformedEvent as error:
                return self._bad("audit", "not-event-list", f"not an audit event: {error}")
        new: list[Result] = []
        with self._lock:
            self._batches += 1
            source = f"webhook batch {self._batches}"
            stats = self.pipeline.stats
            for index, document in enumerate(documents, 1):
                stats.lines += 1
                try:
                    event = parse_event(document, source, index)
                except MalformedEvent as error:
                    stats.problem(source, index, str(error))
                    continue
                for detection in self.pipeline.feed(event):
                    result = detection.result()
                    self.detections[(result.check.id, result.check.severity.value)] += 1
                    new.append(result)
        for result in new:
            self._emit(result)
        return Reply(200, f"{len(documents)} events received\n")

    # -- Falco -------------------------------------------------------------------------

    def falco_body(self, body: bytes) -> Reply:
        """One POST of Falco alerts. 400 when the body is not JSON or holds no valid alert;
        invalid alerts beside valid ones are counted and skipped."""
        try:
            values = parse_alerts(body)
        except FalcoError as error:
            return self._bad("falco", "not-falco-json", f"not a Falco alert: {error}")
        alerts: list[FalcoAlert] = []
        problems: list[str] = []
        for number, value in enumerate(values, 1):
            try:
                if isinstance(value, FalcoError):
                    raise value
                alerts.append(parse_alert(value))
            except FalcoError as error:
                problems.append(f"alert {number}: {error}")
                with self._lock:
                    self.falco_alerts[("-", "malformed")] += 1
        if not alerts:
            reason = problems[0] if problems else "no alerts"
            return self._bad("falco", "not-falco-alert", f"not a Falco alert: {reason}")
        new = [result for alert in alerts if (result := self._falco_alert(alert)) is not None]
        for result in new:
            self._emit(result)
        skipped = f"; skipped {'; '.join(problems[:5])}" if problems else ""
        return Reply(200, f"{len(alerts)} alerts received{skipped}\n")

    def _falco_alert(self, alert: FalcoAlert) -> Result | None:
        with self._lock:
            if not self._falco_seen.add(alert.key):
                self.falco_alerts[(alert.priority.lower(), "duplicate")] += 1
                return None
            self.falco_alerts[(alert.priority.lower(), "accepted")] += 1
        result = falco_result(alert, self.pod_owners)
        with self._lock:
            self.detections[(result.check.id, result.check.severity.value)] += 1
        return result

    # -- shared ------------------------------------------------------------------------

    def _bad(self, endpoint: str, reason: str, message: str) -> Reply:
        self.count_bad(endpoint, reason)
        return Reply(400, message + "\n")

    def count_bad(self, endpoint: str, reason: str) -> None:
        with self._lock:
            self.bad_bodies[(endpoint, reason)] += 1

    def counters(self) -> dict[str, int]:
        """Totals since start, for the heartbeats the evidence store keeps."""
        with self._lock:
            stats = self.pipeline.stats
            return {
                "events": stats.events,
                "duplicates": stats.duplicates,
                "other_stages": stats.other_stages,
                "malformed": stats.malformed,
                "batches": self._batches,
                "bad_bodies": sum(self.bad_bodies.values()),
                "falco_alerts": sum(
                    n for (_, outcome), n in self.falco_alerts.items() if outcome == "accepted"
                ),
                "detections": sum(self.detections.values()),
            }

    def metrics(self) -> str:
        with self._lock:
            stats = self.pipeline.stats
            events = {
                "received": stats.events,
                "duplicate": stats.duplicates,
                "other-stage": stats.other_stages,
                "malformed": stats.malformed,
            }
            bad = sorted(self.bad_bodies.items())
            detections = sorted(self.detections.items())
            falco = sorted(self.falco_alerts.items())
            batches = self._batches
        lines = family(
            "kubeproof_audit_events_total",
            "counter",
            "Audit events from the webhook backend, by outcome (each audit ID counted once).",
            (({"outcome": outcome}, value) for outcome, value in events.items()),
        )
        lines += family(
            "kubeproof_audit_batches_total",
            "counter",
            "EventList batches accepted from the API server.",
            [({}, batches)],
        )
        lines += family(
            "kubeproof_receiver_bad_requests_total",
            "counter",
            "Bodies answered 400, by endpoint and reason.",
            (({"endpoint": e, "reason": r}, value) for (e, r), value in bad),
        )
        lines += family(
            "kubeproof_detector_hits_total",
            "counter",
            "New detections, by detector (audit.* and falco.*) and severity.",
            (({"detector": d, "severity": s}, value) for (d, s), value in detections),
        )
        lines += family(
            "kubeproof_falco_alerts_total",
            "counter",
            "Falco alerts received, by priority and outcome (accepted, duplicate, malformed).",
            (({"priority": p, "outcome": o}, value) for (p, o), value in falco),
        )
        return "\n".join(lines) + "\n"


def falco_result(alert: FalcoAlert, pod_owners: PodOwners) -> Result:
    """A failing result of the rule's detector, attached to the alert's workload (or its
    host, when the alert is not about a pod)."""
    evidence: dict[str, Any] = {
        "source": "falco",
        "rule": masked(alert.rule),
        "priority": alert.priority,
        "time": iso_time(alert.time),
        "hostname": masked(alert.hostname),
        "eventSource": alert.source,
        "tags": list(alert.tags),
    }
    container = alert.container_name or None
    if alert.namespace and alert.pod:
        found = pod_owners.workload(alert.namespace, alert.pod)
        subject = found.subject
        if container is not None:
            subject = Subject(
                subject.api_version, subject.kind, subject.namespace, subject.name, container
            )
        evidence["pod"] = f"{alert.namespace}/{alert.pod}"
        evidence["workloadInferred"] = found.inferred
        if found.note:
            evidence["workloadNote"] = found.note
    else:
        subject = Subject("v1", "Node", None, alert.hostname or "(unknown host)")
    for name, value in (
        ("containerID", alert.container_id),
        ("image", alert.image),
        ("process", alert.process),
    ):
        if value:
            evidence[name] = masked(value)
    return Result(
        check=check_for(alert.rule, alert.severity, alert.tags),
        status=Status.FAIL,
        subject=subject,
        message=masked(alert.output or alert.rule),
        extra={"evidence": evidence, "key": alert.key},
    )
