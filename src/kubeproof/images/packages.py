"""Installed packages from the databases the package managers keep in the image: dpkg
(var/lib/dpkg/status, distroless var/lib/dpkg/status.d/*), apk (lib/apk/db/installed),
rpm (the SQLite rpmdb, images/rpm.py), Python (dist-info METADATA, egg-info PKG-INFO), npm
(node_modules/**/package.json, package-lock.json), Go binaries' embedded build info, Java
archives (images/java.py) and Rust binaries' cargo-auditable data (images/rust.py).
Parsers never raise on malformed input: incomplete records are skipped. A language package
whose files an OS package owns (dpkg's info/*.list, apk's F:/R: lines, rpm's file lists)
is that OS package's: it is not listed twice."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kubeproof.images.filesystem import (
    DPKG_FILE_LIST,
    NPM_LOCKFILE,
    NPM_PACKAGE_JSON,
    ImageFiles,
)
from kubeproof.images.gobinary import GoBuildInfo
from kubeproof.images.rpm import (
    DATABASE_DIRECTORIES,
    DATABASE_PATHS,
    UNSUPPORTED_DATABASES,
    RpmError,
    RpmHeader,
    read_rpmdb,
)
from kubeproof.inventory.objects import as_dict, as_str
from kubeproof.vulndb.versions import go_toolchain_semver

DEB, APK, RPM, PYPI, GOLANG, NPM = "deb", "apk", "rpm", "pypi", "golang", "npm"
MAVEN, CARGO = "maven", "cargo"
PACKAGE_TYPES = (DEB, APK, RPM, PYPI, GOLANG, NPM, MAVEN, CARGO)
OS_PACKAGE_TYPES = (DEB, APK, RPM)
GO_STDLIB = "stdlib"  # the name OSV's Go ecosystem gives the standard library

_SOURCE_FIELD = re.compile(r"^(\S+)(?:\s+\((\S+)\))?\s*$")
_PYTHON_METADATA = re.compile(
    r"(?:^|/)(?:site|dist)-packages/[^/]+\.(?:dist-info/METADATA|egg-info/PKG-INFO|egg-info)$"
)
_STATUS_D = re.compile(r"^var/lib/dpkg/status\.d/[^/]+$")
_PEP503 = re.compile(r"[-_.]+")


@dataclass(frozen=True, order=True)
class Package:
    type: str  # one of PACKAGE_TYPES
    name: str  # Maven: groupId:artifactId (as OSV names it)
    version: str  # rpm: [EPOCH:]VERSION-RELEASE
    arch: str | None = None
    source_name: str | None = None  # dpkg Source / apk origin / rpm source package
    source_version: str | None = None
    location: str = ""  # the database file it was read from
    license: str | None = None  # as the package database declares it (rpm)

    @property
    def advisory_name(self) -> str:
        """The name advisories use: the source package for dpkg and apk; rpm
        distributions (Red Hat, Rocky, AlmaLinux) name each binary package."""
        return self.name if self.type == RPM else self.source_name or self.name

    @property
    def advisory_version(self) -> str:
        return self.version if self.type == RPM else self.source_version or self.version


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


def dpkg_owned_files(text: str) -> set[str]:
    """The paths a dpkg `info/PACKAGE.list` names (one absolute path a line), root-relative."""
    return {
        line.strip().lstrip("/") for line in text.splitlines() if line.strip() not in ("", "/.")
    }


def apk_owned_files(text: str) -> set[str]:
    """The directories (`F:`) and files (`R:`, in the directory named before) that the
    packages of lib/apk/db/installed own."""
    owned: set[str] = set()
    directory = ""
    for line in text.splitlines():
        if line.startswith("P:"):
            directory = ""
        elif line.startswith("F:"):
            directory = line[2:].strip().strip("/")
            owned.add(directory)
        elif line.startswith("R:") and directory:
            owned.add(f"{directory}/{line[2:].strip()}")
    owned.discard("")
    return owned


def rpm_package(header: RpmHeader, location: str) -> Package:
    source_name, source_version = header.source or (None, None)
    return Package(
        RPM,
        header.name,
        header.evr,
        header.arch,
        source_name,
        source_version,
        location,
        header.license,
    )


def _rpm_packages(files: ImageFiles) -> tuple[list[Package], set[str]]:
    """Packages of the first rpm database present, and the files they own. An image with
    only a database format that is not read gets a warning saying so."""
    for path in DATABASE_PATHS:
        data = files.read(path)
        if data is None:
            continue
        try:
            headers, problems = read_rpmdb(data, path)
        except RpmError as error:
            files.warnings.append(f"{error}: its rpm packages are not listed")
            return [], set()
        files.warnings.extend(problems)
        owned = {file for header in headers for file in header.files}
        return [rpm_package(header, path) for header in headers], owned
    for directory in DATABASE_DIRECTORIES:
        for name, kind in UNSUPPORTED_DATABASES.items():
            if files.read(f"{directory}/{name}") is not None:
                files.warnings.append(
                    f"{directory}/{name}: rpm database format {kind} not supported: "
                    "the image's rpm packages are not listed"
                )
                return [], set()
    return [], set()


def _java_packages(files: ImageFiles) -> list[Package]:
    return [
        Package(MAVEN, artifact.name, artifact.version, location=artifact.path)
        for path in sorted(files.java_archives)
        for artifact in files.java_archives[path]
    ]


def _rust_packages(files: ImageFiles) -> list[Package]:
    return [
        Package(CARGO, crate.name, crate.version, location=path)
        for path in sorted(files.rust_binaries)
        for crate in files.rust_binaries[path]
        if crate.source not in ("local", "git")
    ]


def _owned_by_os(package: Package, owned: set[str]) -> bool:
    """A language package read from a file an OS package installed (its metadata file or
    the dist-info/egg-info directory holding it; a binary or archive itself)."""
    location = package.location.split("!/", 1)[0]
    return location in owned or location.rpartition("/")[0] in owned


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def find_packages(files: ImageFiles) -> list[Package]:
    packages: list[Package] = []
    status = files.read("var/lib/dpkg/status")
    if status is not None:
        packages += parse_dpkg_status(_decode(status), "var/lib/dpkg/status")
    for path, data in files.matching(_STATUS_D):
        packages += parse_dpkg_status(_decode(data), path, require_status=False)
    owned: set[str] = set()
    for _, data in files.matching(DPKG_FILE_LIST):
        owned |= dpkg_owned_files(_decode(data))
    installed = files.read("lib/apk/db/installed")
    if installed is not None:
        packages += parse_apk_installed(_decode(installed), "lib/apk/db/installed")
        owned |= apk_owned_files(_decode(installed))
    rpms, rpm_owned = _rpm_packages(files)
    owned |= rpm_owned
    language: list[Package] = []
    for path, data in files.matching(_PYTHON_METADATA):
        package = parse_python_metadata(_decode(data), path)
        if package is not None:
            language.append(package)
    language += _npm_packages(files)
    for path in sorted(files.go_binaries):
        language += go_binary_packages(files.go_binaries[path], path)
    language += _java_packages(files) + _rust_packages(files)
    packages += rpms + [p for p in language if not _owned_by_os(p, owned)]
    return sorted(set(packages))
