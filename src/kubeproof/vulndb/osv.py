"""OSV records (ossf.github.io/osv-schema): validation of what kubeproof relies on, and
whether a package version is affected — `versions` lists and ECOSYSTEM ranges with
introduced / fixed / last_affected / limit events, compared by the ecosystem's rules."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeproof.images.packages import normalise_pypi_name
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.vulndb.ecosystems import index_ecosystem
from kubeproof.vulndb.versions import Compare, InvalidVersion

EVENT_KINDS = ("introduced", "fixed", "last_affected", "limit")
_KEPT_FIELDS = (
    "id",
    "aliases",
    "summary",
    "severity",
    "database_specific",
    "affected",
    "withdrawn",
    "modified",
    "published",
)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class MalformedRecord(ValueError):
    """An OSV record without what matching needs; the message says what is missing."""


def package_key(ecosystem: str, name: str) -> str:
    """How a package is looked up: PyPI names normalised (PEP 503), others as written."""
    return normalise_pypi_name(name) if ecosystem == "PyPI" else name


def validate_record(document: Any) -> dict[str, Any]:
    """The record trimmed to the fields kubeproof uses; MalformedRecord if it is not one."""
    if not isinstance(document, dict):
        raise MalformedRecord("not a JSON object")
    record_id = document.get("id")
    if not isinstance(record_id, str) or not _ID.match(record_id):
        raise MalformedRecord("no valid id")
    affected = document.get("affected", [])
    if not isinstance(affected, list):
        raise MalformedRecord(f"{record_id}: affected is not a list")
    for number, entry in enumerate(affected):
        package = entry.get("package") if isinstance(entry, dict) else None
        if (
            not isinstance(package, dict)
            or not isinstance(package.get("ecosystem"), str)
            or not isinstance(package.get("name"), str)
        ):
            raise MalformedRecord(
                f"{record_id}: affected[{number}] has no package ecosystem and name"
            )
        if not all(isinstance(v, str) for v in as_list(entry.get("versions"))):
            raise MalformedRecord(f"{record_id}: affected[{number}].versions is not strings")
        for range_number, version_range in enumerate(as_list(entry.get("ranges"))):
            events = as_dict(version_range).get("events")
            if not isinstance(events, list) or not all(
                isinstance(e, dict)
                and len(e) == 1
                and next(iter(e)) in EVENT_KINDS
                and isinstance(next(iter(e.values())), str)
                for e in events
            ):
                raise MalformedRecord(
                    f"{record_id}: affected[{number}].ranges[{range_number}] has malformed events"
                )
    return {key: document[key] for key in _KEPT_FIELDS if key in document}


def matching_details(record: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(ecosystem, package key, detail JSON) per package a record names: the detail holds
    what matching and reporting need (ranges, versions, severity per entry; id-level
    aliases, summary, published), so matching never parses whole records. Withdrawn
    records are not indexed: matching ignores them."""
    if record.get("withdrawn"):
        return []
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for entry in map(as_dict, as_list(record.get("affected"))):
        package = as_dict(entry.get("package"))
        ecosystem = index_ecosystem(as_str(package.get("ecosystem")) or "")
        name = package_key(ecosystem.split(":", 1)[0], as_str(package.get("name")) or "")
        ranges = [
            {"type": as_str(r.get("type")), "events": as_list(r.get("events"))}
            for r in map(as_dict, as_list(entry.get("ranges")))
            if as_str(r.get("type")) in ("ECOSYSTEM", "SEMVER")
        ]
        grouped.setdefault((ecosystem, name), []).append(
            {
                "ranges": ranges,
                "versions": as_list(entry.get("versions")),
                "severity": severity_of(record, entry),
            }
        )
    shared = {
        "aliases": [str(a) for a in as_list(record.get("aliases"))],
        "summary": (as_str(record.get("summary")) or "")[:200],
        "published": as_str(record.get("published")),
    }
    return [
        (ecosystem, name, json.dumps({**shared, "entries": entries}, separators=(",", ":")))
        for (ecosystem, name), entries in grouped.items()
    ]


def affected_packages(record: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (
            index_ecosystem(str(entry["package"]["ecosystem"])),
            package_key(str(entry["package"]["ecosystem"]), str(entry["package"]["name"])),
        )
        for entry in as_list(record.get("affected"))
    }


@dataclass(frozen=True)
class Verdict:
    affected: bool
    fixed: str | None = None  # the first fixed version after the installed one
    undecidable: str | None = None  # why a range could not be evaluated


def _events(version_range: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (kind, value)
        for event in as_list(version_range.get("events"))
        for kind, value in as_dict(event).items()
        if isinstance(value, str)
    ]


def _past(version: str, kind: str, value: str, compare: Compare) -> bool:
    """Is `version` at or past a fix, or beyond the last affected version?"""
    order = compare(version, value)
    return order >= 0 if kind == "fixed" else order > 0


