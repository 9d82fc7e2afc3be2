"""Match an image's packages against the local OSV database. Distribution packages are
matched by their source package and the release (`Debian:12`, `Alpine:v3.19`), as the
distributions publish their advisories; Python packages by normalised name, npm packages
and Go modules (and the Go standard library, `stdlib`) by name. Packages that could not be
checked (no data for their ecosystem, unknown release, unorderable versions)
are reported, never counted as clean. Which ecosystem decides a package is
vulndb.ecosystems' answer (release_ecosystem, kept importable from here)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from kubeproof.collector import collector_paused
from kubeproof.images.osrelease import OperatingSystem
from kubeproof.images.packages import Package
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.vulndb.ecosystems import release_ecosystem, unmatched_reason
from kubeproof.vulndb.osv import CompiledEntry, compile_entry, package_key
from kubeproof.vulndb.severity import UNRATED, Rating
from kubeproof.vulndb.store import AffectedRow, PackageAdvisories, VulnDb
from kubeproof.vulndb.stored_keys import entry_from_stored, fingerprint, stored_key
from kubeproof.vulndb.versions import InvalidVersion, VersionKey, version_key

__all__ = ["Finding", "MatchReport", "Matcher", "match_packages", "release_ecosystem"]


@dataclass(frozen=True)
class Finding:
    package: Package
    advisory_id: str
    aliases: tuple[str, ...]
    severity: str  # critical, high, medium, low, none or unknown: rating.level
    fixed_version: str | None
    summary: str
    ecosystem: str
    published: str | None = None  # the advisory's `published` timestamp, as OSV gives it
    rating: Rating = UNRATED  # score, vector and where the severity came from


@dataclass
class MatchReport:
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[tuple[Package, str]] = field(default_factory=list)  # (package, why)
    checked: int = 0


@dataclass
class _Candidate:
    """An advisory for one (ecosystem, package), its entries compiled for that package,
    each with its rating. A record may name the package under both `Debian:12` and
    `Debian`: its entries are joined."""

    advisory_id: str
    entries: list[tuple[CompiledEntry, Any]]  # (entry, its rating as stored)
    aliases: Any
    summary: Any
    published: Any

    def hit(self, rating: Any, fixed: str | None) -> _Hit:
        return _Hit(
            self.advisory_id,
            tuple(str(a) for a in as_list(self.aliases)),
            Rating.from_row(rating),
            fixed,
            as_str(self.summary) or "",
            as_str(self.published),
        )


def _joined(candidates: list[_Candidate]) -> tuple[_Candidate, ...]:
    by_id: dict[str, _Candidate] = {}
    for candidate in candidates:
        previous = by_id.get(candidate.advisory_id)
        if previous is None:
            by_id[candidate.advisory_id] = candidate
        else:
            previous.entries += candidate.entries
    return tuple(by_id.values())


def _by_id(candidate: _Candidate) -> str:
    return candidate.advisory_id


def _ready_candidate(payload: str) -> _Candidate:
    """From a package_index payload: ranges compiled into stored keys at load time."""
    advisory_id, entries, aliases, summary, published = orjson.loads(payload)
    return _Candidate(
        str(advisory_id),
        [(entry_from_stored(entry), rating) for entry, rating in entries],
        aliases,
        summary,
        published,
    )


def _compiled_candidates(rows: list[AffectedRow], key_of: VersionKey) -> tuple[_Candidate, ...]:
    """From affected rows: ranges compiled here from their versions' text."""
    return _joined(
        [
            _Candidate(
                row.advisory_id,
                [
                    (compile_entry(entry, key_of), entry.get("rating"))
                    for entry in map(as_dict, as_list(row.detail.get("entries")))
                ],
                row.detail.get("aliases"),
                row.detail.get("summary"),
                row.detail.get("published"),
            )
            for row in rows
        ]
    )


@dataclass(frozen=True)
class _Hit:
    advisory_id: str
    aliases: tuple[str, ...]
    rating: Rating
    fixed_version: str | None
    summary: str
    published: str | None


@dataclass(frozen=True)
class _Outcome:
    hits: tuple[_Hit, ...]
    undecidable: str | None


@dataclass
class _Advisories:
    """The advisories of one (ecosystem, package) and the key function their ranges were
    compiled for: installed versions must be keyed by the same one. Stored advisories
    are decoded only for versions at or below their ceiling (stored_keys.ceiling) or
    named in their `versions`, and each only once."""

    key_of: VersionKey
    compiled: tuple[_Candidate, ...] = ()  # compiled here, all of them judged
    stored: PackageAdvisories | None = None
    _decoded: dict[int, _Candidate] = field(default_factory=dict)

    def relevant(self, version: str, key: Any) -> Iterator[_Candidate]:
        if self.stored is None:
            yield from self.compiled
            return
        stored = self.stored
        for number, ceiling in enumerate(stored.ceilings):
            if (
                key is not None
                and ceiling is not None
                and key > ceiling
                and version not in stored.versions[number]
            ):
                continue  # above every range's end: cannot be affected nor undecidable
            candidate = self._decoded.get(number)
            if candidate is None:
                candidate = self._decoded[number] = _ready_candidate(stored.payloads[number])
            yield candidate


