"""Package URLs (github.com/package-url/purl-spec) as OpenVEX matches them: parsed into
their parts, and a general purl (a VEX product) matching a more specific one (what an
image holds) when every part it gives agrees: no version matches every version, and
each qualifier it names must be present with the same value (others may be added)."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from kubeproof.images.packages import normalise_pypi_name
from kubeproof.images.reference import RegistryReference


class InvalidPurl(ValueError):
    """Text that is not a package URL."""


@dataclass(frozen=True)
class Purl:
    type: str
    namespace: str
    name: str
    version: str | None = None
    qualifiers: tuple[tuple[str, str], ...] = ()
    subpath: str | None = None

    def matches(self, specific: Purl) -> bool:
        """Does this (general) purl describe `specific`?"""
        if (self.type, self.namespace, self.name) != (
            specific.type,
            specific.namespace,
            specific.name,
        ):
            return False
        if self.version is not None and self.version != specific.version:
            return False
        if self.subpath is not None and self.subpath != specific.subpath:
            return False
        theirs = dict(specific.qualifiers)
        return all(theirs.get(key) == value for key, value in self.qualifiers)


def _decode(text: str, where: str) -> str:
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidPurl(f"{where}: percent-encoding is not UTF-8") from None


def _normalised_name(kind: str, name: str) -> str:
    if kind == "pypi":
        return normalise_pypi_name(name)
    if kind in ("oci", "deb", "apk", "rpm", "docker"):
        return name.lower()
    return name


def parse_purl(text: str) -> Purl:
    """pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS#SUBPATH; InvalidPurl naming the problem."""
    shown = repr(text[:120])
    if not isinstance(text, str) or not text[:4].lower() == "pkg:":
        raise InvalidPurl(f"{shown} is not a package URL (pkg:TYPE/NAME...)")
    rest = text[4:].lstrip("/")
    rest, _, subpath = rest.partition("#")
    rest, _, query = rest.partition("?")
    qualifiers = []
    for pair in filter(None, query.split("&")):
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise InvalidPurl(f"{shown}: qualifier {pair[:40]!r} is not key=value")
        if value:
            qualifiers.append((key.lower(), _decode(value, shown)))
    kind, separator, path = rest.partition("/")
    if not separator or not kind or not path:
        raise InvalidPurl(f"{shown} has no type and name")
    path = path.rstrip("/")
    version = None
    head, at, tail = path.rpartition("@")
    if at and "/" not in tail:
        path, version = head, _decode(tail, shown) or None
    segments = [_decode(segment, shown) for segment in path.split("/") if segment]
    if not segments:
        raise InvalidPurl(f"{shown} has no name")
    kind = kind.lower()
    namespace = "/".join(segments[:-1])
    return Purl(
        kind,
        namespace.lower() if kind in ("deb", "apk", "rpm") else namespace,
        _normalised_name(kind, segments[-1]),
        version,
        tuple(sorted(qualifiers)),
        "/".join(s for s in subpath.split("/") if s not in ("", ".", "..")) or None,
    )


def image_purl(digest: str, reference: RegistryReference | None, arch: str | None) -> Purl:
    """The purl of an image (purl spec, type `oci`): named by the last segment of its
    repository, versioned by its digest, with `repository_url` and `tag` when known."""
    qualifiers = []
    name = "image"
    if reference is not None:
        name = reference.repository.rsplit("/", 1)[-1].lower()
        qualifiers.append(("repository_url", f"{reference.registry}/{reference.repository}"))
        if reference.tag:
            qualifiers.append(("tag", reference.tag))
    if arch:
        qualifiers.append(("arch", arch))
    return Purl("oci", "", name, digest.lower(), tuple(sorted(qualifiers)))
