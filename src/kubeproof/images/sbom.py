"""CycloneDX 1.6 JSON SBOMs of images, and a cache of them by image digest under
$XDG_CACHE_HOME/kubeproof/sbom/<digest>.json, so an image already seen is never downloaded
again. bom-refs are the packages' purls: the same image always gives the same references.
The JSON is written here (cyclonedx-python-lib took seconds per image with its dependency
graph); the tests validate it against the official 1.6 schema that library bundles."""

from __future__ import annotations

import json
import os
import tempfile
import urllib.parse
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeproof import __version__
from kubeproof.bounded import UnreadableFile, read_bounded_text
from kubeproof.images.digest import parse_digest
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import Platform
from kubeproof.images.osrelease import OperatingSystem
from kubeproof.images.packages import (
    APK,
    DEB,
    GOLANG,
    MAVEN,
    NPM,
    OS_PACKAGE_TYPES,
    PACKAGE_TYPES,
    RPM,
    Package,
)
from kubeproof.images.reader import ImageContents
from kubeproof.inventory.objects import as_dict, as_list, as_str

PROPERTY = "kubeproof:"
# Bump when package extraction finds more (a new database format): older cache entries
# were made without it and are re-read rather than trusted.
EXTRACTOR_VERSION = "3"  # 2: npm packages and Go binaries; 3: rpm, Java, Rust
_SBOM_NAMESPACE = uuid.UUID("5b1e3f5e-6a43-4c1c-9a55-1f0d7c2b8e11")
# purl namespaces of rpm distributions whose os-release ID differs from the vendor's name.
_RPM_NAMESPACES = {"rhel": "redhat"}


def _purl_part(text: str) -> str:
    return urllib.parse.quote(text, safe=":")


def package_url(package: Package, os: OperatingSystem | None) -> str:
    """pkg:deb/debian/NAME@VERSION?arch=..&distro=debian-12, pkg:apk/alpine/...,
    pkg:rpm/redhat/NAME@VERSION-RELEASE?arch=..&distro=rhel-9.4&epoch=1,
    pkg:pypi/NAME@VERSION, pkg:golang/github.com/x/y@v1.2.3, pkg:npm/%40scope/name@1.0.0,
    pkg:maven/GROUP/ARTIFACT@VERSION, pkg:cargo/NAME@VERSION
    (purl spec: qualifiers sorted, values percent-encoded)."""
    qualifiers: dict[str, str] = {}
    version = package.version
    if package.arch:
        qualifiers["arch"] = package.arch
    if package.type in OS_PACKAGE_TYPES and os is not None and os.distro_qualifier:
        qualifiers["distro"] = os.distro_qualifier
    if package.type == DEB:
        namespace = os.id if os and os.id else "debian"
    elif package.type == APK:
        namespace = os.id if os and os.id else "alpine"
    elif package.type == RPM:
        namespace = _RPM_NAMESPACES.get(os.id, os.id) if os and os.id else ""
        epoch, separator, rest = version.partition(":")
        if separator and epoch.isdigit():  # the epoch is a qualifier, not part of the version
            qualifiers["epoch"], version = epoch, rest
    elif package.type in (GOLANG, NPM) and "/" in package.name:
        # Go module paths and npm scopes: everything before the last `/` is the namespace.
        namespace, qualifiers = package.name.rpartition("/")[0], {}
    elif package.type == MAVEN and ":" in package.name:
        namespace, qualifiers = package.name.partition(":")[0], {}
    else:
        namespace, qualifiers = "", {}
    if package.type in (GOLANG, NPM):
        name = package.name.rpartition("/")[2]
    elif package.type == MAVEN:
        name = package.name.rpartition(":")[2]
    else:
        name = package.name
    text = f"pkg:{package.type}/"
    if namespace:
        text += "/".join(_purl_part(part) for part in namespace.split("/")) + "/"
    text += f"{_purl_part(name)}@{_purl_part(version)}"
    if qualifiers:
        text += "?" + "&".join(f"{k}={_purl_part(v)}" for k, v in sorted(qualifiers.items()))
    return text


def purl_qualifiers(purl: str) -> dict[str, str]:
    query = purl.partition("?")[2].partition("#")[0]
    if not query:
        return {}  # most purls (language packages): skip the parse, SBOMs hold thousands
    return {k: v for k, v in urllib.parse.parse_qsl(query)}


def _property(name: str, value: str) -> dict[str, str]:
    return {"name": f"{PROPERTY}{name}", "value": value}


def _component(package: Package, purl: str, bom_ref: str) -> dict[str, Any]:
    properties = [_property("package-type", package.type), _property("location", package.location)]
    # dpkg and apk records always name a source (their own name by default): written when
    # it differs. An rpm header may name none, so rpm writes what it has.
    always = package.type == RPM
    if package.source_name and (always or package.source_name != package.name):
        properties.append(_property("source-name", package.source_name))
    if package.source_version and (always or package.source_version != package.version):
        properties.append(_property("source-version", package.source_version))
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": bom_ref,
        "name": package.name,
        "version": package.version,
        "purl": purl,
        "properties": properties,
    }
    if package.license:
        # rpm License tags are often not SPDX expressions: recorded as a license name.
        component["licenses"] = [{"license": {"name": package.license}}]
    return component


