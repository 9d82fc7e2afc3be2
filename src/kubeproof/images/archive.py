"""Images saved by `docker save` (`docker-archive:PATH`): a tar holding manifest.json, the
image config and one tar per layer, verified against the config's rootfs.diff_ids."""

from __future__ import annotations

import posixpath
import re
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from kubeproof.images.digest import digest_of, verify_bytes
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import (
    MAX_MANIFEST_BYTES,
    config_diff_ids,
    load_json,
    parse_json_document,
)
from kubeproof.images.source import ImageLayer, OpenedImage
from kubeproof.inventory.objects import as_dict, as_list, as_str

_CONFIG_NAME = re.compile(r"^(?:blobs/sha256/)?([a-f0-9]{64})(?:\.json)?$")
_GZIP_MAGIC = b"\x1f\x8b"
# `docker save` links a layer stored once under another name; a chain longer than this is
# a loop.
MAX_LINK_HOPS = 8


class DockerArchive:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = f"docker-archive {path}"

    def _open_tar(self) -> tarfile.TarFile:
        """A plain or gzip tar, told apart by its first bytes: tarfile's own guess also tries
        lzma, whose reader runs through a file of zeros (or /dev/zero) for ever."""
        try:
            with self.path.open("rb") as handle:
                gzipped = handle.read(len(_GZIP_MAGIC)) == _GZIP_MAGIC
            return tarfile.open(self.path, "r:gz" if gzipped else "r:")
        except (tarfile.TarError, OSError, EOFError) as error:
            raise ImageError(f"{self.where}: not a readable docker-archive ({error})") from None

    def _file_member(self, tar: tarfile.TarFile, name: str) -> tarfile.TarInfo:
        """The regular file `name` names, following links inside the archive (tarfile's own
        following fails with a KeyError, or recurses without end on a loop)."""
        path = named = posixpath.normpath(name)
        for _ in range(MAX_LINK_HOPS):
            try:
                member = tar.getmember(path)
            except KeyError:
                linked = f" (linked from {named!r})" if path != named else ""
                raise ImageError(f"{self.where}: no {path!r} in the archive{linked}") from None
            if member.isreg():
                return member
            if member.issym():
                path = posixpath.normpath(
                    posixpath.join(posixpath.dirname(member.name), member.linkname)
                )
            elif member.islnk():
                path = posixpath.normpath(member.linkname)
            else:
                raise ImageError(f"{self.where}: {name!r} is not a file")
        raise ImageError(f"{self.where}: {name!r} is a chain or loop of links")

    def _member_bytes(self, tar: tarfile.TarFile, name: str, limit: int) -> bytes:
        member = self._file_member(tar, name)
        if member.size > limit:
            raise ImageError(f"{self.where}: {name} is over {limit} bytes")
        handle = tar.extractfile(member)
        if handle is None:
            raise ImageError(f"{self.where}: {name} is not a file")
        return handle.read(limit + 1)

    def _opener(self, name: str) -> Callable[[], IO[bytes]]:
        def open_layer() -> IO[bytes]:
            tar = self._open_tar()  # lives as long as the layer stream
            handle = tar.extractfile(self._file_member(tar, name))
            if handle is None:
                raise ImageError(f"{self.where}: layer {name!r} is not a file")
            return handle

        return open_layer

    def open(self, reference: str) -> OpenedImage:
        try:
            with self._open_tar() as tar:
                if tar.next() is None:  # all zeros (tarfile reads that as an empty tar)
                    raise ImageError(f"{self.where}: not a readable docker-archive (no entries)")
                manifest_bytes = self._member_bytes(tar, "manifest.json", MAX_MANIFEST_BYTES)
                manifests = as_list(load_json(manifest_bytes, f"{self.where} manifest.json"))
                if not manifests:
                    raise ImageError(f"{self.where}: manifest.json lists no image")
                entry = as_dict(manifests[0])
                config_name = as_str(entry.get("Config"))
                if config_name is None:
                    raise ImageError(f"{self.where}: manifest.json has no Config")
                config_bytes = self._member_bytes(tar, config_name, MAX_MANIFEST_BYTES)
        except (tarfile.TarError, OSError, EOFError, ValueError) as error:
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