class Matcher:
    """Matches packages against one database. Where the ecosystem has stored version keys
    (stored_keys) and they came from these version rules, each package's advisories are
    one row, their ranges compiled at load time; otherwise (apk, or keys from other
    rules) the ranges are parsed here, once per (ecosystem, package). Verdicts are
    computed once per (ecosystem, package, version), each installed version keyed once:
    re-matching many images that share packages costs little more than matching their
    distinct packages once."""

    def __init__(self, db: VulnDb) -> None:
        self.db = db
        self.sources = {status.source for status in db.sources()}
        stored = db.key_fingerprints()
        self._trusted = {base for base, value in stored.items() if value == fingerprint(base)}
        self._advisories: dict[tuple[str, str], _Advisories | None] = {}
        self._outcomes: dict[tuple[str, str, str], _Outcome] = {}
        self._keys: dict[tuple[str, bool], VersionKey | None] = {}

    def _key_function(self, base: str, stored: bool) -> VersionKey | None:
        """The (cached) key of installed versions: the stored form, or versions.py's."""
        if (base, stored) not in self._keys:
            key_of = stored_key(base) if stored else version_key(base)
            self._keys[base, stored] = (
                functools.lru_cache(maxsize=1 << 18)(key_of) if key_of is not None else None
            )
        return self._keys[base, stored]

    def _advisories_for(self, ecosystem: str, name: str) -> _Advisories | None:
        key = (ecosystem, name)
        if key not in self._advisories:
            base = ecosystem.split(":", 1)[0]
            found = None
            if base in self._trusted:
                key_of = self._key_function(base, True)
                if key_of is not None:
                    stored = self.db.package_advisories((ecosystem, base), name)
                    if len(stored) == 1:
                        found = _Advisories(key_of, stored=stored[0])
                    else:
                        # None, or under both `Debian:12` and `Debian`: an advisory's
                        # parts are judged together, every one decoded.
                        payloads = [text for part in stored for text in part.payloads]
                        candidates = sorted(map(_ready_candidate, payloads), key=_by_id)
                        found = _Advisories(key_of, _joined(candidates))
            if found is None:
                key_of = self._key_function(base, False)
                if key_of is not None:
                    rows = self.db.affected_rows((ecosystem, base), name)
                    found = _Advisories(key_of, _compiled_candidates(rows, key_of))
            self._advisories[key] = found
        return self._advisories[key]

    def _outcome(self, ecosystem: str, name: str, version: str) -> _Outcome | None:
        key = (ecosystem, name, version)
        cached = self._outcomes.get(key)
        if cached is not None:
            return cached
        advisories = self._advisories_for(ecosystem, name)
        if advisories is None:
            return None
        hits: list[_Hit] = []
        undecided = None
        try:
            version_sort_key, key_error = advisories.key_of(version), None
        except InvalidVersion as error:
            version_sort_key, key_error = None, str(error)
        for candidate in advisories.relevant(version, version_sort_key):
            for compiled, rating in candidate.entries:
                verdict = compiled.verdict(version, version_sort_key, key_error)
                undecided = undecided or verdict.undecidable
                if verdict.affected:
                    hits.append(candidate.hit(rating, verdict.fixed))
                    break
        outcome = _Outcome(tuple(hits), undecided)
        self._outcomes[key] = outcome
        return outcome

    def lookup_keys(self, os: OperatingSystem | None, package: Package) -> list[tuple[str, str]]:
        """The (ecosystem, package) pairs whose advisories decide this package."""
        ecosystem = release_ecosystem(os, package)
        if ecosystem is None:
            return []
        base = ecosystem.split(":", 1)[0]
        name = package_key(base, package.advisory_name)
        return [(ecosystem, name), (base, name)]

    def match(self, os: OperatingSystem | None, packages: tuple[Package, ...]) -> MatchReport:
        with collector_paused():
            return self._match(os, packages)

    def _match(self, os: OperatingSystem | None, packages: tuple[Package, ...]) -> MatchReport:
        report = MatchReport()
        for package in packages:
            ecosystem = release_ecosystem(os, package)
            if ecosystem is None:
                report.unchecked.append((package, unmatched_reason(os, package)))
                continue
            base = ecosystem.split(":", 1)[0]
            name = package_key(base, package.advisory_name)
            outcome = (
                self._outcome(ecosystem, name, package.advisory_version)
                if base in self.sources
                else None
            )
            if outcome is None:
                report.unchecked.append((package, f"no {base} data in the vulnerability database"))
                continue
            report.findings += [
                Finding(
                    package,
                    hit.advisory_id,
                    hit.aliases,
                    hit.rating.level,
                    hit.fixed_version,
                    hit.summary,
                    ecosystem,
                    hit.published,
                    hit.rating,
                )
                for hit in outcome.hits
            ]
            if outcome.undecidable is not None:
                report.unchecked.append((package, f"version not comparable: {outcome.undecidable}"))
            else:
                report.checked += 1
        report.findings.sort(key=lambda f: (f.package.name, f.package.location, f.advisory_id))
        return report


def match_packages(
    db: VulnDb, os: OperatingSystem | None, packages: tuple[Package, ...]
) -> MatchReport:
    return Matcher(db).match(os, packages)
