"""An image's contents, from the SBOM cache when its digest was seen before, else read from
its layers (and then cached). Only manifests and the config are fetched to learn the digest."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import DEFAULT_PLATFORM, Platform
from kubeproof.images.osrelease import detect_os
from kubeproof.images.packages import find_packages
from kubeproof.images.reader import ImageContents, open_image, read_files
from kubeproof.images.reference import RegistryReference, parse_reference
from kubeproof.images.sbom import build_sbom, load_cached, store_cached


@dataclass(frozen=True)
class ScannedImage:
    contents: ImageContents
    sbom: str
    from_cache: bool


def scan_image(
    text: str,
    platform: Platform | None = None,
    registry_config: Path | None = None,
    timeout: float = 30.0,
    use_cache: bool = True,
    offline: bool = False,
) -> ScannedImage:
    reference = parse_reference(text)
    if offline and isinstance(reference, RegistryReference):
        cached = load_cached(reference.digest) if reference.digest else None
        if cached is None:
            raise ImageError(
                f"{text}: --offline reads a registry image only from the SBOM "
                "cache, by the digest of its platform manifest (REF@sha256:...), "
                "and this one is not cached"
            )
        return ScannedImage(dataclasses.replace(cached, reference=text), build_sbom(cached), True)
    image = open_image(reference, text, platform or DEFAULT_PLATFORM, registry_config, timeout)
    if use_cache:
        cached = load_cached(image.digest)
        if cached is not None:
            contents = dataclasses.replace(cached, reference=text)
            return ScannedImage(contents, build_sbom(contents), True)
    files = read_files(image)
    contents = ImageContents(
        text,
        image.digest,
        image.platform,
        detect_os(files),
        tuple(find_packages(files)),
        tuple(files.warnings),
    )
    sbom = build_sbom(contents)
    if use_cache:
        store_cached(contents, sbom)
    return ScannedImage(contents, sbom, False)
