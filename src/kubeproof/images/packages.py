"""Installed packages from the databases the package managers keep in the image: dpkg
(var/lib/dpkg/status, distroless var/lib/dpkg/status.d/*), apk (lib/apk/db/installed) and
Python (dist-info METADATA, egg-info PKG-INFO). Parsers never raise on malformed input:
incomplete records are skipped and counted in warnings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from kubeproof.images.filesystem import ImageFiles

DEB, APK, PYPI = "deb", "apk", "pypi"

_SOURCE_FIELD = re.compile(r"^(\S+)(?:\s+\((\S+)\))?\s*$")
_PYTHON_METADATA = re.compile(
    r"(?:^|/)(?:site|dist)-packages/[^/]+\.(?:dist-info/METADATA|egg-info/PKG-INFO|egg-info)$"
)
_STATUS_D = re.compile(r"^var/lib/dpkg/status\.d/[^/]+$")
_PEP503 = re.compile(r"[-_.]+")


@dataclass(frozen=True, order=True)
class Package:
    type: str  # deb, apk, pypi
    name: str
    version: str
    arch: str | None = None
    source_name: str | None = None  # dpkg Source / apk origin: what advisories name
    source_version: str | None = None
    location: str = ""  # the database file it was read from

    @property
    def advisory_name(self) -> str:
        return self.source_name or self.name

    @property
    def advisory_version(self) -> str:
        return self.source_version or self.version


def normalise_pypi_name(name: str) -> str:
    return _PEP503.sub("-", name).lower()


def control_paragraphs(text: str) -> Iterator[dict[str, str]]:
    """Deb822 paragraphs (dpkg status): `Field: value`, continuation lines start with
    a space or tab, paragraphs are separated by blank lines."""
    fields: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, None
        elif line[0] in " \t":
            if last is not None:
                fields[last] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            fields[last] = value.strip()
    if fields:
        yield fields


def parse_dpkg_status(text: str, location: str, require_status: bool = True) -> list[Package]:
    """Installed packages of a dpkg status file. Distroless status.d files carry no Status
    field (`require_status=False`): everything listed there is installed."""
    packages = []
    for fields in control_paragraphs(text):
        name, version = fields.get("Package"), fields.get("Version")
        if not name or not version:
            continue
        status = fields.get("Status", "").split()
        if require_status and (
            len(status) != 3 or status[2] not in ("installed", "half-configured")
        ):
            continue
        source_name = source_version = None
        source = _SOURCE_FIELD.match(fields.get("Source", ""))
        if source:
            source_name = source.group(1)
            source_version = source.group(2) or version
        packages.append(
            Package(
                DEB,
                name,
                version,
                fields.get("Architecture") or None,
                source_name or name,
                source_version or version,
                location,
            )
        )
    return packages


def parse_apk_installed(text: str, location: str) -> list[Package]:
    """lib/apk/db/installed: one `X:value` per line, records separated by blank lines."""
    packages = []
    record: dict[str, str] = {}
    for line in [*text.splitlines(), ""]:
        if not line.strip():
            name, version = record.get("P"), record.get("V")
            if name and version:
                packages.append(
                    Package(
                        APK,
                        name,
                        version,
                        record.get("A") or None,
                        record.get("o") or name,
                        version,
                        location,
                    )
                )
            record = {}
        elif len(line) >= 2 and line[1] == ":" and line[0] not in record:
            record[line[0]] = line[2:].strip()
    return packages


def parse_python_metadata(text: str, location: str) -> Package | None:
    """Name and Version headers of a core metadata file (they end at the first blank line)."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, separator, value = line.partition(":")
        if separator and key.strip() in ("Name", "Version") and key.strip() not in headers:
            headers[key.strip()] = value.strip()
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        return None
    return Package(PYPI, normalise_pypi_name(name), version, location=location)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def find_packages(files: ImageFiles) -> list[Package]:
    packages: list[Package] = []
    status = files.read("var/lib/dpkg/status")
    if status is not None:
        packages += parse_dpkg_status(_decode(status), "var/lib/dpkg/status")
    for path, data in files.matching(_STATUS_D):
        packages += parse_dpkg_status(_decode(data), path, require_status=False)
    installed = files.read("lib/apk/db/installed")
    if installed is not None:
        packages += parse_apk_installed(_decode(installed), "lib/apk/db/installed")
    for path, data in files.matching(_PYTHON_METADATA):
        package = parse_python_metadata(_decode(data), path)
        if package is not None:
            packages.append(package)
    return sorted(set(packages))
