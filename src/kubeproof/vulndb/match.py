"""Match an image's packages against the local OSV database. Distribution packages are
matched by their source package and the release (`Debian:12`, `Alpine:v3.19`), as the
distributions publish their advisories; Python packages by normalised name, npm packages
and Go modules (and the Go standard library, `stdlib`) by name. Packages that could not be
checked (no data for their ecosystem, unknown release, unorderable versions)
are reported, never counted as clean."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from kubeproof.images.osrelease import OperatingSystem
from kubeproof.images.packages import APK, DEB, GOLANG, NPM, PYPI, Package
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.vulndb.osv import CompiledEntry, compile_entry, package_key
from kubeproof.vulndb.store import AffectedRow, VulnDb
from kubeproof.vulndb.versions import InvalidVersion, VersionKey, version_key

DISTRO_ECOSYSTEMS = {"debian": "Debian", "alpine": "Alpine"}
LANGUAGE_ECOSYSTEMS = {PYPI: "PyPI", GOLANG: "Go", NPM: "npm"}


@dataclass(frozen=True)
class Finding:
    package: Package
    advisory_id: str
    aliases: tuple[str, ...]
    severity: str
    fixed_version: str | None
    summary: str
    ecosystem: str
    published: str | None = None  # the advisory's `published` timestamp, as OSV gives it


@dataclass
class MatchReport:
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[tuple[Package, str]] = field(default_factory=list)  # (package, why)
    checked: int = 0


def release_ecosystem(os: OperatingSystem | None, package: Package) -> str | None:
    """The OSV ecosystem of an installed package: `Debian:12`, `Alpine:v3.19`, `PyPI`, `Go`,
    `npm`."""
    if package.type in LANGUAGE_ECOSYSTEMS:
        return LANGUAGE_ECOSYSTEMS[package.type]
    if os is None or not os.version_id:
        return None
    base = DISTRO_ECOSYSTEMS.get(os.id)
    if package.type == DEB and base == "Debian":
        return f"Debian:{os.version_id.split('.')[0]}"
    if package.type == APK and base == "Alpine":
        return "Alpine:v" + ".".join(os.version_id.split(".")[:2])
    return None


@dataclass(frozen=True)
class _Candidate:
    """An advisory for one (ecosystem, package), its entries compiled for that package."""

    advisory_id: str
    aliases: tuple[str, ...]
    summary: str
    published: str | None
    entries: tuple[tuple[str, CompiledEntry], ...]  # (severity, entry)


def _candidates(rows: list[AffectedRow], key_of: VersionKey) -> tuple[_Candidate, ...]:
    """One candidate per advisory (a record may name the package under both `Debian:12`
    and `Debian`: its entries are joined, in order)."""
    by_id: dict[str, _Candidate] = {}
    for row in rows:
        detail = row.detail
        entries = tuple(
            (as_str(entry.get("severity")) or "UNKNOWN", compile_entry(entry, key_of))
            for entry in map(as_dict, as_list(detail.get("entries")))
        )
        previous = by_id.get(row.advisory_id)
        if previous is not None:
            entries = previous.entries + entries
        by_id[row.advisory_id] = _Candidate(
            row.advisory_id,
            tuple(str(a) for a in as_list(detail.get("aliases"))),
            as_str(detail.get("summary")) or "",
            as_str(detail.get("published")),
            entries,
        )
    return tuple(by_id.values())


@dataclass(frozen=True)
class _Hit:
    advisory_id: str
    aliases: tuple[str, ...]
    severity: str
    fixed_version: str | None
    summary: str
    published: str | None


@dataclass(frozen=True)
class _Outcome:
    hits: tuple[_Hit, ...]
    undecidable: str | None


class Matcher:
    """Matches packages against one database. Advisories are read, and their ranges parsed
    into version keys and ordered, once per (ecosystem, package); verdicts are computed
    once per (ecosystem, package, version), each installed version parsed once: re-matching
    many images that share packages costs little more than matching their distinct
    packages once."""

    def __init__(self, db: VulnDb) -> None:
        self.db = db
        self.sources = {status.source for status in db.sources()}
        self._candidates: dict[tuple[str, str], tuple[_Candidate, ...]] = {}
        self._outcomes: dict[tuple[str, str, str], _Outcome] = {}
        self._keys: dict[str, VersionKey] = {}

    def _key_function(self, ecosystem: str) -> VersionKey | None:
        base = ecosystem.split(":", 1)[0]
        if base not in self._keys:
            key_of = version_key(base)
            if key_of is None:
                return None
            self._keys[base] = functools.lru_cache(maxsize=1 << 18)(key_of)
        return self._keys[base]

    def _candidates_for(
        self, ecosystem: str, name: str, key_of: VersionKey
    ) -> tuple[_Candidate, ...]:
        key = (ecosystem, name)
        if key not in self._candidates:
            base = ecosystem.split(":", 1)[0]
            rows = self.db.affected_rows((ecosystem, base), name)
            self._candidates[key] = _candidates(rows, key_of)
        return self._candidates[key]

    def _outcome(self, ecosystem: str, name: str, version: str, key_of: VersionKey) -> _Outcome:
        key = (ecosystem, name, version)
        cached = self._outcomes.get(key)
        if cached is not None:
            return cached
        hits: list[_Hit] = []
        undecided = None
        try:
            version_sort_key, key_error = key_of(version), None
        except InvalidVersion as error:
            version_sort_key, key_error = None, str(error)
        for candidate in self._candidates_for(ecosystem, name, key_of):
            for severity, compiled in candidate.entries:
                verdict = compiled.verdict(version, version_sort_key, key_error)
                undecided = undecided or verdict.undecidable
                if verdict.affected:
                    hits.append(
                        _Hit(
                            candidate.advisory_id,
                            candidate.aliases,
                            severity,
                            verdict.fixed,
                            candidate.summary,
                            candidate.published,
                        )
                    )
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
        report = MatchReport()
        for package in packages:
            ecosystem = release_ecosystem(os, package)
            if ecosystem is None:
                report.unchecked.append((package, "unknown or unsupported distribution release"))
                continue
            base = ecosystem.split(":", 1)[0]
            key_of = self._key_function(ecosystem)
            if base not in self.sources or key_of is None:
                report.unchecked.append((package, f"no {base} data in the vulnerability database"))
                continue
            name = package_key(base, package.advisory_name)
            outcome = self._outcome(ecosystem, name, package.advisory_version, key_of)
            report.findings += [
                Finding(
                    package,
                    hit.advisory_id,
                    hit.aliases,
                    hit.severity,
                    hit.fixed_version,
                    hit.summary,
                    ecosystem,
                    hit.published,
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
