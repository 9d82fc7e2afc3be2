"""Kubernetes audit events (audit.k8s.io/v1): parsed tolerantly, fast, and without bodies.

The log backend writes one `Event` per line; the webhook backend posts an `EventList`.
Both are read here into `AuditEvent`, a flat record of who did what to which object,
from where, and what the authorizer and the server answered.

Request and response bodies are never kept: a Secret's data can be in them. The few
facts the detectors need from a body (a pod's privileged settings, a binding's roleRef)
are distilled while parsing and the body is dropped.

A line that is not a well-formed event is counted (with its line number and a reason
that quotes none of its content) and skipped; nothing a log holds can stop the reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

import orjson

from kubeproof.inventory.objects import as_dict, as_list, as_str

# Only these stages describe a finished request; a long-running one (a watch) also logs
# ResponseStarted, and RequestReceived precedes every request: counting them would count
# every request twice.
COUNTED_STAGES = frozenset({"ResponseComplete", "Panic"})
KNOWN_STAGES = frozenset({"RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"})
DECISION_ANNOTATION = "authorization.k8s.io/decision"
# Kubernetes limits a request body to 3 MiB; with its metadata an event line stays below.
DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024
MAX_REMEMBERED_PROBLEMS = 100


@dataclass(frozen=True, slots=True)
class BodyFacts:
    """What the detectors need from a request or response body, and nothing else."""

    pod_risks: tuple[str, ...] = ()  # "container app: privileged", "hostNetwork", ...
    role_ref: tuple[str, str] | None = None  # (kind, name) of a binding's roleRef
    name: str = ""  # metadata.name, for creations whose URL has none


@dataclass(slots=True)
class AuditEvent:
    audit_id: str
    stage: str
    level: str
    time: float  # epoch seconds at which the request was received
    verb: str
    user: str  # the identity the request acted as (the impersonated one, if any)
    groups: tuple[str, ...]
    authenticated_user: str  # who presented the credentials
    source_ips: tuple[str, ...]
    user_agent: str
    api_group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    path: str  # the request URI without its query (which may hold exec arguments)
    code: int | None
    decision: str | None
    has_body: bool  # a requestObject or responseObject was logged
    body: BodyFacts | None
    exec_command: str | None  # the program an exec ran (first `command` argument)
    dry_run: bool
    source: str = ""
    line: int = 0
    # objectRef.resourceVersion: the version a write was made against, when logged (the
    # agent matches it to the change it saw).
    resource_version: str = ""

    @property
    def counted(self) -> bool:
        return self.stage in COUNTED_STAGES

    @property
    def allowed(self) -> bool:
        """The authorizer let the request through (an absent decision means it did not
        record one; a 401 or 403 then says it was refused)."""
        if self.decision is not None:
            return self.decision == "allow"
        return self.code not in (401, 403)

    @property
    def succeeded(self) -> bool:
        return self.code is not None and 200 <= self.code < 300

    def object_ref(self) -> str:
        """`resource[.group]/namespace/name[/subresource]`, or the path of a non-resource
        request."""
        if not self.resource:
            return self.path
        resource = f"{self.resource}.{self.api_group}" if self.api_group else self.resource
        parts = [resource]
        if self.namespace:
            parts.append(self.namespace)
        if self.name:
            parts.append(self.name)
        if self.subresource:
            parts.append(self.subresource)
        return "/".join(parts)


@dataclass(frozen=True, slots=True)
class Problem:
    source: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reason}"


@dataclass(slots=True)
class ParseStats:
    """Counts of what a reader saw; the first problems are kept to name them."""

    lines: int = 0
    events: int = 0  # counted events, each audit ID once
    other_stages: int = 0  # RequestReceived / ResponseStarted: read, not counted
    duplicates: int = 0
    malformed: int = 0
    problems: list[Problem] = field(default_factory=list)

    def problem(self, source: str, line: int, reason: str) -> None:
        self.malformed += 1
        if len(self.problems) < MAX_REMEMBERED_PROBLEMS:
            self.problems.append(Problem(source, line, reason))

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "events": self.events,
            "otherStages": self.other_stages,
            "duplicates": self.duplicates,
            "malformed": self.malformed,
            "problems": [
                {"source": p.source, "line": p.line, "reason": p.reason} for p in self.problems
            ],
        }


class MalformedEvent(ValueError):
    """A JSON value that is not an audit event; the message quotes none of its content."""


class OversizedLine:
    """Stands for a line longer than the cap; its content was never read into memory."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length


