"""Image references: `oci:PATH[:TAG]`, `docker-archive:PATH`, or a registry reference
`[HOST[:PORT]/]REPOSITORY[:TAG][@DIGEST]` (Docker Hub when no host is named)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kubeproof.images.digest import parse_digest
from kubeproof.images.errors import ImageError

DOCKER_HUB = "docker.io"
_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


@dataclass(frozen=True)
class LayoutReference:
    path: Path
    tag: str | None


@dataclass(frozen=True)
class ArchiveReference:
    path: Path


@dataclass(frozen=True)
class RegistryReference:
    registry: str  # host[:port] as written (docker.io for Docker Hub)
    repository: str
    tag: str | None
    digest: str | None

    @property
    def identifier(self) -> str:
        """What to ask the registry for: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


ImageReference = LayoutReference | ArchiveReference | RegistryReference


def parse_layout(text: str) -> LayoutReference:
    rest = text[len("oci:") :]
    if not rest:
        raise ImageError("oci: reference without a path")
    path, _, tag = rest.rpartition(":")
    if path and tag and "/" not in tag and Path(path).is_dir():
        return LayoutReference(Path(path), tag)
    return LayoutReference(Path(rest), None)


def _is_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_registry(text: str) -> RegistryReference:
    name, digest = text, None
    if "@" in text:
        name, digest = text.split("@", 1)
        parse_digest(digest, f"image reference {text!r}")
    tag = None
    last_slash = name.rfind("/")
    if ":" in name[last_slash + 1 :]:
        name, tag = name.rsplit(":", 1)
        if not _TAG.match(tag):
            raise ImageError(f"image reference {text!r}: invalid tag {tag!r}")
    first, _, remainder = name.partition("/")
    if remainder and _is_host(first):
        registry, repository = first, remainder
    else:
        registry, repository = DOCKER_HUB, name
        if "/" not in repository:
            repository = f"library/{repository}"
    if not _REPOSITORY.match(repository):
        raise ImageError(f"image reference {text!r}: invalid repository name {repository!r}")
    if tag is None and digest is None:
        tag = "latest"
    return RegistryReference(registry, repository, tag, digest)


def parse_reference(text: str) -> ImageReference:
    if text.startswith("oci:"):
        return parse_layout(text)
    if text.startswith("docker-archive:"):
        path = text[len("docker-archive:") :]
        if not path:
            raise ImageError("docker-archive: reference without a path")
        return ArchiveReference(Path(path))
    if not text or text.strip() != text:
        raise ImageError(f"image reference {text!r} is empty or has spaces")
    return parse_registry(text)
