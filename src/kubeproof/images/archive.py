"""Images saved by `docker save` (`docker-archive:PATH`): a tar holding manifest.json, the
image config and one tar per layer, verified against the config's rootfs.diff_ids."""

from __future__ import annotations

import json
import posixpath
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from kubeproof.images.digest import digest_of, verify_bytes
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import MAX_MANIFEST_BYTES, config_diff_ids, parse_json_document
from kubeproof.images.source import ImageLayer, OpenedImage
from kubeproof.inventory.objects import as_dict, as_list, as_str

_CONFIG_NAME = re.compile(r"^(?:blobs/sha256/)?([a-f0-9]{64})(?:\.json)?$")


class DockerArchive:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = f"docker-archive {path}"

    def _member_bytes(self, tar: tarfile.TarFile, name: str, limit: int) -> bytes:
        try:
            member = tar.getmember(posixpath.normpath(name))
        except KeyError:
            raise ImageError(f"{self.where}: no {name!r} in the archive") from None
        if member.size > limit:
            raise ImageError(f"{self.where}: {name} is over {limit} bytes")
        handle = tar.extractfile(member)
        if handle is None:
            raise ImageError(f"{self.where}: {name} is not a file")
        return handle.read(limit + 1)

    def _opener(self, name: str) -> Callable[[], IO[bytes]]:
        def open_layer() -> IO[bytes]:
            tar = tarfile.open(self.path)  # noqa: SIM115 - lives as long as the layer stream
            try:
                handle = tar.extractfile(posixpath.normpath(name))
            except KeyError:
                raise ImageError(f"{self.where}: layer {name!r} is missing") from None
            if handle is None:
                raise ImageError(f"{self.where}: layer {name!r} is not a file")
            return handle

        return open_layer

    def open(self, reference: str) -> OpenedImage:
        try:
            with tarfile.open(self.path) as tar:
                manifests = as_list(
                    json.loads(self._member_bytes(tar, "manifest.json", MAX_MANIFEST_BYTES))
                )
                if not manifests:
                    raise ImageError(f"{self.where}: manifest.json lists no image")
                entry = as_dict(manifests[0])
                config_name = as_str(entry.get("Config"))
                if config_name is None:
                    raise ImageError(f"{self.where}: manifest.json has no Config")
                config_bytes = self._member_bytes(tar, config_name, MAX_MANIFEST_BYTES)
        except (tarfile.TarError, OSError, ValueError) as error:
            raise ImageError(f"{self.where}: not a readable docker-archive ({error})") from None
        named = _CONFIG_NAME.match(config_name)
        if named:  # the config's name is its digest: check it
            verify_bytes(config_bytes, f"sha256:{named.group(1)}", f"{self.where} {config_name}")
        config = parse_json_document(config_bytes, f"{self.where} {config_name}")
        diff_ids = config_diff_ids(config, self.where)
        layer_names = [as_str(n) or "" for n in as_list(entry.get("Layers"))]
        if len(layer_names) != len(diff_ids):
            raise ImageError(
                f"{self.where}: {len(layer_names)} layers but {len(diff_ids)} "
                "rootfs.diff_ids in the config"
            )
        layers = tuple(
            ImageLayer(name, self._opener(name), None, None, diff_id)
            for name, diff_id in zip(layer_names, diff_ids, strict=True)
        )
        warnings = (
            (f"{self.where}: holds {len(manifests)} images; read the first",)
            if len(manifests) > 1
            else ()
        )
        return OpenedImage(reference, digest_of(config_bytes), config, layers, warnings=warnings)