def range_verdict(version: str, version_range: dict[str, Any], compare: Compare) -> Verdict:
    """The OSV spec's evaluation: walk events in version order, toggling on introduced and
    off on fixed (or past last_affected); limits cap the range."""
    events = _events(version_range)

    def event_order(a: tuple[str, str], b: tuple[str, str]) -> int:
        if a[1] == b[1]:
            return 0
        if a[1] == "0":
            return -1
        if b[1] == "0":
            return 1
        return compare(a[1], b[1])

    try:
        ordered = sorted(
            (e for e in events if e[0] != "limit"), key=functools.cmp_to_key(event_order)
        )
        affected = False
        for kind, value in ordered:
            if kind == "introduced" and (value == "0" or compare(version, value) >= 0):
                affected = True
            elif kind in ("fixed", "last_affected") and _past(version, kind, value, compare):
                affected = False
        limits = [value for kind, value in events if kind == "limit" and value != "*"]
        if affected and limits and not any(compare(version, limit) < 0 for limit in limits):
            affected = False
        fixed = None
        if affected:
            later = [v for kind, v in ordered if kind == "fixed" and compare(v, version) > 0]
            fixed = min(later, key=functools.cmp_to_key(compare)) if later else None
    except InvalidVersion as error:
        return Verdict(False, undecidable=str(error))
    return Verdict(affected, fixed)


def entry_verdict(version: str, entry: dict[str, Any], compare: Compare) -> Verdict:
    """Is `version` affected according to one `affected[]` entry?"""
    undecidable = None
    for version_range in map(as_dict, as_list(entry.get("ranges"))):
        range_type = as_str(version_range.get("type"))
        if range_type not in ("ECOSYSTEM", "SEMVER"):
            continue  # GIT ranges name commits, not package versions
        verdict = range_verdict(version, version_range, compare)
        if verdict.affected:
            return verdict
        undecidable = undecidable or verdict.undecidable
    if version in as_list(entry.get("versions")):
        return Verdict(True)
    return Verdict(False, undecidable=undecidable)


def severity_of(record: dict[str, Any], entry: dict[str, Any]) -> str:
    """A CVSS vector when the record has one, else the database's own rating."""
    for severity in map(as_dict, as_list(record.get("severity"))):
        score = as_str(severity.get("score"))
        if score and (as_str(severity.get("type")) or "").startswith("CVSS"):
            return score
    rating = as_str(as_dict(record.get("database_specific")).get("severity"))
    if rating:
        return rating.upper()
    specific = as_dict(entry.get("ecosystem_specific"))
    rating = as_str(specific.get("severity")) or as_str(specific.get("urgency"))
    return rating.upper() if rating else "UNKNOWN"


# -- compiled entries: events parsed and ordered once, evaluated with version keys -----


@dataclass(frozen=True)
class CompiledRange:
    """One ECOSYSTEM/SEMVER range with its events in version order, as sort keys."""

    events: tuple[tuple[str, Any, str], ...]  # (kind, key or None for "0", text)
    limits: tuple[Any, ...]
    needs_version: bool  # False when only `introduced: "0"` (affects every version)
    error: str | None = None  # an event version the ecosystem cannot order

    def verdict(self, key: Any, key_error: str | None) -> Verdict:
        if self.error is not None:
            return Verdict(False, undecidable=self.error)
        if key is None and self.needs_version:
            return Verdict(False, undecidable=key_error)
        affected = False
        for kind, event_key, _ in self.events:
            if kind == "introduced":
                if event_key is None or key >= event_key:
                    affected = True
            elif kind == "fixed":
                if key >= event_key:
                    affected = False
            elif key > event_key:  # last_affected
                affected = False
        if affected and self.limits and not any(key < limit for limit in self.limits):
            affected = False
        fixed = None
        if affected:
            later = [(k, text) for kind, k, text in self.events if kind == "fixed" and k > key]
            fixed = min(later, key=lambda pair: pair[0])[1] if later else None
        return Verdict(affected, fixed)


@dataclass(frozen=True)
class CompiledEntry:
    ranges: tuple[CompiledRange, ...]
    versions: frozenset[str]

    def verdict(self, version: str, key: Any, key_error: str | None) -> Verdict:
        """The same answer as entry_verdict, from keys computed once."""
        undecidable = None
        for compiled in self.ranges:
            verdict = compiled.verdict(key, key_error)
            if verdict.affected:
                return verdict
            undecidable = undecidable or verdict.undecidable
        if version in self.versions:
            return Verdict(True)
        return Verdict(False, undecidable=undecidable)


def _event_sort_key(event: tuple[str, Any, str]) -> tuple[int, Any]:
    # As range_verdict orders them: any event at "0" comes first, in its original order.
    return (0, 0) if event[2] == "0" else (1, event[1])


def compile_range(version_range: dict[str, Any], key_of: Callable[[str], Any]) -> CompiledRange:
    raw = _events(version_range)
    try:
        events = [
            (kind, None if kind == "introduced" and value == "0" else key_of(value), value)
            for kind, value in raw
            if kind != "limit"
        ]
        limits = tuple(key_of(value) for kind, value in raw if kind == "limit" and value != "*")
        ordered = tuple(sorted(events, key=_event_sort_key))
    except InvalidVersion as error:
        return CompiledRange((), (), True, str(error))
    needs_version = bool(limits) or any(key is not None for _, key, _ in ordered)
    return CompiledRange(ordered, limits, needs_version)


def compile_entry(entry: dict[str, Any], key_of: Callable[[str], Any]) -> CompiledEntry:
    ranges = tuple(
        compile_range(version_range, key_of)
        for version_range in map(as_dict, as_list(entry.get("ranges")))
        if as_str(version_range.get("type")) in ("ECOSYSTEM", "SEMVER")
    )
    versions = frozenset(v for v in as_list(entry.get("versions")) if isinstance(v, str))
    return CompiledEntry(ranges, versions)
