"""Exceptions (risk acceptance): a failing check on some subjects, accepted by an owner
until an expiry date. See docs/exceptions.md.

Exceptions come from the evidence store (`kubeproof exceptions add`), from YAML files kept
in git (`kubeproof scan --exceptions FILE`) and from the `kubeproof.io/exception`
annotation of an object. They are applied after the engine judged everything, as a pass
over the results: a failing result that a valid exception covers becomes `excepted`, with
the exception's id, owner and expiry in its reason and details; it is never hidden. A
failing result whose only exception has expired stays `fail` and its message says so.

Free of SQLAlchemy: a plain `kubeproof scan --exceptions FILE` loads no database code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase
from functools import cache
from pathlib import Path
from typing import Any

from kubeproof.bounded import UnreadableFile, read_bounded_text
from kubeproof.inventory import Inventory
from kubeproof.inventory.objects import as_dict
from kubeproof.inventory.selectors import label_selector_problem, selector_matches
from kubeproof.inventory.workloads import workload_of
from kubeproof.model import Result, Status, Subject
from kubeproof.redaction import redact

ANNOTATION = "kubeproof.io/exception"
DEFAULT_MAX_DAYS = 365
SOURCE_STORE, SOURCE_FILE, SOURCE_ANNOTATION = "store", "file", "annotation"
# Texts a person writes; long enough for a paragraph, short enough for a table cell.
MAX_TEXT = 2000
MAX_ITEMS = 200
_FILE_LIMIT = 1 << 20  # an exceptions file is a short, hand-written list
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CHECK_PATTERN = re.compile(r"^[A-Za-z0-9*?.\-\[\]!]+$")
_FILE_KEYS = frozenset(
    {
        "id",
        "checks",
        "subjects",
        "namespaces",
        "selector",
        "owner",
        "reason",
        "ticket",
        "approver",
        "created",
        "expires",
    }
)
_ANNOTATION_KEYS = frozenset({"checks", "owner", "reason", "ticket", "approver", "expires"})


class ExceptionSpecError(ValueError):
    """An exception that cannot be used; the message names the input and the field."""


# --- dates ------------------------------------------------------------------------------


def parse_date(text: Any, where: str) -> date:
    """A calendar date written YYYY-MM-DD (YAML may hand one over already parsed)."""
    if isinstance(text, datetime):
        return text.date()
    if isinstance(text, date):
        return text
    if not isinstance(text, str) or not _DATE.match(text.strip()):
        raise ExceptionSpecError(f"{where}: {_shown(text)} is not a date: use YYYY-MM-DD")
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ExceptionSpecError(f"{where}: {_shown(text)} is not a calendar date") from None


def expiry_problem(expires: date, *, today: date, max_days: int, since: date | None = None) -> str:
    """Why an expiry is unacceptable for a new exception ("" when it is fine): it must lie
    in the future, at most `max_days` after `since` (default today)."""
    if expires <= today:
        return f"expiry {expires.isoformat()} is not in the future (today is {today.isoformat()})"
    return too_far_problem(expires, since or today, max_days)


def too_far_problem(expires: date, since: date, max_days: int) -> str:
    if (expires - since).days > max_days:
        return (
            f"expiry {expires.isoformat()} is more than {max_days} days after "
            f"{since.isoformat()}: exceptions must be renewed at least that often"
        )
    return ""


def expires_at(expires: date) -> datetime:
    """An exception holds until the start of its expiry date (UTC): on that day it has
    expired."""
    return datetime(expires.year, expires.month, expires.day, tzinfo=UTC)


# --- scope ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectPattern:
    """`Kind/namespace/name` or `Kind/name`, optionally `[container]`; each part may use
    shell globs (`Deployment/shop/*`)."""

    kind: str
    namespace: str  # "" for cluster-scoped subjects
    name: str
    container: str | None = None

    def matches(self, subject: Subject) -> bool:
        if not fnmatchcase(subject.kind, self.kind):
            return False
        if not fnmatchcase(subject.namespace or "", self.namespace):
            return False
        if not fnmatchcase(subject.name, self.name):
            return False
        return self.container is None or fnmatchcase(subject.container or "", self.container)

    def __str__(self) -> str:
        text = (
            f"{self.kind}/{self.namespace}/{self.name}"
            if self.namespace
            else (f"{self.kind}/{self.name}")
        )
        return f"{text}[{self.container}]" if self.container is not None else text


def parse_subject_pattern(text: Any, where: str) -> SubjectPattern:
    if not isinstance(text, str) or not text.strip():
        raise ExceptionSpecError(f"{where}: a subject must be a non-empty string")
    body, container = text.strip(), None
    if body.endswith("]") and "[" in body:
        body, _, rest = body.partition("[")
        container = rest[:-1]
        if not container:
            raise ExceptionSpecError(f"{where}: {_shown(text)} has an empty [container]")
    parts = body.split("/")
    if len(parts) in (2, 3) and all(parts) and not any(_blank(p) for p in parts):
        if len(parts) == 3:
            return SubjectPattern(parts[0], parts[1], parts[2], container)
        return SubjectPattern(parts[0], "", parts[1], container)
    raise ExceptionSpecError(
        f"{where}: cannot read subject {_shown(text)}: use Kind/namespace/name "
        "(e.g. Deployment/shop/api) or Kind/name for cluster-scoped objects, "
        "optionally [container]"
    )


def _blank(part: str) -> bool:
    return part != part.strip() or not part.strip()


def parse_selector(value: Any, where: str) -> dict[str, Any]:
    """A label selector: `app=api,tier=web` (matchLabels), or a mapping with matchLabels
    and/or matchExpressions. An empty selector would select everything: refused."""
    if isinstance(value, str):
        labels: dict[str, str] = {}
        for item in (part.strip() for part in value.split(",")):
            key, sep, label_value = item.partition("=")
            if not sep or not key.strip():
                raise ExceptionSpecError(
                    f"{where}: cannot read selector {_shown(value)}: use key=value[,key=value]"
                )
            labels[key.strip()] = label_value.strip()
        value = {"matchLabels": labels}
    problem = label_selector_problem(value, where)
    if problem is not None or not isinstance(value, dict):
        raise ExceptionSpecError(problem or f"{where} is not a mapping")
    unknown = sorted(str(k) for k in value if k not in ("matchLabels", "matchExpressions"))
    if unknown:
        raise ExceptionSpecError(f"{where}: unknown field {unknown[0]!r}")
    if not value.get("matchLabels") and not value.get("matchExpressions"):
        raise ExceptionSpecError(f"{where}: an empty selector would select every object")
    return {k: value[k] for k in ("matchLabels", "matchExpressions") if value.get(k)}


def check_pattern(text: Any, where: str) -> str:
    if not isinstance(text, str) or not _CHECK_PATTERN.match(text.strip()):
        raise ExceptionSpecError(
            f"{where}: {_shown(text)} is not a check id or glob (e.g. pss.privileged, pss.*)"
        )
    return text.strip()


# --- the exception ----------------------------------------------------------------------

ObjectKey = tuple[str, str, str]  # kind, namespace ("" when none), name


@dataclass(frozen=True)
class RiskException:
    id: str
    source: str  # store | file | annotation
    checks: tuple[str, ...]
    owner: str
    reason: str
    expires: date
    subjects: tuple[SubjectPattern, ...] = ()
    namespaces: tuple[str, ...] = ()
    selector: dict[str, Any] | None = None
    ticket: str | None = None
    approver: str | None = None
    created: datetime | None = None
    origin: str = ""  # the file, or the object the annotation is on
    only_object: ObjectKey | None = None  # annotations: that object and nothing else

    def expired(self, now: datetime) -> bool:
        return now >= expires_at(self.expires)

    def covers_check(self, check_id: str) -> bool:
        return any(fnmatchcase(check_id, pattern) for pattern in self.checks)

    def covers(self, subject: Subject, labels: Mapping[ObjectKey, dict[str, str]]) -> bool:
        """Every scope given must hold (subjects, namespaces, selector: AND)."""
        key = object_key(subject)
        if self.only_object is not None and key != self.only_object:
            return False
        if self.subjects and not any(p.matches(subject) for p in self.subjects):
            return False
        if self.namespaces:
            namespace = subject_namespace(subject)
            if not any(fnmatchcase(namespace, p) for p in self.namespaces):
                return False
        if self.selector is not None:
            return selector_matches(self.selector, labels.get(key, {}))
        return True

    def details(self, *, expired: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "origin": self.origin or None,
            "owner": self.owner,
            "reason": self.reason,
            "ticket": self.ticket,
            "approver": self.approver,
            "created": self.created.isoformat() if self.created else None,
            "expires": self.expires.isoformat(),
        }
        if expired:
            data["expired"] = True
        return data

    def describe(self) -> str:
        where = f" ({self.source}: {self.origin})" if self.origin else f" ({self.source})"
        ticket = f", ticket {self.ticket}" if self.ticket else ""
        approver = f", approved by {self.approver}" if self.approver else ""
        return (
            f"exception {self.id}{where}, owner {self.owner}{approver}{ticket}, "
            f"expires {self.expires.isoformat()}: {self.reason}"
        )


def object_key(subject: Subject) -> ObjectKey:
    return (subject.kind, subject.namespace or "", subject.name)


def subject_namespace(subject: Subject) -> str:
    """The namespace a subject belongs to; a Namespace belongs to itself."""
    if subject.kind == "Namespace" and not subject.namespace:
        return subject.name
    return subject.namespace or ""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ExceptionSpecError(f"{where}: {key} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ExceptionSpecError(f"{where}.{key}: must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise ExceptionSpecError(f"{where}.{key}: longer than {MAX_TEXT} characters")
    # Written by people and repeated in every report: a pasted credential must not be.
    return redact(value.strip())


def _string_list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ExceptionSpecError(f"{where}.{key}: must be a list")
    if len(value) > MAX_ITEMS:
        raise ExceptionSpecError(f"{where}.{key}: more than {MAX_ITEMS} entries")
    return value


@dataclass(frozen=True)
class Limits:
    """What every exception is held to when it is read."""

    today: date
    max_days: int = DEFAULT_MAX_DAYS


def exception_from_mapping(
    data: Any, where: str, *, source: str, limits: Limits, allowed: frozenset[str] = _FILE_KEYS
) -> RiskException:
    """One exception from a file entry or an annotation, validated field by field. An
    expiry in the past is accepted (the exception reads as expired); one further away than
    `limits.max_days` from its `created` date (default today) is refused."""
    if not isinstance(data, dict):
        raise ExceptionSpecError(f"{where}: an exception must be a mapping")
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise ExceptionSpecError(
            f"{where}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )
    checks = [
        check_pattern(c, f"{where}.checks[{i}]")
        for i, c in enumerate(_string_list(data, "checks", where))
    ]
    if not checks:
        raise ExceptionSpecError(f"{where}: checks is required (a list of check ids or globs)")
    subjects = [
        parse_subject_pattern(s, f"{where}.subjects[{i}]")
        for i, s in enumerate(_string_list(data, "subjects", where))
    ]
    namespaces = []
    for index, namespace in enumerate(_string_list(data, "namespaces", where)):
        if not isinstance(namespace, str) or not namespace.strip():
            raise ExceptionSpecError(f"{where}.namespaces[{index}]: must be a non-empty string")
        namespaces.append(namespace.strip())
    selector = (
        parse_selector(data["selector"], f"{where}.selector")
        if data.get("selector") is not None
        else None
    )
    if source != SOURCE_ANNOTATION and not (subjects or namespaces or selector):
        raise ExceptionSpecError(
            f"{where}: give subjects, namespaces or selector: "
            "an exception for every subject in every namespace is not accepted"
        )
    expires = parse_date(data.get("expires"), f"{where}.expires") if "expires" in data else None
    if expires is None:
        raise ExceptionSpecError(f"{where}: expires is required (YYYY-MM-DD)")
    created = parse_date(data["created"], f"{where}.created") if "created" in data else None
    problem = too_far_problem(expires, created or limits.today, limits.max_days)
    if problem:
        raise ExceptionSpecError(f"{where}.expires: {problem}")
    identifier = _text(data, "id", where, required=source == SOURCE_FILE)
    return RiskException(
        id=identifier or "",
        source=source,
        checks=tuple(checks),
        owner=_text(data, "owner", where, required=True) or "",
        reason=_text(data, "reason", where, required=True) or "",
        expires=expires,
        subjects=tuple(subjects),
        namespaces=tuple(namespaces),
        selector=selector,
        ticket=_text(data, "ticket", where, required=False),
        approver=_text(data, "approver", where, required=False),
        created=datetime(created.year, created.month, created.day, tzinfo=UTC) if created else None,
    )


# --- files ------------------------------------------------------------------------------


@cache
def _exceptions_loader() -> Any:
    """SafeLoader that leaves dates as text: PyYAML's own date parsing raises on
    `2027-13-01` without saying where, and parse_date names the field. Built on first use:
    a scan without exception files does not import PyYAML."""
    import yaml

    class ExceptionsLoader(yaml.SafeLoader):
        yaml_implicit_resolvers = {
            first: [(tag, pattern) for tag, pattern in resolvers if not tag.endswith(":timestamp")]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }

    return ExceptionsLoader


def load_exceptions_file(path: str, limits: Limits) -> list[RiskException]:
    """`exceptions: [...]` from a YAML file; every problem names the file and the field."""
    try:
        text = read_bounded_text(path, _FILE_LIMIT, path)
    except UnreadableFile as refused:
        raise ExceptionSpecError(str(refused)) from None
    import yaml

    try:
        data = yaml.load(text, Loader=_exceptions_loader())  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "malformed YAML"
        raise ExceptionSpecError(f"{path}:{line}: not valid YAML: {problem}") from None
    except RecursionError:
        raise ExceptionSpecError(f"{path}: nested too deeply") from None
    except (ValueError, TypeError) as error:  # a constructor's complaint about a scalar
        raise ExceptionSpecError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict) or set(data) - {"exceptions"}:
        raise ExceptionSpecError(f"{path}: expected a mapping with one key, exceptions: [...]")
    entries = data.get("exceptions")
    if not isinstance(entries, list):
        raise ExceptionSpecError(f"{path}: exceptions must be a list")
    if len(entries) > 10 * MAX_ITEMS:
        raise ExceptionSpecError(f"{path}: more than {10 * MAX_ITEMS} exceptions")
    found: list[RiskException] = []
    ids: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"{path}: exceptions[{index}]"
        exception = exception_from_mapping(entry, where, source=SOURCE_FILE, limits=limits)
        if exception.id in ids:
            raise ExceptionSpecError(f"{where}.id: {exception.id!r} is used twice")
        ids.add(exception.id)
        found.append(replace(exception, origin=path))
    return found


# --- annotations ------------------------------------------------------------------------


@dataclass
class AnnotationExceptions:
    exceptions: list[RiskException] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # ignored annotations, and why


def annotation_exceptions(inventory: Inventory, limits: Limits) -> AnnotationExceptions:
    """Exceptions in `kubeproof.io/exception` annotations, each for its own object only. The
    value is one JSON object or a list of them, with checks, owner, reason, expires and
    optionally ticket and approver. A malformed annotation is ignored (its results keep
    failing) and reported."""
    found = AnnotationExceptions()
    for obj in inventory:
        raw = as_dict(obj.metadata.get("annotations")).get(ANNOTATION)
        if raw is None:
            continue
        where = f"{obj.subject} annotation {ANNOTATION}"
        try:
            found.exceptions.extend(_from_annotation(raw, where, obj.subject, limits))
        except ExceptionSpecError as error:
            found.problems.append(f"{error} (ignored)")
    return found


def _from_annotation(raw: Any, where: str, subject: Subject, limits: Limits) -> list[RiskException]:
    if not isinstance(raw, str) or len(raw) > 16 * MAX_TEXT:
        raise ExceptionSpecError(f"{where}: must be a JSON string of reasonable size")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise ExceptionSpecError(f"{where}: not valid JSON") from None
    entries = data if isinstance(data, list) else [data]
    found = []
    for index, entry in enumerate(entries[:MAX_ITEMS]):
        label = f"{where}[{index}]" if isinstance(data, list) else where
        exception = exception_from_mapping(
            entry, label, source=SOURCE_ANNOTATION, limits=limits, allowed=_ANNOTATION_KEYS
        )
        suffix = f"#{index + 1}" if isinstance(data, list) else ""
        found.append(
            replace(
                exception,
                id=f"annotation:{subject}{suffix}",
                origin=str(subject),
                only_object=object_key(subject),
            )
        )
    return found


# --- applying ---------------------------------------------------------------------------


@dataclass
class Applied:
    """What the pass did: results excepted and results whose exception expired, by id."""

    excepted: dict[str, int] = field(default_factory=dict)
    expired: dict[str, int] = field(default_factory=dict)
    by_id: dict[str, RiskException] = field(default_factory=dict)


def labels_by_object(inventory: Inventory) -> dict[ObjectKey, dict[str, str]]:
    """What a selector matches: an object's own labels and, for a workload, its pod
    template's labels (the object's win where both set a key)."""
    labels: dict[ObjectKey, dict[str, str]] = {}
    for obj in inventory:
        workload = workload_of(obj)
        pod_labels = workload.pod_labels if workload is not None else {}
        labels[object_key(obj.subject)] = {**pod_labels, **obj.labels}
    return labels


def apply_exceptions(
    results: Sequence[Result],
    exceptions: Iterable[RiskException],
    *,
    now: datetime,
    inventory: Inventory | None = None,
) -> Applied:
    """Turn failing results covered by a valid exception into `excepted`, in place. A
    result covered only by expired exceptions stays `fail`, and its message names the one
    that expired last. Other statuses are left alone: what could not be judged is not
    excepted."""
    applied = Applied()
    candidates = list(exceptions)
    if not candidates:
        return applied
    needs_labels = inventory is not None and any(e.selector for e in candidates)
    labels = labels_by_object(inventory) if needs_labels and inventory is not None else {}
    by_check: dict[str, list[RiskException]] = {}
    for result in results:
        if result.status is not Status.FAIL:
            continue
        check_id = result.check.id
        relevant = by_check.get(check_id)
        if relevant is None:
            relevant = by_check[check_id] = [e for e in candidates if e.covers_check(check_id)]
        matching = [e for e in relevant if e.covers(result.subject, labels)]
        if matching:
            _decide(result, matching, now, applied)
    return applied


def _decide(result: Result, matching: list[RiskException], now: datetime, applied: Applied) -> None:
    valid = sorted((e for e in matching if not e.expired(now)), key=lambda e: (e.expires, e.id))
    if valid:
        chosen = valid[-1]  # the one that holds longest
        result.status = Status.EXCEPTED
        result.reason = chosen.describe()
        result.extra = {**result.extra, "exception": chosen.details()}
        applied.excepted[chosen.id] = applied.excepted.get(chosen.id, 0) + 1
    else:
        chosen = max(matching, key=lambda e: (e.expires, e.id))
        on = chosen.expires.isoformat()
        result.message = f"{result.message} (exception {chosen.id} expired on {on})"
        result.extra = {**result.extra, "exception": chosen.details(expired=True)}
        applied.expired[chosen.id] = applied.expired.get(chosen.id, 0) + 1
    applied.by_id[chosen.id] = chosen


def today_utc(now: datetime) -> date:
    return now.astimezone(UTC).date()


def load_files(paths: Sequence[str], limits: Limits) -> list[RiskException]:
    found: list[RiskException] = []
    for path in paths:
        found.extend(load_exceptions_file(str(Path(path)), limits))
    return found
