"""Installed RPM packages from the rpm database of an image: the SQLite rpmdb (rpm 4.16
and later: RHEL 9, Rocky, AlmaLinux, Fedora; `var/lib/rpm/rpmdb.sqlite` or
`usr/lib/sysimage/rpm/rpmdb.sqlite`), whose `Packages` table holds one RPM header blob per
package, or the BerkeleyDB hash file `Packages` of older rpm (RHEL 7 and 8, UBI 8;
images/rpmbdb.py), one header blob per value. The NDB format (`Packages.db`, SUSE) is not
read: an image that has only that gets a warning naming the format, never an empty list
passed off as "no packages".

A header blob (rpm's headerImport on an immutable region, without the 8-byte magic of
a package file) is two big-endian counts, `il` index entries and `dl` data bytes, then
`il` entries of {tag, type, offset, count} and the data store they point into."""

from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass
from typing import Any

from kubeproof.images.rpmbdb import (
    BerkeleyError,
    berkeley_hash_values,
    berkeley_order,
    is_berkeley_btree,
)

DATABASE_DIRECTORIES = ("var/lib/rpm", "usr/lib/sysimage/rpm")
# The databases read, in the order tried: SQLite first (an image upgraded from BerkeleyDB
# may keep the old file beside the new one).
DATABASE_PATHS = tuple(
    f"{directory}/{name}"
    for name in ("rpmdb.sqlite", "Packages")
    for directory in DATABASE_DIRECTORIES
)
# Formats recognised (to say they are not read) by the file rpm names its database.
UNSUPPORTED_DATABASES = {"Packages.db": "NDB"}

TAG_NAME, TAG_VERSION, TAG_RELEASE, TAG_EPOCH = 1000, 1001, 1002, 1003
TAG_LICENSE, TAG_ARCH, TAG_SOURCERPM = 1014, 1022, 1044
TAG_DIRINDEXES, TAG_BASENAMES, TAG_DIRNAMES = 1116, 1117, 1118
_WANTED_TAGS = {
    TAG_NAME,
    TAG_VERSION,
    TAG_RELEASE,
    TAG_EPOCH,
    TAG_LICENSE,
    TAG_ARCH,
    TAG_SOURCERPM,
    TAG_DIRINDEXES,
    TAG_BASENAMES,
    TAG_DIRNAMES,
}
_INT32, _STRING, _STRING_ARRAY, _I18NSTRING = 4, 6, 8, 9
# rpm's own header limits (hdrblobVerifyInfo): more is a corrupt or hostile header.
MAX_INDEX_ENTRIES = 0xFFFF
MAX_DATA_BYTES = 256 << 20
MAX_PACKAGES = 100_000
_SQLITE_STEPS = 50_000_000  # progress-handler budget: a hostile schema cannot loop forever
_SQLITE_WAL = 2
_SQLITE_MAGIC = b"SQLite format 3\0"


class RpmError(ValueError):
    """An rpm database or header that cannot be read; the message says why."""


@dataclass(frozen=True)
class RpmHeader:
    name: str
    epoch: int | None
    version: str
    release: str
    arch: str | None
    source_rpm: str | None  # openssl-3.0.7-27.el9.src.rpm
    license: str | None
    files: tuple[str, ...]  # root-relative paths the package owns

    @property
    def evr(self) -> str:
        """`[EPOCH:]VERSION-RELEASE`, as rpm and the distributions' advisories write it."""
        prefix = f"{self.epoch}:" if self.epoch is not None else ""
        return f"{prefix}{self.version}-{self.release}"

    @property
    def source(self) -> tuple[str, str] | None:
        """(name, version-release) of the source package, from its file name."""
        text = self.source_rpm or ""
        for suffix in (".src.rpm", ".nosrc.rpm"):
            if text.endswith(suffix):
                parts = text[: -len(suffix)].rsplit("-", 2)
                if len(parts) == 3 and all(parts):
                    return parts[0], f"{parts[1]}-{parts[2]}"
        return None


