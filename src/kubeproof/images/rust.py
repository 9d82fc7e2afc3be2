"""Crates linked into Rust binaries built with cargo-auditable: its `.dep-v0` ELF section
holds the zlib-compressed JSON dependency list {"packages": [{"name", "version", "source",
"kind", "root"}]}. Crates from crates.io are reported; the binary's own (local) crates,
git and path dependencies have no crates.io advisories, and build-only dependencies
(`kind: build`: build scripts, proc macros) are not in the binary. Parsing never raises:
anything inconsistent gives None."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from typing import Any

SECTION_NAME = b".dep-v0"
MAX_JSON_BYTES = 8 << 20  # real lists are a few KiB; cargo-auditable caps its own at 8 MiB
MAX_SECTIONS = 4096
_ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Crate:
    name: str
    version: str
    source: str  # crates.io, git, local, registry


def _elf_section(data: bytes, wanted: bytes) -> bytes | None:
    """The contents of the ELF section named `wanted`, through the section headers."""
    if len(data) < 64 or not data.startswith(_ELF_MAGIC) or data[5] not in (1, 2):
        return None
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    try:
        if wide:
            (table,) = struct.unpack_from(order + "Q", data, 40)
            entry_size, count, names_index = struct.unpack_from(order + "HHH", data, 58)
            layout = order + "IIQQQQ"  # name, type, flags, addr, offset, size
        else:
            (table,) = struct.unpack_from(order + "I", data, 32)
            entry_size, count, names_index = struct.unpack_from(order + "HHH", data, 46)
            layout = order + "IIIIII"
        if (
            count > MAX_SECTIONS
            or names_index >= count
            or entry_size < struct.calcsize(layout)
            or table + count * entry_size > len(data)
        ):
            return None
        headers = [struct.unpack_from(layout, data, table + i * entry_size) for i in range(count)]
        names_offset, names_size = headers[names_index][4], headers[names_index][5]
        names = data[names_offset : names_offset + names_size]
        for name, _, _, _, offset, size in headers:
            end = names.find(b"\0", name)
            if end >= 0 and names[name:end] == wanted and offset + size <= len(data):
                return data[offset : offset + size]
    except (struct.error, OverflowError):
        return None
    return None


def parse_dependency_json(text: bytes) -> tuple[Crate, ...] | None:
    try:
        document: Any = json.loads(text)
    except (ValueError, RecursionError):
        return None
    packages = document.get("packages") if isinstance(document, dict) else None
    if not isinstance(packages, list):
        return None
    crates = []
    for package in packages:
        if not isinstance(package, dict) or package.get("kind") == "build":
            continue
        name, version = package.get("name"), package.get("version")
        source = package.get("source")
        if isinstance(name, str) and isinstance(version, str) and name and version:
            crates.append(Crate(name, version, source if isinstance(source, str) else "unknown"))
    return tuple(crates)


def read_auditable_crates(data: bytes) -> tuple[Crate, ...] | None:
    """The crates a cargo-auditable ELF binary declares, else None (no such data)."""
    section = _elf_section(data, SECTION_NAME)
    if section is None:
        return None
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(section, MAX_JSON_BYTES + 1)
    except zlib.error:
        return None
    if len(text) > MAX_JSON_BYTES:
        return None
    return parse_dependency_json(text)
