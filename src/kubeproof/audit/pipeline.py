"""Events in, detections out: counting (stage, duplicates), learning the baseline during
its learning period, running every detector, and grouping matches into detections.

A detection groups the matches of one detector with one key (one exec session, one
subject's Secret reads, one new address of a subject ...); its evidence keeps the first
audit IDs, the source addresses, clients and objects, and the time span.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from kubeproof.audit.baseline import Baseline
from kubeproof.audit.detectors import DetectionContext, Detector, Hit, detectors
from kubeproof.audit.events import COUNTED_STAGES, AuditEvent, ParseStats, SeenAuditIds
from kubeproof.model import Result, Status, Subject
from kubeproof.redaction import redact, redact_data

MAX_EVIDENCE_ITEMS = 50
MAX_DETECTIONS = 100_000  # `follow` runs for months: the oldest detections are dropped
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
# Reasons a detector could not judge an event that do not make its result not_evaluated:
# they are what a baseline means (a subject never seen cannot be compared), and the
# summary counts them.
COVERAGE_NOTES = frozenset({"subject has no baseline", "too few learned events"})


@dataclass(slots=True)
class Detection:
    detector: Detector
    key: str
    user: str
    message: str
    first_time: float
    last_time: float
    count: int = 0
    audit_ids: list[str] = field(default_factory=list)
    source_ips: list[str] = field(default_factory=list)
    user_agents: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    authenticated_users: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(self, events: Iterable[AuditEvent]) -> None:
        for event in events:
            self.count += 1
            if event.time < self.first_time:
                self.first_time = event.time
            if event.time > self.last_time:
                self.last_time = event.time
            if len(self.audit_ids) < MAX_EVIDENCE_ITEMS:  # audit IDs are unique already
                self.audit_ids.append(event.audit_id)
                self.locations.append(f"{event.source}:{event.line}")
            for address in event.source_ips:
                _append(self.source_ips, address)
            _append(self.user_agents, event.user_agent)
            _append(self.authenticated_users, event.authenticated_user)
            if len(self.objects) < MAX_EVIDENCE_ITEMS:
                _append(self.objects, event.object_ref())

    def evidence(self) -> dict[str, Any]:
        # Names, clients, objects and commands come from the request and are masked like
        # any free text; audit IDs, addresses and times are the server's own.
        evidence: dict[str, Any] = {
            "auditIDs": self.audit_ids,
            "count": self.count,
            "user": masked(self.user),
            "sourceIPs": self.source_ips,
            "userAgents": [masked(a) for a in self.user_agents if a],
            "objects": [masked(o) for o in self.objects],
            "firstTime": iso_time(self.first_time),
            "lastTime": iso_time(self.last_time),
            "logLines": self.locations,
        }
        if self.authenticated_users != [self.user]:  # impersonation
            evidence["authenticatedUsers"] = [masked(u) for u in self.authenticated_users]
        details: dict[str, Any] = redact_data(self.details)
        evidence.update(details)
        return evidence

    def result(self) -> Result:
        return Result(
            check=self.detector.spec.check,
            status=Status.FAIL,
            subject=subject_of(self.user),
            message=masked(self.message),
            extra={"evidence": self.evidence(), "key": self.key},
        )


_ANY = "\x00any"  # not a resource name: the detectors every event goes to


def _by_resource(chosen: list[Detector]) -> dict[str, tuple[Detector, ...]]:
    """For each resource some detector is limited to, the detectors that event goes to
    (in catalogue order); under _ANY, those for every other resource."""
    named = {r for d in chosen if d.resources is not None for r in d.resources}
    table = {
        resource: tuple(d for d in chosen if d.resources is None or resource in d.resources)
        for resource in named
    }
    table[_ANY] = tuple(d for d in chosen if d.resources is None)
    return table


def _append(values: list[str], value: str) -> None:
    if value not in values and len(values) < MAX_EVIDENCE_ITEMS:
        values.append(value)


@lru_cache(maxsize=8192)
def masked(text: str) -> str:
    """Free text with credentials masked; the same names and clients recur in every
    detection."""
    return redact(text)


def subject_of(user: str) -> Subject:
    """A service account's user name as its object; anyone else as a User."""
    if user.startswith(SERVICE_ACCOUNT_PREFIX):
        namespace, _, name = user.removeprefix(SERVICE_ACCOUNT_PREFIX).partition(":")
        if namespace and name:
            return Subject("v1", "ServiceAccount", namespace, name)
    return Subject("rbac.authorization.k8s.io/v1", "User", None, user or "(no user)")


