"""What a notification says, built from a detection, a Falco alert or a drift transition;
already redacted (it is built from kubeproof's redacted results and rows)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeproof.model import Result, Severity


@dataclass(frozen=True, slots=True)
class Notification:
    key: str  # notifications with the same key within the window are sent once
    event: str  # detection | transition
    check: str
    title: str
    severity: Severity
    subject: str
    text: str
    criteria: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "KubeproofNotification",
            "event": self.event,
            "key": self.key,
            "check": self.check,
            "title": self.title,
            "severity": self.severity.value,
            "criteria": list(self.criteria),
            "subject": self.subject,
            "text": self.text,
            "details": dict(self.details),
        }


def subject_text(result: Result) -> str:
    subject = result.subject
    where = f"{subject.namespace}/" if subject.namespace else ""
    container = f" (container {subject.container})" if subject.container else ""
    return f"{subject.kind} {where}{subject.name}{container}"


def from_detection(result: Result) -> Notification:
    """An audit detection or a Falco alert (its result, as `audit serve` prints it)."""
    evidence = result.extra.get("evidence", {})
    key = str(result.extra.get("key", result.fingerprint))
    details = {
        name: evidence[name]
        for name in ("auditIDs", "sourceIPs", "objects", "firstTime", "time", "pod", "rule")
        if name in evidence
    }
    return Notification(
        key=f"{result.check.id}:{key}",
        event="detection",
        check=result.check.id,
        title=result.check.title,
        severity=result.check.severity,
        subject=subject_text(result),
        text=result.message,
        criteria=tuple(result.check.criteria),
        details=details,
    )


def from_transition(row: Mapping[str, Any], result: Result) -> Notification:
    """An agent transition (newly failing, resolved, changed, deleted) of `result`."""
    transition = str(row.get("transition", "changed"))
    return Notification(
        key=f"{transition}:{result.check.id}:{result.fingerprint}",
        event="transition",
        check=result.check.id,
        title=f"{transition}: {result.check.title}",
        severity=result.check.severity,
        subject=subject_text(result),
        text=result.message,
        criteria=tuple(result.check.criteria),
        details={"transition": transition, "cluster": str(row.get("cluster", ""))},
    )
