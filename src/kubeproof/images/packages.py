"""Installed packages from the databases the package managers keep in the image: dpkg
(var/lib/dpkg/status, distroless var/lib/dpkg/status.d/*), apk (lib/apk/db/installed),
Python (dist-info METADATA, egg-info PKG-INFO), npm (node_modules/**/package.json,
package-lock.json) and Go binaries' embedded build info. Parsers never raise on malformed
input: incomplete records are skipped."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubeproof.images.filesystem import NPM_LOCKFILE, NPM_PACKAGE_JSON, ImageFiles
from kubeproof.images.gobinary import GoBuildInfo
from kubeproof.inventory.objects import as_dict, as_str
from kubeproof.vulndb.versions import go_toolchain_semver

DEB, APK, PYPI, GOLANG, NPM = "deb", "apk", "pypi", "golang", "npm"
PACKAGE_TYPES = (DEB, APK, PYPI, GOLANG, NPM)
GO_STDLIB = "stdlib"  # the name OSV's Go ecosystem gives the standard library

_SOURCE_FIELD = re.compile(r"^(\S+)(?:\s+\((\S+)\))?\s*$")
_PYTHON_METADATA = re.compile(
    r"(?:^|/)(?:site|dist)-packages/[^/]+\.(?:dist-info/METADATA|egg-info/PKG-INFO|egg-info)$"
)
_STATUS_D = re.compile(r"^var/lib/dpkg/status\.d/[^/]+$")
_PEP503 = re.compile(r"[-_.]+")


@dataclass(frozen=True, order=True)
class Package:
    type: str  # deb, apk, pypi, golang, npm
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


def go_binary_packages(info: GoBuildInfo, location: str) -> list[Package]:
    """The modules linked into a Go binary, and the standard library of its toolchain. A
    module replaced by another module is reported as the replacement (that is the code in
    the binary); one replaced by a local directory keeps the path and version it required.
    The main module is skipped when it has no version (`(devel)`, a local build)."""
    packages = []
    stdlib = go_toolchain_semver(info.go_version)
    packages.append(Package(GOLANG, GO_STDLIB, stdlib or info.go_version, location=location))
    modules = [*([info.main_module] if info.main_module else []), *info.dependencies]
    for module in modules:
        path, version = module.path, module.version
        replacement_path, _, replacement_version = (module.replaced_by or "").partition(" ")
        if replacement_path and not replacement_path.startswith((".", "/")):
            path, version = replacement_path, replacement_version
        if version and version != "(devel)":
            packages.append(Package(GOLANG, path, version, location=location))
    return packages


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        return as_dict(json.loads(data))
    except (ValueError, RecursionError):
        return {}


def parse_npm_package_json(data: bytes, location: str) -> Package | None:
    document = _json_object(data)
    name, version = as_str(document.get("name")), as_str(document.get("version"))
    if not name or not version:
        return None
    return Package(NPM, name, version, location=location)


def _lock_v1_dependencies(dependencies: Any, location: str) -> Iterator[Package]:
    """lockfileVersion 1: a tree of {name: {version, dev, dependencies}}."""
    pending = [as_dict(dependencies)]
    while pending:
        for name, entry in pending.pop().items():
            entry = as_dict(entry)
            version = as_str(entry.get("version"))
            if version and not entry.get("dev") and not version.startswith(("file:", "git")):
                yield Package(NPM, name, version, location=location)
            pending.append(as_dict(entry.get("dependencies")))


def parse_npm_lockfile(data: bytes, location: str) -> list[Package]:
    """package-lock.json (v2/v3 `packages`, v1 `dependencies`); dev-only and linked
    entries are skipped: they are not part of what the app ships."""
    document = _json_object(data)
    packages: list[Package] = []
    entries = as_dict(document.get("packages"))
    if not entries:
        return list(_lock_v1_dependencies(document.get("dependencies"), location))
    for key, value in entries.items():
        entry = as_dict(value)
        if "node_modules/" not in key or entry.get("dev") or entry.get("link"):
            continue
        name = as_str(entry.get("name")) or key.rsplit("node_modules/", 1)[1]
        version = as_str(entry.get("version"))
        if name and version:
            packages.append(Package(NPM, name, version, location=location))
    return packages


def _npm_packages(files: ImageFiles) -> list[Package]:
    installed: list[Package] = []
    for path, data in files.matching(NPM_PACKAGE_JSON):
        package = parse_npm_package_json(data, path)
        if package is not None:
            installed.append(package)
    seen = {(p.name, p.version) for p in installed}
    locked = []
    for path, data in files.matching(NPM_LOCKFILE):
        if "/node_modules/" in f"/{path}":
            continue
        # A lock entry whose package is installed is the same package: report it once.
        locked += [p for p in parse_npm_lockfile(data, path) if (p.name, p.version) not in seen]
    return installed + locked


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
    packages += _npm_packages(files)
    for path in sorted(files.go_binaries):
        packages += go_binary_packages(files.go_binaries[path], path)
    return sorted(set(packages))