def _string_at(data: bytes, offset: int) -> tuple[str, int]:
    end = data.find(b"\0", offset)
    if end < 0:
        raise RpmError(f"unterminated string at data offset {offset}")
    return data[offset:end].decode("utf-8", "replace"), end + 1


def _value(data: bytes, kind: int, offset: int, count: int) -> Any:
    if offset < 0 or offset >= len(data) or count < 1 or count > len(data):
        raise RpmError(f"entry outside the data store (offset {offset}, count {count})")
    if kind == _STRING:
        return _string_at(data, offset)[0]
    if kind in (_STRING_ARRAY, _I18NSTRING):
        strings = []
        for _ in range(count):
            text, offset = _string_at(data, offset)
            strings.append(text)
        return strings
    if kind == _INT32:
        if offset + 4 * count > len(data):
            raise RpmError(f"INT32 array past the data store (offset {offset}, count {count})")
        return list(struct.unpack_from(f">{count}i", data, offset))
    return None  # a type kubeproof does not need


def parse_header(blob: bytes) -> dict[int, Any]:
    """The tags kubeproof reads, from one header blob; RpmError when it is malformed."""
    if len(blob) < 8:
        raise RpmError(f"header of {len(blob)} bytes, shorter than its counts")
    entries, data_length = struct.unpack_from(">II", blob, 0)
    if entries < 1 or entries > MAX_INDEX_ENTRIES or data_length > MAX_DATA_BYTES:
        raise RpmError(f"header counts out of range ({entries} entries, {data_length} bytes)")
    data_start = 8 + 16 * entries
    if data_start + data_length > len(blob):
        raise RpmError(
            f"header claims {entries} entries and {data_length} data bytes, "
            f"more than its {len(blob)} bytes"
        )
    data = blob[data_start : data_start + data_length]
    values: dict[int, Any] = {}
    for number in range(entries):
        tag, kind, offset, count = struct.unpack_from(">IIiI", blob, 8 + 16 * number)
        if tag in _WANTED_TAGS and tag not in values:
            values[tag] = _value(data, kind, offset, count)
    return values


def _text(values: dict[int, Any], tag: int) -> str | None:
    value = values.get(tag)
    if isinstance(value, list):
        value = value[0] if value and isinstance(value[0], str) else None
    return value if isinstance(value, str) and value else None


def _files(values: dict[int, Any]) -> tuple[str, ...]:
    """BASENAMES[i] joined to DIRNAMES[DIRINDEXES[i]], root-relative."""
    basenames, dirnames = values.get(TAG_BASENAMES), values.get(TAG_DIRNAMES)
    indexes = values.get(TAG_DIRINDEXES)
    if not (isinstance(basenames, list) and isinstance(dirnames, list)):
        return ()
    if not isinstance(indexes, list) or len(indexes) != len(basenames):
        raise RpmError("file list with mismatched basenames and directory indexes")
    paths = []
    for basename, index in zip(basenames, indexes, strict=True):
        if not 0 <= index < len(dirnames):
            raise RpmError(f"file directory index {index} out of range")
        paths.append((str(dirnames[index]) + str(basename)).lstrip("/"))
    return tuple(paths)


def header_package(blob: bytes) -> RpmHeader | None:
    """The package a header describes; None for rpm's pseudo-packages (imported signing
    keys, `gpg-pubkey`). RpmError when the header is malformed or lacks a name/version."""
    values = parse_header(blob)
    name, version = _text(values, TAG_NAME), _text(values, TAG_VERSION)
    release = _text(values, TAG_RELEASE)
    if not name or not version or not release:
        raise RpmError("header without name, version or release")
    if name == "gpg-pubkey":
        return None
    epochs = values.get(TAG_EPOCH)
    epoch = epochs[0] if isinstance(epochs, list) and epochs and epochs[0] >= 0 else None
    return RpmHeader(
        name,
        epoch,
        version,
        release,
        _text(values, TAG_ARCH),
        _text(values, TAG_SOURCERPM),
        _text(values, TAG_LICENSE),
        _files(values),
    )