def iso_time(time: float) -> str:
    return (
        datetime.fromtimestamp(time, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


class Pipeline:
    """Feed it events of any stage in log order; `feed` returns the detections that are
    new (their first match), `results()` everything at the end."""

    def __init__(
        self,
        baseline: Baseline,
        *,
        learn_everything: bool = False,
        burst_threshold: int = 10,
        burst_window_s: float = 60.0,
        selected: Sequence[Detector] | None = None,
    ) -> None:
        self.baseline = baseline
        self.learn_everything = learn_everything
        self.stats = ParseStats()
        self.context = DetectionContext(baseline, burst_threshold, burst_window_s)
        self._seen = SeenAuditIds()
        chosen = tuple(selected) if selected is not None else detectors()
        self._static = _by_resource([d for d in chosen if not d.spec.baseline])
        self._compared = _by_resource([d for d in chosen if d.spec.baseline])
        self._chosen = chosen
        self._detections: dict[tuple[str, str], Detection] = {}
        self.compared_events = 0  # events judged against the baseline
        self.learned_events = 0
        self._latest = 0.0

    def feed(self, event: AuditEvent) -> list[Detection]:
        time = event.time
        if time > self._latest:
            # A watch that started while learning belongs to what was learned.
            self._latest = time
        if event.stage not in COUNTED_STAGES:
            self.stats.other_stages += 1
            return []
        if not self._seen.add(event.audit_id):
            self.stats.duplicates += 1
            return []
        self.stats.events += 1
        new: list[Detection] = []
        static_detectors = self._static.get(event.resource) or self._static[_ANY]
        for static in static_detectors:
            for hit in static.function(event, self.context):
                self._record(static, event, hit, new)
        baseline = self.baseline
        if baseline.learning_ends is None and not self.learn_everything:
            baseline.start_learning(time)
        if self.learn_everything or time < baseline.learning_ends:  # type: ignore[operator]
            baseline.learn(event)
            self.learned_events += 1
        else:
            self.compared_events += 1
            compared_detectors = self._compared.get(event.resource) or self._compared[_ANY]
            for compared in compared_detectors:
                for hit in compared.function(event, self.context):
                    self._record(compared, event, hit, new)
        return new

    def finish_learning(self) -> None:
        """After `--learn`: everything fed so far is the baseline."""
        if self.learn_everything and self._latest:
            self.baseline.learned_until(self._latest)

    def _record(self, found: Detector, event: AuditEvent, hit: Hit, new: list[Detection]) -> None:
        key = hit.key or event.audit_id
        detection = self._detections.get((found.id, key))
        if detection is None:
            detection = Detection(
                found, key, event.user, hit.message, event.time, event.time, details=hit.details
            )
            self._detections[(found.id, key)] = detection
            if len(self._detections) > MAX_DETECTIONS:
                del self._detections[next(iter(self._detections))]
            new.append(detection)
        detection.add(hit.events or (event,))

    def detections(self) -> list[Detection]:
        return sorted(
            self._detections.values(),
            key=lambda d: (-d.detector.spec.check.severity.rank, d.first_time, d.detector.id),
        )

    def not_evaluated(self) -> list[Result]:
        """Detectors that could not judge what they should have: never a silent clean."""
        results = []
        for chosen in self._chosen:
            reason = self._not_evaluated_reason(chosen)
            if reason is not None:
                results.append(
                    Result(
                        check=chosen.spec.check,
                        status=Status.NOT_EVALUATED,
                        subject=Subject("audit.k8s.io/v1", "AuditLog", None, "input"),
                        message=f"{chosen.id} could not be evaluated: {reason}",
                        reason=reason,
                    )
                )
        return results

    def _not_evaluated_reason(self, chosen: Detector) -> str | None:
        if self.stats.events == 0:
            return "no audit events were read"
        if chosen.spec.baseline and self.learn_everything:
            return "the events were learned as the baseline (--learn), not compared with it"
        if chosen.spec.baseline and self.compared_events == 0:
            ends = self.baseline.learning_ends
            until = f" until {iso_time(ends)}" if ends is not None else ""
            return f"every event fell in the baseline's learning period{until}"
        reasons = {
            reason: count
            for reason, count in self.context.not_judged.get(chosen.id, {}).items()
            if reason not in COVERAGE_NOTES
        }
        if reasons:
            return "; ".join(f"{count} x {reason}" for reason, count in sorted(reasons.items()))
        return None

    def results(self) -> list[Result]:
        return [d.result() for d in self.detections()] + self.not_evaluated()

    def coverage(self) -> dict[str, Any]:
        return {
            "comparedWithBaseline": self.compared_events,
            "learned": self.learned_events,
            "notJudged": {k: dict(v) for k, v in sorted(self.context.not_judged.items())},
            "judgedBodies": dict(sorted(self.context.judged.items())),
        }
