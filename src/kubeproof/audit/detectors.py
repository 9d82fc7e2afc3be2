"""Audit-log detectors: small functions over one event each, joined to what they mean
(detectors.yaml beside them), as the checks are.

A detector is `fn(event, context) -> Iterable[Hit]`. It sees only counted events
(ResponseComplete or Panic, each audit ID once). Baseline detectors are called only
once the learning period is over; the others on every event. A detector that could not
judge an event it cares about (no body logged, no baseline for the subject) says so
through `context.not_judged`, so that the result is not_evaluated rather than clean.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from kubeproof.audit.baseline import (
    Baseline,
    hour_of,
    reads_secrets,
    requests_token,
    saturated,
    user_agent_family,
)
from kubeproof.audit.events import AuditEvent
from kubeproof.checks.registry import CatalogueError, spec_from_data
from kubeproof.model import CheckSpec

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
RBAC_GROUP = "rbac.authorization.k8s.io"
ADMISSION_GROUP = "admissionregistration.k8s.io"
ADMISSION_RESOURCES = frozenset(
    {
        "mutatingwebhookconfigurations",
        "validatingwebhookconfigurations",
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
        "mutatingadmissionpolicies",
        "mutatingadmissionpolicybindings",
    }
)
BINDING_RESOURCES = frozenset({"rolebindings", "clusterrolebindings"})
_RBAC_NAMESPACED = frozenset({"roles", "rolebindings"})
ANONYMOUS_USER = "system:anonymous"
# The API server writes its bootstrap RBAC policy (the cluster-admin binding included) as
# this user at every start.
API_SERVER_USER = "system:apiserver"
UNAUTHENTICATED_GROUP = "system:unauthenticated"
MIN_EVENTS_FOR_HOURS = 20
SESSION_SUBRESOURCES = {
    "exec": "audit.pod-exec",
    "attach": "audit.pod-attach",
    "portforward": "audit.pod-port-forward",
}


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    check: CheckSpec  # id, title, severity, criteria ... as every check has them
    baseline: bool  # compares with the learned baseline
    needs_bodies: bool  # reads requestObject / responseObject

    @property
    def id(self) -> str:
        return self.check.id


@dataclass(frozen=True, slots=True)
class Hit:
    """One match. `key` groups matches into one detection (None: the event's audit ID);
    `events` are the evidence when it is more than the current event (a burst)."""

    message: str
    key: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    events: tuple[AuditEvent, ...] = ()


@dataclass(slots=True)
class DetectionContext:
    baseline: Baseline
    burst_threshold: int = 10
    burst_window_s: float = 60.0
    # detector id -> reason -> number of events it could not judge
    not_judged: dict[str, dict[str, int]] = field(default_factory=dict)
    judged: dict[str, int] = field(default_factory=dict)
    recent_forbidden: dict[str, deque[AuditEvent]] = field(default_factory=dict)

    def could_not_judge(self, detector_id: str, reason: str) -> None:
        reasons = self.not_judged.setdefault(detector_id, {})
        reasons[reason] = reasons.get(reason, 0) + 1

    def judged_one(self, detector_id: str) -> None:
        self.judged[detector_id] = self.judged.get(detector_id, 0) + 1


DetectorFunction = Callable[[AuditEvent, DetectionContext], Iterable[Hit]]
_functions: dict[str, DetectorFunction] = {}
_resources: dict[str, frozenset[str] | None] = {}


def detector(
    detector_id: str, resources: Iterable[str] | None = None
) -> Callable[[DetectorFunction], DetectorFunction]:
    """Register the function of `detector_id`. `resources`: the only resources (objectRef)
    it can match, so that the pipeline calls it for those events only (None: every event)."""

    def register(function: DetectorFunction) -> DetectorFunction:
        if detector_id in _functions:
            raise ValueError(f"detector {detector_id} is registered twice")
        _functions[detector_id] = function
        _resources[detector_id] = frozenset(resources) if resources is not None else None
        return function

    return register


class DetectorCatalogueError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Detector:
    spec: DetectorSpec
    function: DetectorFunction
    resources: frozenset[str] | None = None  # None: any event

    @property
    def id(self) -> str:
        return self.spec.id


@cache
def detectors() -> tuple[Detector, ...]:
    """Every detector, in catalogue order."""
    text = resources.files("kubeproof.audit").joinpath("detectors.yaml").read_text()
    entries = yaml.safe_load(text)["detectors"]
    found: list[Detector] = []
    for entry in entries:
        spec = _spec(entry)
        function = _functions.get(spec.id)
        if function is None:
            raise DetectorCatalogueError(f"detectors.yaml: {spec.id} has no function")
        found.append(Detector(spec, function, _resources[spec.id]))
    described = {d.id for d in found}
    if missing := sorted(set(_functions) - described):
        raise DetectorCatalogueError(f"detectors without a description: {', '.join(missing)}")
    if len(described) != len(found):
        raise DetectorCatalogueError("a detector is described twice")
    return tuple(found)


def _spec(entry: dict[str, Any]) -> DetectorSpec:
    """A detector's description, read and validated as the check catalogue's are."""
    try:
        check = spec_from_data(
            {**entry, "scope": "audit"},
            "audit",
            source="detectors.yaml",
            scopes=frozenset({"audit"}),
        )
    except CatalogueError as error:
        raise DetectorCatalogueError(str(error)) from error
    return DetectorSpec(check, bool(entry.get("baseline")), bool(entry.get("needs_bodies")))


def find_detector(detector_id: str) -> Detector | None:
    return next((d for d in detectors() if d.id == detector_id), None)


# --- the detectors --------------------------------------------------------------------


def _session(kind: str) -> DetectorFunction:
    def detect(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
        if (
            event.subresource == kind
            and event.resource == "pods"
            and not event.api_group
            and event.verb in ("create", "get")
            and event.allowed
        ):
            details: dict[str, Any] = {"responseCode": event.code}
            if event.exec_command:
                details["command"] = event.exec_command.rsplit("/", 1)[-1]
            yield Hit(f"{event.user} opened pods/{kind} into {event.object_ref()}", None, details)

    return detect


for _subresource, _detector_id in SESSION_SUBRESOURCES.items():
    detector(_detector_id, resources=["pods"])(_session(_subresource))


@detector("audit.secret-read-unusual", resources=["secrets"])
def secret_read_unusual(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    if not (reads_secrets(event) and event.allowed):
        return
    known = context.baseline.subjects.get(event.user)
    if known is None or known.secret_reads == 0:
        history = "has no baseline" if known is None else "never read Secrets while learning"
        yield Hit(
            f"{event.user} read Secrets ({event.verb} {event.object_ref()}) and {history}",
            f"secrets:{event.user}",
        )


@detector("audit.anonymous-allowed")
def anonymous_allowed(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    if (event.user == ANONYMOUS_USER or UNAUTHENTICATED_GROUP in event.groups) and (
        event.decision != "forbid" and event.allowed
    ):
        target = event.object_ref()
        yield Hit(
            f"unauthenticated {event.verb} {target} was allowed (response {event.code})",
            f"anonymous:{event.verb}:{target}",
        )


def _created(event: AuditEvent, resources_: frozenset[str], group: str) -> bool:
    return (
        event.resource in resources_
        and event.api_group == group
        and not event.subresource
        and event.succeeded
        and not event.dry_run
    )


_PODS = frozenset({"pods"})


@detector("audit.privileged-pod-created", resources=["pods"])
def privileged_pod_created(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    if event.verb != "create" or not _created(event, _PODS, ""):
        return
    if event.body is None:
        context.could_not_judge(
            "audit.privileged-pod-created",
            f"pod creation logged without its body (audit level {event.level or 'unknown'})",
        )
        return
    context.judged_one("audit.privileged-pod-created")
    if event.body.pod_risks:
        yield Hit(
            f"{event.user} created pod {event.object_ref()} with host access: "
            + "; ".join(event.body.pod_risks),
            None,
            {"podRisks": list(event.body.pod_risks)},
        )


@detector("audit.cluster-admin-binding", resources=BINDING_RESOURCES)
def cluster_admin_binding(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    if (
        event.verb not in ("create", "update")
        or event.user == API_SERVER_USER  # its bootstrap cluster-admin binding
        or not _created(event, BINDING_RESOURCES, RBAC_GROUP)
    ):
        return
    if event.body is None:
        context.could_not_judge(
            "audit.cluster-admin-binding",
            f"binding change logged without its body (audit level {event.level or 'unknown'})",
        )
        return
    context.judged_one("audit.cluster-admin-binding")
    if event.body.role_ref == ("ClusterRole", "cluster-admin"):
        yield Hit(
            f"{event.user} {event.verb}d {event.object_ref()} granting ClusterRole cluster-admin"
        )


@detector("audit.webhook-config-changed", resources=ADMISSION_RESOURCES)
def webhook_config_changed(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    if event.verb in WRITE_VERBS and _created(event, ADMISSION_RESOURCES, ADMISSION_GROUP):
        yield Hit(f"{event.user} ran {event.verb} on {event.object_ref()}")


@detector("audit.kube-system-rbac-changed", resources=_RBAC_NAMESPACED)
def kube_system_rbac_changed(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    if (
        event.namespace == "kube-system"
        and event.verb in WRITE_VERBS
        and event.user != API_SERVER_USER  # reconciling its bootstrap policy
        and _created(event, _RBAC_NAMESPACED, RBAC_GROUP)
    ):
        yield Hit(f"{event.user} ran {event.verb} on {event.object_ref()}")


@detector("audit.token-request-unusual", resources=["serviceaccounts"])
def token_request_unusual(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    if not (requests_token(event) and event.allowed):
        return
    known = context.baseline.subjects.get(event.user)
    if known is None or known.token_requests == 0:
        history = "has no baseline" if known is None else "requested none while learning"
        yield Hit(
            f"{event.user} requested a token for {event.object_ref()} and {history}",
            f"token:{event.user}",
        )


@detector("audit.forbidden-burst")
def forbidden_burst(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    if event.code != 403:
        return
    recent = context.recent_forbidden.get(event.user)
    if recent is None:
        recent = context.recent_forbidden[event.user] = deque()
    recent.append(event)
    while recent and event.time - recent[0].time > context.burst_window_s:
        recent.popleft()
    if len(recent) >= context.burst_threshold:
        burst = tuple(recent)
        recent.clear()  # the next burst needs as many fresh refusals
        yield Hit(
            f"{event.user} was refused {len(burst)} requests within {context.burst_window_s:g} s",
            f"forbidden:{event.user}:{burst[0].audit_id}",
            {"threshold": context.burst_threshold, "windowSeconds": context.burst_window_s},
            burst,
        )


def _known_subject(event: AuditEvent, context: DetectionContext, detector_id: str) -> Any:
    known = context.baseline.subjects.get(event.user)
    if known is None:
        context.could_not_judge(detector_id, "subject has no baseline")
    return known


@detector("audit.new-source-ip")
def new_source_ip(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    known = _known_subject(event, context, "audit.new-source-ip")
    if known is None or saturated(known.source_ips):
        return
    for address in event.source_ips:
        if address not in known.source_ips:
            yield Hit(
                f"{event.user} sent a request from {address}, not seen while learning",
                f"ip:{event.user}:{address}",
                {"newSourceIP": address},
            )


@detector("audit.new-user-agent")
def new_user_agent(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    known = _known_subject(event, context, "audit.new-user-agent")
    if known is None or not event.user_agent or saturated(known.user_agents):
        return
    family = user_agent_family(event.user_agent)
    if family not in known.user_agents:
        yield Hit(
            f"{event.user} used client {family}, not seen while learning",
            f"agent:{event.user}:{family}",
            {"newUserAgent": family},
        )


@detector("audit.off-hours-activity")
def off_hours_activity(event: AuditEvent, context: DetectionContext) -> Iterator[Hit]:
    known = _known_subject(event, context, "audit.off-hours-activity")
    if known is None:
        return
    if known.events < MIN_EVENTS_FOR_HOURS:
        context.could_not_judge("audit.off-hours-activity", "too few learned events")
        return
    hour = hour_of(event.time)
    # The neighbouring hours count as usual: work that runs late is not an anomaly.
    if any(known.hours[(hour + step) % 24] for step in (-1, 0, 1)):
        return
    yield Hit(
        f"{event.user} was active at {hour:02d}:00-{hour:02d}:59 UTC, outside its usual hours",
        f"hours:{event.user}:{hour}",
        {"hourUTC": hour},
    )