def _open_sqlite(data: bytes) -> sqlite3.Connection:
    """The database in memory (nothing is written to disk). The header of a database in WAL
    mode is set to rollback-journal mode, which an in-memory database needs; a WAL file
    beside it is not read (rpm checkpoints and removes it when it closes the database)."""
    image = bytearray(data)
    if len(image) >= 100 and image[18] == image[19] == _SQLITE_WAL:
        image[18] = image[19] = 1
    connection = sqlite3.connect(":memory:")
    steps = 0

    def budget() -> int:
        nonlocal steps
        steps += 1
        return 1 if steps > _SQLITE_STEPS // 1000 else 0

    connection.set_progress_handler(budget, 1000)
    try:
        connection.deserialize(bytes(image))
    except BaseException:
        connection.close()
        raise
    return connection


def read_sqlite_rpmdb(data: bytes, where: str) -> tuple[list[RpmHeader], list[str]]:
    """The packages of an rpmdb.sqlite and the problems met: a header that cannot be
    decoded is named and skipped; a database that cannot be opened is an RpmError."""
    if not data.startswith(_SQLITE_MAGIC) or len(data) < 512:
        raise RpmError(f"{where}: not an SQLite database")
    try:
        connection = _open_sqlite(data)
    except (sqlite3.Error, OverflowError, MemoryError) as error:
        raise RpmError(f"{where}: not an SQLite database ({error})") from None
    try:
        kind = connection.execute(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'"
        ).fetchone()
        if kind is None or kind[0] != "table":
            raise RpmError(f"{where}: no Packages table: not an rpm database")
        rows = connection.execute(
            "SELECT hnum, blob FROM Packages ORDER BY hnum LIMIT ?", (MAX_PACKAGES + 1,)
        ).fetchall()
    except sqlite3.Error as error:
        raise RpmError(f"{where}: unreadable rpm database ({error})") from None
    finally:
        connection.close()
    if len(rows) > MAX_PACKAGES:
        raise RpmError(f"{where}: more than {MAX_PACKAGES} packages")
    return _headers(rows, where, [])


def _headers(
    rows: list[tuple[int, Any]], where: str, problems: list[str]
) -> tuple[list[RpmHeader], list[str]]:
    packages = []
    for number, blob in rows:
        if not isinstance(blob, bytes):
            problems.append(f"{where}: package #{number}: header is not a blob")
            continue
        try:
            package = header_package(blob)
        except RpmError as error:
            problems.append(f"{where}: package #{number}: {error}")
            continue
        if package is not None:
            packages.append(package)
    return packages, problems


def read_berkeley_rpmdb(data: bytes, where: str) -> tuple[list[RpmHeader], list[str]]:
    """The packages of a BerkeleyDB `Packages` file. Besides the headers it holds one
    4-byte value (the last instance number rpm handed out), skipped."""
    try:
        values, problems = berkeley_hash_values(data, where)
    except BerkeleyError as error:
        raise RpmError(str(error)) from None
    headers = [value for value in values if len(value) > 8]
    if len(headers) > MAX_PACKAGES:
        raise RpmError(f"{where}: more than {MAX_PACKAGES} packages")
    return _headers(list(enumerate(headers, 1)), where, problems)


def read_rpmdb(data: bytes, where: str) -> tuple[list[RpmHeader], list[str]]:
    """The packages of an rpm database in a format read here (by content, not name)."""
    if data.startswith(_SQLITE_MAGIC):
        return read_sqlite_rpmdb(data, where)
    if berkeley_order(data) is not None:
        return read_berkeley_rpmdb(data, where)
    if is_berkeley_btree(data):
        raise RpmError(f"{where}: rpm database format BerkeleyDB btree not supported")
    raise RpmError(f"{where}: not an rpm database in a format kubeproof reads")