# --- one document -------------------------------------------------------------------------


def decode_document(data: bytes) -> list[dict[str, Any]]:
    """The event objects in one JSON text: an Event, or an EventList's items (items that
    are not objects stay in the list so that they are counted, as `{}`)."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise MalformedEvent(f"not JSON ({_json_error(error)})") from None
    if not isinstance(value, dict):
        raise MalformedEvent(f"a JSON {type(value).__name__}, not an audit event")
    if value.get("kind") == "EventList":
        items = value.get("items")
        if not isinstance(items, list):
            raise MalformedEvent("an EventList without an items list")
        return [item if isinstance(item, dict) else {} for item in items]
    return [value]


def _json_error(error: orjson.JSONDecodeError) -> str:
    # orjson's message names the position only: safe to show, unlike the text.
    return f"{error.msg} at character {error.pos}"


def parse_event(data: dict[str, Any], source: str = "", line: int = 0) -> AuditEvent:
    """One audit event from its decoded JSON; MalformedEvent if it is not one."""
    audit_id = data.get("auditID")
    if not isinstance(audit_id, str) or not audit_id:
        raise MalformedEvent("no auditID")
    stage = data.get("stage")
    if not isinstance(stage, str) or stage not in KNOWN_STAGES:
        raise MalformedEvent("no known stage")
    time = _timestamp(data.get("requestReceivedTimestamp"))
    if time is None:
        time = _timestamp(data.get("stageTimestamp"))
        if time is None:
            raise MalformedEvent("no valid requestReceivedTimestamp or stageTimestamp")
    # Written out field by field rather than through helpers: this runs for every line of
    # a log, and the calls cost more than the checks.
    user_info = data.get("user")
    if type(user_info) is not dict:
        user_info = _EMPTY
    authenticated_user = user_info.get("username")
    if type(authenticated_user) is not str:
        authenticated_user = ""
    groups_value = user_info.get("groups")
    user = authenticated_user
    impersonated = data.get("impersonatedUser")
    if type(impersonated) is dict:
        impersonated_name = impersonated.get("username")
        if type(impersonated_name) is str and impersonated_name:
            user = impersonated_name
        groups_value = impersonated.get("groups")
    ref = data.get("objectRef")
    if type(ref) is not dict:
        ref = _EMPTY
    uri = data.get("requestURI")
    path, _, query = uri.partition("?") if type(uri) is str else ("", "", "")
    status = data.get("responseStatus")
    code = status.get("code") if type(status) is dict else None
    annotations = data.get("annotations")
    decision = annotations.get(DECISION_ANNOTATION) if type(annotations) is dict else None
    resource = _text(ref.get("resource"))
    subresource = _text(ref.get("subresource"))
    request_object = data.get("requestObject")
    response_object = data.get("responseObject")
    has_body = type(request_object) is dict or type(response_object) is dict
    body = (
        _body_facts(resource, request_object, response_object)
        if has_body and not subresource and resource in _BODY_RESOURCES
        else None
    )
    name = _text(ref.get("name")) or (body.name if body else "")
    return AuditEvent(
        audit_id,
        stage,
        _text(data.get("level")),
        time,
        _text(data.get("verb")),
        user,
        _strings(groups_value),
        authenticated_user,
        _strings(data.get("sourceIPs")),
        _text(data.get("userAgent")),
        _text(ref.get("apiGroup")),
        resource,
        subresource,
        _text(ref.get("namespace")),
        name,
        path,
        code if type(code) is int else None,
        decision if type(decision) is str else None,
        has_body,
        body,
        _exec_command(query) if subresource == "exec" else None,
        "dryRun=" in query,
        source,
        line,
        _text(ref.get("resourceVersion")),
    )


def _text(value: Any) -> str:
    return value if type(value) is str else ""


_EMPTY: dict[str, Any] = {}
_BODY_RESOURCES = frozenset({"pods", "rolebindings", "clusterrolebindings"})


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    return _parse_timestamp(value)


@lru_cache(maxsize=65536)
def _parse_timestamp(value: str) -> float | None:
    # The cache pays off on duplicates and on the stages of one request.
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def _strings(value: Any) -> tuple[str, ...]:
    if type(value) is not list:
        return ()
    strings = tuple(value)
    if all(type(item) is str for item in strings):
        return strings
    return tuple(item for item in strings if type(item) is str)


def _exec_command(query: str) -> str | None:
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == "command":
            return unquote_plus(value)[:256]
    return None


def _body_facts(resource: str, request_object: Any, response_object: Any) -> BodyFacts:
    body = request_object if isinstance(request_object, dict) else as_dict(response_object)
    metadata = as_dict(body.get("metadata"))
    name = as_str(metadata.get("name")) or ""
    if not name and (prefix := as_str(metadata.get("generateName"))):
        name = prefix + "*"
    if resource == "pods":
        return BodyFacts(pod_risks=tuple(pod_risks(as_dict(body.get("spec")))), name=name)
    role_ref = as_dict(body.get("roleRef"))
    kind, ref_name = as_str(role_ref.get("kind")), as_str(role_ref.get("name"))
    return BodyFacts(role_ref=(kind, ref_name) if kind and ref_name else None, name=name)


def pod_risks(spec: dict[str, Any]) -> Iterator[str]:
    """The host-level access a pod spec asks for, each named by where it is."""
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag) is True:
            yield flag
    for volume in as_list(spec.get("volumes")):
        volume = as_dict(volume)
        host_path = as_dict(volume.get("hostPath"))
        if "hostPath" in volume:
            where = as_str(host_path.get("path")) or "?"
            yield f"volume {as_str(volume.get('name')) or '?'}: hostPath {where}"
    for field_name in ("initContainers", "containers", "ephemeralContainers"):
        for container in as_list(spec.get(field_name)):
            container = as_dict(container)
            context = as_dict(container.get("securityContext"))
            label = as_str(container.get("name")) or "?"
            if context.get("privileged") is True:
                yield f"container {label}: privileged"
            capabilities = as_list(as_dict(context.get("capabilities")).get("add"))
            if any(c in ("SYS_ADMIN", "CAP_SYS_ADMIN", "ALL") for c in capabilities):
                yield f"container {label}: adds capability SYS_ADMIN or ALL"


# --- streams of lines ---------------------------------------------------------------------


def events_from_lines(
    lines: Iterable[tuple[int, bytes | OversizedLine]],
    source: str,
    stats: ParseStats,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[AuditEvent]:
    """Every event (any stage) in numbered lines; bad lines are counted in `stats`."""
    for number, line in lines:
        stats.lines += 1
        if isinstance(line, OversizedLine):
            stats.problem(source, number, f"line of {line.length} bytes exceeds the cap")
            continue
        if len(line) > max_line_bytes:
            stats.problem(source, number, f"line of {len(line)} bytes exceeds the cap")
            continue
        if not line.strip():
            continue
        try:
            documents = decode_document(line)
        except MalformedEvent as error:
            stats.problem(source, number, str(error))
            continue
        for index, document in enumerate(documents):
            try:
                yield parse_event(document, source, number)
            except MalformedEvent as error:
                where = f"item {index}: " if len(documents) > 1 else ""
                stats.problem(source, number, f"{where}{error}")


class SeenAuditIds:
    """Audit IDs already counted; bounded so that `follow` runs for months in fixed
    memory (a duplicate older than the last `capacity` events is counted again)."""

    def __init__(self, capacity: int = 2_000_000) -> None:
        self._capacity = capacity
        self._seen: dict[str, None] = {}

    def add(self, audit_id: str) -> bool:
        """True the first time an ID is seen."""
        if audit_id in self._seen:
            return False
        self._seen[audit_id] = None
        if len(self._seen) > self._capacity:
            del self._seen[next(iter(self._seen))]
        return True


def counted_events(
    events: Iterable[AuditEvent], stats: ParseStats, seen: SeenAuditIds
) -> Iterator[AuditEvent]:
    """Only finished requests (ResponseComplete, Panic), each audit ID once."""
    for event in events:
        if event.stage not in COUNTED_STAGES:
            stats.other_stages += 1
            continue
        if not seen.add(event.audit_id):
            stats.duplicates += 1
            continue
        stats.events += 1
        yield event
