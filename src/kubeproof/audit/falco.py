"""Falco alerts (its JSON output: `json_output: true`, posted by `http_output` or
falcosidekick) as CC7.2 results attached to workloads.

Falco's priority becomes the result's severity and its tags add the criteria they
evidence (MITRE ATT&CK tactics → CC6.x); every alert evidences CC7.2. Each rule is a
detector whose id is `falco.` + the rule's name in lower-case words joined by dashes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from kubeproof.model import CheckSpec, Severity

# Falco's eight priorities, case-insensitive (falcosidekick lower-cases them).
PRIORITY_SEVERITY: dict[str, Severity] = {
    "emergency": Severity.CRITICAL,
    "alert": Severity.CRITICAL,
    "critical": Severity.CRITICAL,
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "notice": Severity.LOW,
    "informational": Severity.INFO,
    "info": Severity.INFO,
    "debug": Severity.INFO,
}

CC72_RATIONALE = (
    "A runtime security alert raised by Falco on a monitored system component is evidence "
    "that the entity monitors its systems for anomalies indicative of malicious acts."
)
# Falco's rules tag MITRE ATT&CK tactics; each adds the criterion whose control the tactic
# tries to defeat. Documented in docs/audit.md.
TAG_CRITERIA: dict[str, tuple[tuple[str, str], ...]] = {
    "mitre_privilege_escalation": (
        ("CC6.1", "An attempt to gain privileges defeats logical access controls."),
        ("CC6.3", "Escalating privileges bypasses role-based, least-privilege access."),
    ),
    "mitre_credential_access": (
        ("CC6.1", "Reading credentials defeats the protection of authentication secrets."),
    ),
    "mitre_initial_access": (
        ("CC6.6", "An intrusion from outside the system boundary was attempted."),
    ),
    "mitre_lateral_movement": (
        ("CC6.6", "Movement between components crosses an internal boundary."),
    ),
    "mitre_command_and_control": (
        ("CC6.6", "A connection to an outside controller crosses the system boundary."),
    ),
    "mitre_exfiltration": (
        ("CC6.7", "Data leaving by an unexpected channel defeats transmission controls."),
    ),
    "mitre_execution": (
        ("CC6.8", "An unexpected program ran: unauthorised or malicious software."),
    ),
    "mitre_persistence": (
        ("CC6.8", "A change that survives restarts is how malicious software stays."),
    ),
    "mitre_defense_evasion": (
        ("CC6.8", "Hiding activity is how malicious software avoids detection."),
    ),
}
MAX_ALERTS_PER_BODY = 10_000
_FIELD_LIMIT = 4096  # no Falco field is this long; longer text is cut, not refused
_NOT_WORD = re.compile(r"[^a-z0-9]+")


class FalcoError(ValueError):
    """A body that is not a Falco alert; the message quotes none of its content."""


@dataclass(frozen=True, slots=True)
class FalcoAlert:
    rule: str
    priority: str  # as Falco wrote it
    severity: Severity
    time: float  # epoch seconds
    output: str
    tags: tuple[str, ...]
    hostname: str
    source: str  # syscall, k8s_audit, ...
    namespace: str
    pod: str
    container_id: str
    container_name: str
    image: str
    process: str

    @property
    def key(self) -> str:
        """The same alert posted twice (a retry) has the same key."""
        text = "\x1f".join((self.rule, repr(self.time), self.hostname, self.output))
        return "falco:" + hashlib.sha256(text.encode()).hexdigest()[:24]

    @property
    def detector_id(self) -> str:
        return detector_id(self.rule)


def parse_alerts(body: bytes) -> list[dict[str, Any] | FalcoError]:
    """The alerts in one POST body: one JSON object, a JSON array of them, or JSON lines.
    FalcoError when the body is none of these; an element that is not an alert is
    returned as its FalcoError so that it can be counted."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        value = _json_lines(body, error)
    if isinstance(value, dict):
        values: list[Any] = [value]
    elif isinstance(value, list):
        values = value
    else:
        raise FalcoError(f"a JSON {type(value).__name__}, not a Falco alert")
    if len(values) > MAX_ALERTS_PER_BODY:
        raise FalcoError(f"more than {MAX_ALERTS_PER_BODY} alerts in one body")
    return [
        v if isinstance(v, dict) else FalcoError("an element is not a JSON object") for v in values
    ]


