"""An image's contents, from the SBOM cache when its digest was seen before, else read from
its layers (and then cached). Only manifests and the config are fetched to learn the digest."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import DEFAULT_PLATFORM, Platform
from kubeproof.images.osrelease import detect_os
from kubeproof.images.packages import find_packages
from kubeproof.images.reader import ImageContents, open_image, read_files
from kubeproof.images.reference import RegistryReference, parse_reference
from kubeproof.images.sbom import build_sbom, load_cached, store_cached
from kubeproof.images.source import OpenedImage


@dataclass(frozen=True)
class ScannedImage:
    contents: ImageContents
    built_sbom: str | None  # None when read from the cache: built only if asked for
    from_cache: bool

    @functools.cached_property
    def sbom(self) -> str:
        # Matching a cached image needs its packages, not its SBOM text (building it costs
        # as much as reading the cache entry).
        return self.built_sbom if self.built_sbom is not None else build_sbom(self.contents)


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
        return ScannedImage(dataclasses.replace(cached, reference=text), None, True)
    image = open_image(reference, text, platform or DEFAULT_PLATFORM, registry_config, timeout)
    return scan_opened_image(image, text, use_cache)


def scan_opened_image(image: OpenedImage, text: str, use_cache: bool = True) -> ScannedImage:
    """The contents of an image already opened (by any client): from the SBOM cache by its
    digest, else read from its layers and cached."""
    if use_cache:
        cached = load_cached(image.digest)
        if cached is not None:
            contents = dataclasses.replace(cached, reference=text)
            return ScannedImage(contents, None, True)
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
        try:
            store_cached(contents, sbom)
        except OSError as error:  # the scan stands; only the next one reads the layers again
            warning = f"SBOM cache not written ({error})"
            contents = dataclasses.replace(contents, warnings=(*contents.warnings, warning))
    return ScannedImage(contents, sbom, False)
