"""Images in an OCI image layout directory (`oci:PATH[:TAG]`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

from kubeproof.bounded import UnreadableFile, read_bounded
from kubeproof.images.digest import parse_digest, verify_bytes
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import (
    MAX_MANIFEST_BYTES,
    Descriptor,
    Platform,
    parse_descriptor,
    parse_json_document,
    resolve_manifest,
)
from kubeproof.images.source import OpenedImage, layers_of_manifest
from kubeproof.inventory.objects import as_list

REF_NAME = "org.opencontainers.image.ref.name"


class OciLayout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.where = f"OCI layout {root}"
        if not (root / "oci-layout").is_file() or not (root / "index.json").is_file():
            raise ImageError(
                f"{self.where}: not an OCI image layout (no oci-layout and index.json)"
            )

    def blob_path(self, digest: str) -> Path:
        algorithm, hex_value = parse_digest(digest, self.where)
        path = self.root / "blobs" / algorithm / hex_value
        # A blob that is a symlink out of the layout is not part of the image.
        real, root = os.path.realpath(path), os.path.realpath(self.root)
        if not real.startswith(root + os.sep) or not os.path.isfile(real):
            raise ImageError(f"{self.where}: blob {digest} is missing")
        return path

    def read_blob(self, descriptor: Descriptor, limit: int = MAX_MANIFEST_BYTES) -> bytes:
        if descriptor.size > limit:
            raise ImageError(
                f"{self.where}: blob {descriptor.digest} is {descriptor.size} "
                f"bytes, over the {limit} byte limit"
            )
        with self.blob_path(descriptor.digest).open("rb") as handle:
            data = handle.read(limit + 1)
        if len(data) != descriptor.size:
            raise ImageError(
                f"{self.where}: blob {descriptor.digest}: size mismatch: "
                f"expected {descriptor.size} bytes, got {len(data)}"
            )
        verify_bytes(data, descriptor.digest, f"{self.where} blob")
        return data

    def opener(self, digest: str) -> Callable[[], IO[bytes]]:
        return lambda: self.blob_path(digest).open("rb")

    def top_descriptor(self, tag: str | None) -> Descriptor:
        where = f"{self.where} index.json"
        try:
            text = read_bounded(self.root / "index.json", MAX_MANIFEST_BYTES, where)
        except UnreadableFile as refused:
            raise ImageError(str(refused)) from None
        index = parse_json_document(text, where)
        entries = [
            parse_descriptor(e, f"{self.where} index.json manifests[{n}]")
            for n, e in enumerate(as_list(index.get("manifests")))
        ]
        if tag is not None:
            tagged = [e for e in entries if e.annotation(REF_NAME) == tag]
            if not tagged:
                names = sorted({e.annotation(REF_NAME) or "" for e in entries} - {""})
                raise ImageError(
                    f"{self.where}: no image tagged {tag!r} (tags: {', '.join(names) or 'none'})"
                )
            return tagged[0]
        if len(entries) != 1:
            raise ImageError(
                f"{self.where}: index.json lists {len(entries)} images; name one with oci:PATH:TAG"
            )
        return entries[0]

    def open(self, tag: str | None, platform: Platform, reference: str) -> OpenedImage:
        top = self.top_descriptor(tag)
        manifest = resolve_manifest(
            self.read_blob(top),
            top.digest,
            top.media_type or None,
            lambda d: (self.read_blob(d), d.media_type or None),
            platform,
            self.where,
        )
        config = parse_json_document(
            self.read_blob(manifest.config), f"{self.where} config {manifest.config.digest}"
        )
        layers = layers_of_manifest(manifest, config, self.opener, self.where)
        return OpenedImage(reference, manifest.digest, config, layers)
