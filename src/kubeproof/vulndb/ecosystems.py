"""Which OSV ecosystem decides an installed package, and the names advisories are indexed
under. OSV names some releases in several ways: Ubuntu's `Ubuntu:22.04:LTS` and its
ESM stream `Ubuntu:Pro:22.04:LTS` are indexed as `Ubuntu:22.04` (a fix published only
for Ubuntu Pro still leaves the free release's package vulnerable, so both apply), and
Red Hat's per-repository `Red Hat:enterprise_linux:9::appstream` (baseos, crb, ...) as
`Red Hat:9`. Variant streams whose packages are different builds (Ubuntu Pro FIPS,
Realtime; Red Hat EUS, AUS, E4S) keep their names and are not matched against images."""

from __future__ import annotations

import re

from kubeproof.images.osrelease import OperatingSystem
from kubeproof.images.packages import APK, CARGO, DEB, GOLANG, MAVEN, NPM, PYPI, RPM, Package

LANGUAGE_ECOSYSTEMS = {
    PYPI: "PyPI",
    GOLANG: "Go",
    NPM: "npm",
    MAVEN: "Maven",
    CARGO: "crates.io",
}
# os-release ID -> (package type, OSV ecosystem, how many version fields name a release)
DISTRIBUTIONS = {
    "debian": (DEB, "Debian", 1),
    "ubuntu": (DEB, "Ubuntu", 2),
    "alpine": (APK, "Alpine", 2),
    "rhel": (RPM, "Red Hat", 1),
    "rocky": (RPM, "Rocky Linux", 1),
    "almalinux": (RPM, "AlmaLinux", 1),
}
_UBUNTU = re.compile(r"^Ubuntu:(?:Pro:)?(\d+\.\d+)(?::LTS)?$")
_RED_HAT = re.compile(r"^Red Hat:enterprise_linux:(\d+)::[a-z0-9_]+$")


def index_ecosystem(ecosystem: str) -> str:
    """The name an advisory's `affected[].package.ecosystem` is stored under."""
    ubuntu = _UBUNTU.match(ecosystem)
    if ubuntu:
        return f"Ubuntu:{ubuntu.group(1)}"
    red_hat = _RED_HAT.match(ecosystem)
    if red_hat:
        return f"Red Hat:{red_hat.group(1)}"
    return ecosystem


def release_ecosystem(os: OperatingSystem | None, package: Package) -> str | None:
    """The OSV ecosystem of an installed package: `Debian:12`, `Ubuntu:22.04`,
    `Alpine:v3.19`, `Red Hat:9`, `Rocky Linux:9`, `AlmaLinux:8`, `PyPI`, `Go`, `npm`,
    `Maven` (only for artifacts whose group is known: OSV names them group:artifact),
    `crates.io`; None when no ecosystem decides it."""
    if package.type in LANGUAGE_ECOSYSTEMS:
        if package.type == MAVEN and ":" not in package.name:
            return None
        return LANGUAGE_ECOSYSTEMS[package.type]
    if os is None or not os.version_id or os.id not in DISTRIBUTIONS:
        return None
    package_type, ecosystem, fields = DISTRIBUTIONS[os.id]
    if package.type != package_type:
        return None
    release = ".".join(os.version_id.split(".")[:fields])
    return f"{ecosystem}:v{release}" if ecosystem == "Alpine" else f"{ecosystem}:{release}"


def unmatched_reason(os: OperatingSystem | None, package: Package) -> str:
    """Why release_ecosystem has no ecosystem for a package (said in "not checked")."""
    if package.type == MAVEN:
        return "Java archive without a Maven groupId (OSV names Maven packages group:artifact)"
    if os is None or not os.id:
        return "unknown distribution"
    if os.id not in DISTRIBUTIONS:
        return f"distribution {os.id!r} is not supported"
    if not os.version_id:
        return f"{os.id} release unknown (no VERSION_ID)"
    return f"{package.type} package on {os.id}, whose advisories cover {DISTRIBUTIONS[os.id][0]}"
