"""The build information the Go linker embeds in every binary built in module mode (what
`go version -m` prints): the Go toolchain version and the module path@version list.

The linker writes a 32-byte header starting `\\xff Go buildinf:` (16-byte aligned in the
.go.buildinfo section), then the pointer size (byte 14) and flags (byte 15). Go 1.18 and
later set flag 0x2 and put both strings right after the header, each prefixed by its
length as an unsigned varint. Earlier linkers store two pointers after the header (to Go
string headers {data pointer, length}), which are virtual addresses: they are mapped to
file offsets through the ELF program headers. The module string is wrapped in 16-byte
sentinels that are removed. Parsing never raises: anything inconsistent gives None."""

from __future__ import annotations

import struct
from dataclasses import dataclass

BUILDINFO_MAGIC = b"\xff Go buildinf:"
_HEADER_SIZE = 32
_FLAG_BIG_ENDIAN = 0x1
_FLAG_INLINE_STRINGS = 0x2
_ELF_MAGIC = b"\x7fELF"
_PT_LOAD = 1
_MAX_STRING = 1 << 20  # real module lists are a few KiB
_MAX_CANDIDATES = 64


@dataclass(frozen=True)
class GoModule:
    path: str
    version: str
    replaced_by: str | None = None  # `path version` of a replace directive, if any


@dataclass(frozen=True)
class GoBuildInfo:
    go_version: str  # as the toolchain names itself: go1.21.3
    main_path: str  # the main package's import path
    main_module: GoModule | None
    dependencies: tuple[GoModule, ...]


def _uvarint(data: bytes, offset: int) -> tuple[int, int] | None:
    value = shift = 0
    for index in range(offset, min(offset + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index + 1
        shift += 7
    return None


def _inline_strings(data: bytes, offset: int) -> tuple[bytes, bytes] | None:
    strings = []
    for _ in range(2):
        decoded = _uvarint(data, offset)
        if decoded is None or decoded[0] > _MAX_STRING or decoded[1] + decoded[0] > len(data):
            return None
        length, start = decoded
        strings.append(data[start : start + length])
        offset = start + length
    return strings[0], strings[1]


@dataclass(frozen=True)
class _Segment:
    address: int
    offset: int
    size: int


def _elf_segments(data: bytes) -> list[_Segment]:
    """PT_LOAD segments (virtual address -> file offset) of an ELF file."""
    if len(data) < 64 or not data.startswith(_ELF_MAGIC):
        return []
    wide, order = data[4] == 2, "<" if data[5] == 1 else ">"
    try:
        if wide:
            (phoff,) = struct.unpack_from(order + "Q", data, 32)
            phentsize, phnum = struct.unpack_from(order + "HH", data, 54)
        else:
            (phoff,) = struct.unpack_from(order + "I", data, 28)
            phentsize, phnum = struct.unpack_from(order + "HH", data, 42)
        segments = []
        for number in range(min(phnum, 256)):
            base = phoff + number * phentsize
            if wide:
                kind, _, offset, address, _, size = struct.unpack_from(order + "IIQQQQ", data, base)
            else:
                kind, offset, address, _, size = struct.unpack_from(order + "IIIII", data, base)
            if kind == _PT_LOAD:
                segments.append(_Segment(address, offset, size))
        return segments
    except (struct.error, OverflowError):  # OverflowError: a header offset of 2**63 or more
        return []


def _read_at_address(data: bytes, segments: list[_Segment], address: int, size: int) -> bytes:
    for segment in segments:
        if segment.address <= address and address + size <= segment.address + segment.size:
            start = segment.offset + address - segment.address
            return data[start : start + size] if start + size <= len(data) else b""
    return b""


def _pointer_strings(data: bytes, header: int) -> tuple[bytes, bytes] | None:
    """Pre-1.18: two pointers to Go string headers, resolved through the ELF segments."""
    pointer_size, flags = data[header + 14], data[header + 15]
    if pointer_size not in (4, 8):
        return None
    order = ">" if flags & _FLAG_BIG_ENDIAN else "<"
    code = order + ("Q" if pointer_size == 8 else "I")
    segments = _elf_segments(data)
    strings = []
    for slot in range(2):
        try:
            (pointer,) = struct.unpack_from(code, data, header + 16 + slot * pointer_size)
        except struct.error:
            return None
        string_header = _read_at_address(data, segments, pointer, 2 * pointer_size)
        if len(string_header) != 2 * pointer_size:
            return None
        address, length = struct.unpack(order + code[1] * 2, string_header)
        if length > _MAX_STRING:
            return None
        text = _read_at_address(data, segments, address, length)
        if len(text) != length:
            return None
        strings.append(text)
    return strings[0], strings[1]


def _strip_sentinels(modinfo: bytes) -> bytes:
    # The linker wraps the module list in 16 fixed non-UTF-8 bytes each side; the list
    # itself ends with a newline. Stripped as bytes, before decoding.
    if len(modinfo) >= 33 and modinfo[-17:-16] == b"\n":
        return modinfo[16:-16]
    return b""


def _module(fields: list[str]) -> GoModule | None:
    if len(fields) < 2 or not fields[1]:
        return None
    return GoModule(fields[1], fields[2] if len(fields) > 2 else "")


def parse_modinfo(go_version: str, modinfo: str) -> GoBuildInfo:
    """`path`, `mod`, `dep` and `=>` (replaces the line before) lines of the module list."""
    main_path, main_module = "", None
    dependencies: list[GoModule] = []
    for line in modinfo.splitlines():
        fields = line.split("\t")
        kind = fields[0]
        if kind == "path" and len(fields) > 1:
            main_path = fields[1]
        elif kind == "mod":
            main_module = _module(fields)
        elif kind == "dep" and (module := _module(fields)) is not None:
            dependencies.append(module)
        elif kind == "=>" and dependencies and len(fields) > 1:
            replacement = " ".join(f for f in fields[1:3] if f)
            last = dependencies[-1]
            dependencies[-1] = GoModule(last.path, last.version, replacement)
    return GoBuildInfo(go_version, main_path, main_module, tuple(dependencies))


def _at_header(data: bytes, header: int) -> GoBuildInfo | None:
    if header + _HEADER_SIZE > len(data):
        return None
    flags = data[header + 15]
    if flags & _FLAG_INLINE_STRINGS:
        strings = _inline_strings(data, header + _HEADER_SIZE)
    else:
        strings = _pointer_strings(data, header)
    if strings is None:
        return None
    version = strings[0].decode("utf-8", "replace")
    if not version.startswith(("go", "devel")):
        return None
    return parse_modinfo(version, _strip_sentinels(strings[1]).decode("utf-8", "replace"))


def read_build_info(data: bytes) -> GoBuildInfo | None:
    """The build info of a Go binary (ELF or any format for 1.18+), else None."""
    start, candidates = 0, 0
    while candidates < _MAX_CANDIDATES:
        header = data.find(BUILDINFO_MAGIC, start)
        if header < 0:
            return None
        candidates += 1
        if header % 16 == 0:
            info = _at_header(data, header)
            if info is not None:
                return info
        start = header + 1
    return None


def looks_like_executable(head: bytes) -> bool:
    """ELF, Mach-O or PE: the formats the Go linker writes."""
    return head.startswith(
        (_ELF_MAGIC, b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa", b"MZ")
    )
