"""Test helpers that assemble real images (OCI layouts, docker-archives, registry pushes)
from real files, byte for byte as the image specs lay them out."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TYPES = {
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "none": "application/vnd.oci.image.layer.v1.tar",
}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    path: str
    data: bytes = b""
    kind: str = "file"  # file, dir, symlink, hardlink
    target: str = ""
    mode: int = 0o644


def file(path: str, data: bytes | str) -> Entry:
    return Entry(path, data.encode() if isinstance(data, str) else data)


def executable(path: str, data: bytes) -> Entry:
    return Entry(path, data, mode=0o755)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, kind="symlink", target=target)


def layer_tar(*entries: Entry) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mtime = 0
            if entry.kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
                tar.addfile(info)
            elif entry.kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, entry.target
                tar.addfile(info)
            else:
                info.size, info.mode = len(entry.data), entry.mode
                tar.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


@dataclass
class Blobs:
    """Content-addressed blobs of one or more images, plus the tags to publish."""

    blobs: dict[str, bytes] = field(default_factory=dict)

    def add(self, data: bytes, media_type: str, **extra: Any) -> dict[str, Any]:
        digest = sha256(data)
        self.blobs[digest] = data
        return {"mediaType": media_type, "digest": digest, "size": len(data), **extra}

    def image(
        self,
        layers: list[bytes],
        compression: str = "gzip",
        platform: tuple[str, str] = ("linux", "amd64"),
        docker: bool = False,
        config_extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """An image manifest; returns its descriptor (the manifest blob is stored)."""
        config = {
            "architecture": platform[1],
            "os": platform[0],
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
            "config": {},
            **(config_extra or {}),
        }
        config_descriptor = self.add(
            json.dumps(config).encode(), DOCKER_CONFIG if docker else OCI_CONFIG
        )
        layer_type = (
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
            if docker
            else LAYER_TYPES[compression]
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": config_descriptor,
            "layers": [
                self.add(compress(layer, "gzip" if docker else compression), layer_type)
                for layer in layers
            ],
        }
        return self.add(json.dumps(manifest).encode(), manifest["mediaType"])

    def index(
        self, manifests: list[tuple[dict[str, Any], tuple[str, str, str | None]]]
    ) -> dict[str, Any]:
        entries = []
        for descriptor, (os_name, arch, variant) in manifests:
            platform = {"os": os_name, "architecture": arch}
            if variant:
                platform["variant"] = variant
            entries.append({**descriptor, "platform": platform})
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        return self.add(json.dumps(index).encode(), OCI_INDEX)

    def write_layout(self, root: Path, tagged: dict[str, dict[str, Any]]) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        for digest, data in self.blobs.items():
            path = root / "blobs" / "sha256" / digest.split(":", 1)[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        manifests = [
            {**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}}
            for tag, descriptor in tagged.items()
        ]
        (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
        return root


def docker_archive(
    path: Path, layers: list[bytes], repo_tag: str = "app:1", oci_style: bool = False
) -> Path:
    """A tarball as `docker save` writes it: legacy (<id>/layer.tar, <id>.json) or, as
    Docker 25 and later do, with blobs/sha256/<hex> names (`oci_style`)."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
    }
    config_bytes = json.dumps(config).encode()
    config_name = sha256(config_bytes).split(":", 1)[1] + ".json"
    layer_names = [f"{sha256(layer).split(':', 1)[1]}/layer.tar" for layer in layers]
    if oci_style:
        config_name = "blobs/sha256/" + sha256(config_bytes).split(":", 1)[1]
        layer_names = ["blobs/sha256/" + sha256(layer).split(":", 1)[1] for layer in layers]
    manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": layer_names}]
    with tarfile.open(path, "w") as tar:
        for name, data in [
            ("manifest.json", json.dumps(manifest).encode()),
            (config_name, config_bytes),
            *zip(layer_names, layers, strict=True),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path
