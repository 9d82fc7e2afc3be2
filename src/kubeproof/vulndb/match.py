"""Match an image's packages against the local OSV database. Distribution packages are
matched by their source package and the release (`Debian:12`, `Alpine:v3.19`), as the
distributions publish their advisories; Python packages by normalised name. Packages that
could not be checked (no data for their ecosystem, unknown release, unorderable versions)
are reported, never counted as clean."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeproof.images.osrelease import OperatingSystem
from kubeproof.images.packages import APK, DEB, PYPI, Package
from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.vulndb.osv import entry_verdict, package_key, severity_of
from kubeproof.vulndb.store import VulnDb
from kubeproof.vulndb.versions import comparator

DISTRO_ECOSYSTEMS = {"debian": "Debian", "alpine": "Alpine"}


@dataclass(frozen=True)
class Finding:
    package: Package
    advisory_id: str
    aliases: tuple[str, ...]
    severity: str
    fixed_version: str | None
    summary: str
    ecosystem: str


@dataclass
class MatchReport:
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[tuple[Package, str]] = field(default_factory=list)  # (package, why)
    checked: int = 0


def release_ecosystem(os: OperatingSystem | None, package: Package) -> str | None:
    """The OSV ecosystem of an installed package: `Debian:12`, `Alpine:v3.19`, `PyPI`."""
    if package.type == PYPI:
        return "PyPI"
    if os is None or not os.version_id:
        return None
    base = DISTRO_ECOSYSTEMS.get(os.id)
    if package.type == DEB and base == "Debian":
        return f"Debian:{os.version_id.split('.')[0]}"
    if package.type == APK and base == "Alpine":
        return "Alpine:v" + ".".join(os.version_id.split(".")[:2])
    return None


def _matching_entries(record: dict[str, Any], ecosystem: str, name: str) -> list[dict[str, Any]]:
    base = ecosystem.split(":", 1)[0]
    return [
        entry
        for entry in map(as_dict, as_list(record.get("affected")))
        if as_str(as_dict(entry.get("package")).get("ecosystem")) in (ecosystem, base)
        and package_key(base, as_str(as_dict(entry.get("package")).get("name")) or "") == name
    ]


def match_packages(
    db: VulnDb, os: OperatingSystem | None, packages: tuple[Package, ...]
) -> MatchReport:
    report = MatchReport()
    sources = {status.source for status in db.sources()}
    for package in packages:
        ecosystem = release_ecosystem(os, package)
        if ecosystem is None:
            report.unchecked.append((package, "unknown or unsupported distribution release"))
            continue
        base = ecosystem.split(":", 1)[0]
        compare = comparator(ecosystem)
        if base not in sources or compare is None:
            report.unchecked.append((package, f"no {base} data in the vulnerability database"))
            continue
        name = package_key(base, package.advisory_name)
        version = package.advisory_version
        undecided = None
        for record in db.advisories_for((ecosystem, base), name):
            if record.get("withdrawn"):
                continue
            for entry in _matching_entries(record, ecosystem, name):
                verdict = entry_verdict(version, entry, compare)
                undecided = undecided or verdict.undecidable
                if verdict.affected:
                    report.findings.append(
                        Finding(
                            package,
                            str(record["id"]),
                            tuple(str(a) for a in as_list(record.get("aliases"))),
                            severity_of(record, entry),
                            verdict.fixed,
                            (as_str(record.get("summary")) or "")[:200],
                            ecosystem,
                        )
                    )
                    break
        if undecided is not None:
            report.unchecked.append((package, f"version not comparable: {undecided}"))
        else:
            report.checked += 1
    report.findings.sort(key=lambda f: (f.package.name, f.package.location, f.advisory_id))
    return report
