"""OCI and Docker v2 schema 2 manifests and indexes: parsing with clear errors, and choosing
the manifest of one platform from an index."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeproof.images.digest import parse_digest
from kubeproof.images.errors import ImageError
from kubeproof.inventory.objects import as_dict, as_list, as_str

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
MAX_MANIFEST_BYTES = 4 << 20
MAX_INDEX_DEPTH = 4


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """`linux/arm64`, `linux/arm/v7`: a ValueError for anything else."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"platform {text!r} is not OS/ARCH[/VARIANT]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


DEFAULT_PLATFORM = Platform("linux", "amd64")


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


def load_json(data: bytes, where: str) -> Any:
    """The parsed document; an ImageError naming `where` for anything else, including JSON
    nested too deeply for the parser (`[[[[...`), which raises RecursionError."""
    try:
        return json.loads(data)
    except ValueError as error:  # UnicodeDecodeError included
        raise ImageError(f"{where}: not valid JSON ({error})") from None
    except RecursionError:
        raise ImageError(f"{where}: JSON nested too deeply") from None


def parse_json_document(data: bytes, where: str) -> dict[str, Any]:
    if len(data) > MAX_MANIFEST_BYTES:
        raise ImageError(f"{where}: {len(data)} bytes, over the {MAX_MANIFEST_BYTES} limit")
    document = load_json(data, where)
    if not isinstance(document, dict):
        raise ImageError(f"{where}: expected a JSON object")
    return document


def parse_descriptor(value: Any, where: str) -> Descriptor:
    entry = as_dict(value)
    digest = as_str(entry.get("digest"))
    size = entry.get("size")
    if digest is None or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageError(f"{where}: descriptor without a digest and a size")
    parse_digest(digest, where)
    platform = None
    if isinstance(entry.get("platform"), dict):
        fields = as_dict(entry["platform"])
        platform = Platform(
            as_str(fields.get("os")) or "",
            as_str(fields.get("architecture")) or "",
            as_str(fields.get("variant")),
        )
    annotations = tuple(
        sorted(
            (str(k), str(v))
            for k, v in as_dict(entry.get("annotations")).items()
            if isinstance(v, str)
        )
    )
    return Descriptor(as_str(entry.get("mediaType")) or "", digest, size, platform, annotations)


def document_media_type(document: dict[str, Any], announced: str | None) -> str:
    """The media type of a manifest or index: its own field, else what the transport said,
    else guessed from its shape (OCI allows the field to be absent)."""
    media_type = as_str(document.get("mediaType")) or announced or ""
    if media_type in INDEX_TYPES or media_type in MANIFEST_TYPES:
        return media_type
    if "manifests" in document:
        return OCI_INDEX
    if "layers" in document:
        return OCI_MANIFEST
    return media_type


def parse_manifest(document: dict[str, Any], digest: str, media_type: str, where: str) -> Manifest:
    if document.get("schemaVersion") != 2:
        raise ImageError(
            f"{where}: unsupported manifest schemaVersion "
            f"{document.get('schemaVersion')!r} (only 2 is supported)"
        )
    config = parse_descriptor(document.get("config"), f"{where} config")
    layers = tuple(
        parse_descriptor(layer, f"{where} layer {number}")
        for number, layer in enumerate(as_list(document.get("layers")))
    )
    return Manifest(digest, media_type, config, layers)


def platform_matches(candidate: Platform | None, wanted: Platform) -> bool:
    if candidate is None:
        return False
    if (candidate.os, candidate.architecture) != (wanted.os, wanted.architecture):
        return False
    return wanted.variant is None or candidate.variant == wanted.variant


def choose_from_index(document: dict[str, Any], wanted: Platform, where: str) -> Descriptor:
    entries = [
        parse_descriptor(entry, f"{where} manifests[{number}]")
        for number, entry in enumerate(as_list(document.get("manifests")))
    ]
    matching = [entry for entry in entries if platform_matches(entry.platform, wanted)]
    if not matching:
        offered = sorted({str(e.platform) for e in entries if e.platform and e.platform.os})
        raise ImageError(
            f"{where}: no manifest for platform {wanted}; the index offers: "
            f"{', '.join(offered) or 'none'}"
        )
    # Without a requested variant prefer the plain one (arm64 images carry v8 as a variant).
    return matching[0]


FetchDocument = Callable[[Descriptor], tuple[bytes, str | None]]


def resolve_manifest(
    top: bytes,
    top_digest: str,
    top_type: str | None,
    fetch: FetchDocument,
    platform: Platform,
    where: str,
) -> Manifest:
    """Follow indexes down to the image manifest of `platform`. `fetch` returns the verified
    bytes of a descriptor and the media type its transport announced."""
    data, digest, announced = top, top_digest, top_type
    for _ in range(MAX_INDEX_DEPTH):
        document = parse_json_document(data, f"{where} ({digest})")
        media_type = document_media_type(document, announced)
        if media_type in MANIFEST_TYPES:
            return parse_manifest(document, digest, media_type, f"{where} manifest {digest}")
        if media_type not in INDEX_TYPES:
            raise ImageError(f"{where}: {digest} has unsupported media type {media_type!r}")
        chosen = choose_from_index(document, platform, f"{where} index {digest}")
        data, announced = fetch(chosen)
        digest = chosen.digest
        announced = announced or chosen.media_type
    raise ImageError(f"{where}: indexes nested deeper than {MAX_INDEX_DEPTH} levels")


def config_diff_ids(config: dict[str, Any], where: str) -> list[str]:
    diff_ids = [as_str(d) for d in as_list(as_dict(config.get("rootfs")).get("diff_ids"))]
    for diff_id in diff_ids:
        parse_digest(diff_id or "", f"{where} rootfs.diff_ids")
    return [d for d in diff_ids if d]
