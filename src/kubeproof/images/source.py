"""What every image source (OCI layout, docker-archive, registry) hands to the reader: the
image's digest, its config and its layers, each with what to verify it against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import Manifest, Platform, config_diff_ids


@dataclass(frozen=True)
class ImageLayer:
    name: str  # for messages: the blob digest or the archive member
    open: Callable[[], IO[bytes]]
    blob_digest: str | None  # digest of the stored (maybe compressed) blob
    blob_size: int | None
    diff_id: str | None  # digest of the uncompressed tar, from the image config


@dataclass(frozen=True)
class OpenedImage:
    reference: str
    digest: str  # manifest digest; for a docker-archive, the image id (config digest)
    config: dict[str, Any]
    layers: tuple[ImageLayer, ...]
    repository: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def platform(self) -> Platform | None:
        os_name, arch = self.config.get("os"), self.config.get("architecture")
        if isinstance(os_name, str) and isinstance(arch, str):
            variant = self.config.get("variant")
            return Platform(os_name, arch, variant if isinstance(variant, str) else None)
        return None


def layers_of_manifest(
    manifest: Manifest,
    config: dict[str, Any],
    opener: Callable[[str], Callable[[], IO[bytes]]],
    where: str,
) -> tuple[ImageLayer, ...]:
    diff_ids = config_diff_ids(config, where)
    if len(diff_ids) != len(manifest.layers):
        raise ImageError(
            f"{where}: {len(manifest.layers)} layers but "
            f"{len(diff_ids)} rootfs.diff_ids in the config"
        )
    return tuple(
        ImageLayer(layer.digest, opener(layer.digest), layer.digest, layer.size, diff_id)
        for layer, diff_id in zip(manifest.layers, diff_ids, strict=True)
    )