def build_sbom(contents: ImageContents, now: datetime | None = None) -> str:
    """The CycloneDX 1.6 JSON document of an image's packages."""
    purls = [package_url(p, contents.os) for p in contents.packages]
    seen = Counter(purls)
    components = [
        # Two copies of one package (two virtualenvs) share a purl: the location tells them apart.
        _component(package, purl, purl if seen[purl] == 1 else f"{purl}#{package.location}")
        for package, purl in zip(contents.packages, purls, strict=True)
    ]
    image_properties = [
        _property("reference", contents.reference),
        _property("extractor-version", EXTRACTOR_VERSION),
    ]
    if contents.os is not None:
        image_properties += [
            _property("os-id", contents.os.id),
            _property("os-version-id", contents.os.version_id or ""),
        ]
    if contents.platform is not None:
        image_properties.append(_property("platform", str(contents.platform)))
    # What could not be read (an unsupported rpm database, a zip bomb) stays with the SBOM,
    # so a cached image still says what it does not cover.
    image_properties += [_property("warning", warning) for warning in contents.warnings]
    timestamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": uuid.uuid5(_SBOM_NAMESPACE, contents.digest).urn,
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": {
                "components": [{"type": "application", "name": "kubeproof", "version": __version__}]
            },
            "component": {
                "type": "container",
                "bom-ref": contents.digest,
                "name": contents.reference.split("@")[0],
                "version": contents.digest,
                "properties": image_properties,
            },
        },
        "components": components,
        "dependencies": [{"ref": contents.digest, "dependsOn": [c["bom-ref"] for c in components]}],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _warnings(entry: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        as_str(p.get("value")) or ""
        for p in map(as_dict, as_list(entry.get("properties")))
        if p.get("name") == f"{PROPERTY}warning"
    )


def _license(entry: dict[str, Any]) -> str | None:
    for choice in map(as_dict, as_list(entry.get("licenses"))):
        name = as_str(as_dict(choice.get("license")).get("name"))
        if name:
            return name
    return None


def _properties(entry: dict[str, Any]) -> dict[str, str]:
    return {
        as_str(p.get("name")) or "": as_str(p.get("value")) or ""
        for p in map(as_dict, as_list(entry.get("properties")))
    }


def _package_from_component(entry: dict[str, Any]) -> Package:
    properties = _properties(entry)
    name, version = as_str(entry.get("name")) or "", as_str(entry.get("version")) or ""
    package_type = properties.get(f"{PROPERTY}package-type", "")
    if not name or not version or package_type not in PACKAGE_TYPES:
        raise ValueError(f"component {name[:80]!r} is incomplete")
    if package_type == RPM:  # as the rpm reader sets them: only when the header names one
        source_name = properties.get(f"{PROPERTY}source-name")
        source_version = properties.get(f"{PROPERTY}source-version")
    elif package_type in (DEB, APK):
        source_name = properties.get(f"{PROPERTY}source-name", name)
        source_version = properties.get(f"{PROPERTY}source-version", version)
    else:
        source_name = source_version = None
    return Package(
        package_type,
        name,
        version,
        purl_qualifiers(as_str(entry.get("purl")) or "").get("arch"),
        source_name,
        source_version,
        properties.get(f"{PROPERTY}location", ""),
        _license(entry),
    )


def contents_from_sbom(text: str, where: str) -> ImageContents:
    """Read back an SBOM this module wrote (the cache); an ImageError when it is not one."""
    try:
        document = as_dict(json.loads(text))
        metadata = as_dict(as_dict(document.get("metadata")).get("component"))
        image = _properties(metadata)
        digest = as_str(metadata.get("version")) or ""
        parse_digest(digest, where)
        if image.get(f"{PROPERTY}extractor-version") != EXTRACTOR_VERSION:
            raise ValueError("written by another version of the package extractor")
        os = None
        if image.get(f"{PROPERTY}os-id"):
            os = OperatingSystem(
                image[f"{PROPERTY}os-id"], image.get(f"{PROPERTY}os-version-id") or None
            )
        platform_text = image.get(f"{PROPERTY}platform")
        platform = Platform.parse(platform_text) if platform_text else None
        packages = [
            _package_from_component(as_dict(entry)) for entry in as_list(document.get("components"))
        ]
    except (ValueError, TypeError, KeyError, ImageError, RecursionError) as error:
        raise ImageError(f"{where}: not a kubeproof SBOM ({error})") from None
    return ImageContents(
        image.get(f"{PROPERTY}reference", ""),
        digest,
        platform,
        os,
        tuple(sorted(packages)),
        _warnings(metadata),
    )


# An SBOM lists each package in about half a KiB: this is some 500,000 packages.
MAX_CACHED_SBOM_BYTES = 256 << 20


def cache_directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubeproof" / "sbom"


def cache_path(digest: str) -> Path:
    parse_digest(digest, "SBOM cache")
    return cache_directory() / f"{digest}.json"


def load_cached(digest: str) -> ImageContents | None:
    path = cache_path(digest)
    try:
        text = read_bounded_text(path, MAX_CACHED_SBOM_BYTES, f"SBOM cache {path}")
        contents = contents_from_sbom(text, str(path))
    except (UnreadableFile, ImageError):
        return None  # a missing or damaged cache entry is rebuilt, not trusted
    return contents if contents.digest == digest else None


def store_cached(contents: ImageContents, sbom: str) -> Path:
    """Write atomically: a concurrent reader sees the old entry or the new one, never half.
    An OSError when the cache cannot be written; no temporary file is left behind."""
    path = cache_path(contents.digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".sbom-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as output:
            output.write(sbom)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
