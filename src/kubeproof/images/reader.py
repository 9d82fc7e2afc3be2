"""Read an image end to end: open its source, stream and verify every layer in order, and
return its OS and installed packages."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kubeproof.images.archive import DockerArchive
from kubeproof.images.digest import VerifyingReader
from kubeproof.images.errors import ImageError
from kubeproof.images.filesystem import ImageFiles, apply_layer, decompressed
from kubeproof.images.layout import OciLayout
from kubeproof.images.manifest import DEFAULT_PLATFORM, Platform
from kubeproof.images.osrelease import OperatingSystem, detect_os
from kubeproof.images.packages import Package, find_packages
from kubeproof.images.reference import (
    ArchiveReference,
    ImageReference,
    LayoutReference,
    RegistryReference,
    parse_reference,
)
from kubeproof.images.source import ImageLayer, OpenedImage


@dataclass(frozen=True)
class ImageContents:
    reference: str
    digest: str
    platform: Platform | None
    os: OperatingSystem | None
    packages: tuple[Package, ...]
    warnings: tuple[str, ...] = field(default=())


def open_image(
    reference: ImageReference,
    text: str,
    platform: Platform,
    registry_config: Path | None = None,
    timeout: float = 30.0,
) -> OpenedImage:
    if isinstance(reference, LayoutReference):
        return OciLayout(reference.path).open(reference.tag, platform, text)
    if isinstance(reference, ArchiveReference):
        return DockerArchive(reference.path).open(text)
    from kubeproof.images.registry import RegistryClient  # network code only when needed

    client = RegistryClient(reference.registry, registry_config=registry_config, timeout=timeout)
    opened: OpenedImage = client.open_image(reference, platform)
    return opened


def read_layer(state: ImageFiles, layer: ImageLayer, where: str) -> None:
    """Stream one layer through its verifications into `state`; a mismatch raises."""
    if layer.blob_digest is None and layer.diff_id is None:
        raise ImageError(f"{where}: layer {layer.name} has no digest to verify it against")
    raw = layer.open()
    try:
        stream: IO[bytes] = raw
        blob_check = None
        if layer.blob_digest is not None:
            blob_check = VerifyingReader(
                raw, layer.blob_digest, f"{where} layer {layer.name}", layer.blob_size
            )
            stream = blob_check  # type: ignore[assignment]
        tar_stream = decompressed(stream, f"{where} layer {layer.name}")
        tar_check = None
        if layer.diff_id is not None:
            tar_check = VerifyingReader(
                tar_stream, layer.diff_id, f"{where} layer {layer.name} (uncompressed)"
            )
            tar_stream = tar_check  # type: ignore[assignment]
        apply_layer(state, tar_stream, f"{where} layer {layer.name}")
        try:
            if tar_check is not None:
                tar_check.verify()
            if blob_check is not None:
                blob_check.verify()
        except (OSError, EOFError, ValueError) as error:
            raise ImageError(
                f"{where} layer {layer.name}: corrupt or truncated ({error})"
            ) from None
    finally:
        raw.close()


def read_files(image: OpenedImage) -> ImageFiles:
    state = ImageFiles()
    state.warnings.extend(image.warnings)
    for layer in image.layers:
        read_layer(state, layer, image.reference)
    return state


def read_image(
    text: str,
    platform: Platform | None = None,
    registry_config: Path | None = None,
    timeout: float = 30.0,
) -> ImageContents:
    reference = parse_reference(text)
    image = open_image(reference, text, platform or DEFAULT_PLATFORM, registry_config, timeout)
    files = read_files(image)
    return ImageContents(
        text,
        image.digest,
        image.platform,
        detect_os(files),
        tuple(find_packages(files)),
        tuple(files.warnings),
    )


def registry_reference(text: str) -> RegistryReference | None:
    reference = parse_reference(text)
    return reference if isinstance(reference, RegistryReference) else None