def _json_lines(body: bytes, error: orjson.JSONDecodeError) -> list[Any]:
    lines = [line for line in body.split(b"\n") if line.strip()]
    if len(lines) < 2:
        raise FalcoError(f"not JSON ({error.msg} at character {error.pos})") from None
    values = []
    for number, line in enumerate(lines, 1):
        try:
            values.append(orjson.loads(line))
        except orjson.JSONDecodeError as line_error:
            values.append(FalcoError(f"line {number}: not JSON ({line_error.msg})"))
    return values


def parse_alert(data: Mapping[str, Any]) -> FalcoAlert:
    """One alert from its decoded JSON; FalcoError naming the field that is wrong."""
    rule = _required_text(data, "rule")
    priority = _required_text(data, "priority")
    severity = PRIORITY_SEVERITY.get(priority.lower())
    if severity is None:
        raise FalcoError("field priority: not one of Falco's priorities (Emergency ... Debug)")
    time = _time(data.get("time"))
    output = data.get("output", "")
    if not isinstance(output, str):
        raise FalcoError("field output: not a string")
    fields = data.get("output_fields", {})
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise FalcoError("field output_fields: not an object")
    tags = data.get("tags", [])
    if tags is None:
        tags = []
    if not isinstance(tags, list):
        raise FalcoError("field tags: not a list")
    return FalcoAlert(
        rule=rule,
        priority=priority,
        severity=severity,
        time=time,
        output=output[:_FIELD_LIMIT],
        tags=tuple(sorted({t[:128] for t in tags if isinstance(t, str)})),
        hostname=_optional_text(data.get("hostname")),
        source=_optional_text(data.get("source")),
        namespace=_optional_text(fields.get("k8s.ns.name")),
        pod=_optional_text(fields.get("k8s.pod.name")),
        container_id=_optional_text(fields.get("container.id")),
        container_name=_optional_text(fields.get("container.name")),
        image=_optional_text(fields.get("container.image.repository")),
        process=_optional_text(fields.get("proc.name")),
    )


def _required_text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise FalcoError(f"field {name}: missing or not a non-empty string")
    return value.strip()[:_FIELD_LIMIT]


def _optional_text(value: Any) -> str:
    # Falco writes "<NA>" (or null) for a field it could not resolve.
    if not isinstance(value, str) or value in ("<NA>", "N/A"):
        return ""
    return value[:_FIELD_LIMIT]


def _time(value: Any) -> float:
    """Falco's RFC 3339 time, with nanoseconds (Python reads at most microseconds)."""
    if not isinstance(value, str) or len(value) > 64:
        raise FalcoError("field time: missing or not an RFC 3339 time")
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise FalcoError("field time: not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise FalcoError("field time: has no time zone")
    return moment.timestamp()


def detector_id(rule: str) -> str:
    words = _NOT_WORD.sub("-", rule.lower()).strip("-")
    return "falco." + (words[:120] or "unnamed-rule")


def criteria_for(tags: tuple[str, ...]) -> dict[str, str]:
    criteria = {"CC7.2": CC72_RATIONALE}
    for tag in tags:
        for criterion, rationale in TAG_CRITERIA.get(tag.lower(), ()):
            criteria.setdefault(criterion, rationale)
    return criteria


@lru_cache(maxsize=1024)
def check_for(rule: str, severity: Severity, tags: tuple[str, ...]) -> CheckSpec:
    """The detector a Falco rule stands for, as a check of kubeproof's catalogue shape."""
    return CheckSpec(
        id=detector_id(rule),
        title=f"Falco: {rule}",
        description=f"Falco's runtime rule {rule!r} matched in a running container or host.",
        severity=severity,
        remediation="Investigate the process and the workload named in the alert; if it was "
        "not expected, isolate the workload and rotate the credentials it can reach.",
        criteria=criteria_for(tags),
        scope="workload",
        group="falco",
    )
