"""The vocabulary every part of kubeproof shares: subjects, results and their status."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    EXCEPTED = "excepted"
    # Never a silent pass: the evidence could not be collected, and `reason` says why.
    NOT_EVALUATED = "not_evaluated"


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    """A stable identity: the top owner of a workload (plus container), or a plain object.

    Pods come and go; their Deployment, namespace and container name do not, which is
    what lets findings keep their history across pod churn.
    """

    api_version: str
    kind: str
    namespace: str | None
    name: str
    container: str | None = None

    def with_container(self, container: str | None) -> Subject:
        return Subject(self.api_version, self.kind, self.namespace, self.name, container)

    def __str__(self) -> str:
        text = (
            f"{self.kind}/{self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind}/{self.name}")
        )
        return f"{text}[{self.container}]" if self.container else text

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
        }
        if self.container is not None:
            data["container"] = self.container
        return data


@dataclass(frozen=True, slots=True)
class PssRef:
    control: str
    level: str


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """What a check means: read from the catalogue data, never from code."""

    id: str
    title: str
    description: str
    severity: Severity
    remediation: str
    criteria: dict[str, str]  # Trust Services Criterion id -> why this check evidences it
    scope: str  # container | workload | object | namespace
    kinds: tuple[str, ...] = ()  # object scope: the kinds it applies to
    needs: tuple[str, ...] = ()  # kinds that must have been fully read for a verdict
    cis: tuple[str, ...] = ()
    pss: PssRef | None = None
    nsa: tuple[str, ...] = ()
    group: str = ""


# Not frozen: a scan builds hundreds of thousands of these, and a frozen dataclass's
# __init__ costs several times more. Nothing mutates a Result after the engine made it.
@dataclass(slots=True)
class Result:
    check: CheckSpec
    status: Status
    subject: Subject
    message: str
    location: Location | None = None
    path: str | None = None  # field path of the offending value, when known
    reason: str | None = None  # why a result is not_evaluated or excepted
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return finding_fingerprint(self.check.id, self.subject)


def finding_fingerprint(check_id: str, subject: Subject) -> str:
    """A stable id for (check, subject): the same across scans, formats and pod churn.

    apiVersion is left out on purpose: moving a Deployment from a beta API group to
    apps/v1 does not make it a different workload, and its history must carry over.
    """
    digest = fingerprint_prefix(check_id)
    digest.update(fingerprint_subject(subject))
    return digest.hexdigest()[:32]


# The fingerprint hashes check id, kind, namespace, name and container joined by the unit
# separator, which cannot appear in a Kubernetes name, so parts cannot run together. It is
# built in two halves so that a report can hash each check's half once and copy it.
def fingerprint_prefix(check_id: str) -> hashlib._Hash:
    """The hash state after a check's part of the fingerprint."""
    return hashlib.sha256(f"{check_id}\x1f".encode())


def fingerprint_subject(subject: Subject) -> bytes:
    """A subject's part of the fingerprint, to add to `fingerprint_prefix`."""
    parts = (subject.kind, subject.namespace or "", subject.name, subject.container or "")
    return "\x1f".join(parts).encode("utf-8")


class Fingerprints:
    """`finding_fingerprint` for every result of a report, faster: each check's half is
    hashed once and each subject's bytes made once. A report's subjects are shared by many
    results and live as long as it does, so their identity is a safe and cheap key."""

    def __init__(self) -> None:
        self.checks: dict[str, hashlib._Hash] = {}
        self.subjects: dict[int, bytes] = {}

    def of(self, result: Result) -> str:
        check_id, subject = result.check.id, result.subject
        prefix = self.checks.get(check_id)
        if prefix is None:
            prefix = self.checks[check_id] = fingerprint_prefix(check_id)
        part = self.subjects.get(id(subject))
        if part is None:
            part = self.subjects[id(subject)] = fingerprint_subject(subject)
        digest = prefix.copy()
        digest.update(part)
        return digest.hexdigest()[:32]
