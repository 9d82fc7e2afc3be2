"""Reading audit log files: whole files (plain or gzip, as rotated by the API server) and
following the live one with `tail -F` semantics (rotation by rename, truncation).

Lines are handed on as bytes with their number; a line longer than the cap is never held
in memory, only its length (OversizedLine).
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from kubeproof.audit.events import (
    DEFAULT_MAX_LINE_BYTES,
    AuditEvent,
    MalformedEvent,
    OversizedLine,
    ParseStats,
    decode_document,
    events_from_lines,
    parse_event,
)
from kubeproof.bounded import NotRegularFile, open_regular

GZIP_MAGIC = b"\x1f\x8b"
_DRAIN_CHUNK = 1 << 20
_READ_CHUNK = 1 << 20
# One poll reads at most this much, so that a burst of writes does not starve the output.
_MAX_READ_PER_POLL = 16 << 20

NumberedLine = tuple[int, bytes | OversizedLine]


class AuditInputError(Exception):
    """An audit log that cannot be read at all; the message names it."""


def open_log(path: Path) -> BinaryIO:
    """A binary stream of the file's text, decompressed when it is gzip (by content, not
    by name: rotated files are sometimes compressed under their plain name)."""
    try:
        handle = path.open("rb")
    except IsADirectoryError:
        raise AuditInputError(f"{path}: is a directory, not an audit log file") from None
    except OSError as error:
        raise AuditInputError(f"{path}: cannot be read ({error.strerror})") from None
    if handle.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=handle, mode="rb")  # type: ignore[return-value]
    return handle


def read_lines(
    stream: BinaryIO,
    source: str,
    stats: ParseStats,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> Iterator[NumberedLine]:
    """The stream's lines, numbered from 1. Corrupt or cut compressed data ends the file
    with a problem recorded, not with an exception."""
    number = 0
    try:
        while True:
            line = stream.readline(max_line_bytes + 1)
            if not line:
                return
            number += 1
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                yield number, OversizedLine(len(line) + _drain_line(stream))
                continue
            yield number, line
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
        stats.problem(source, number + 1, _read_failure(error))


def _read_failure(error: Exception) -> str:
    if isinstance(error, EOFError | gzip.BadGzipFile | zlib.error):
        return f"compressed data is cut short or corrupt ({error}); the rest is not read"
    return f"reading stopped ({error}); the rest is not read"


def _drain_line(stream: BinaryIO) -> int:
    """Skip the rest of an over-long line; how many bytes were skipped."""
    skipped = 0
    while True:
        chunk = stream.readline(_DRAIN_CHUNK)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


# A pretty-printed document (a saved webhook EventList) is read whole, up to this size.
MAX_DOCUMENT_BYTES = 256 << 20


def events_in_file(
    path: Path, stats: ParseStats, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[AuditEvent]:
    """Every event in an audit log file (JSON lines, plain or gzip), or in a file holding
    one pretty-printed Event or EventList."""
    source = str(path)
    with open_log(path) as stream:
        try:
            text = stream.readline(max_line_bytes + 1)
            first: bytes | OversizedLine = text
            if len(text) > max_line_bytes and not text.endswith(b"\n"):
                first = OversizedLine(len(text) + _drain_line(stream))
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
            stats.problem(source, 1, _read_failure(error))
            return
        if isinstance(first, bytes) and first.strip() in (b"{", b"["):
            yield from _whole_document(first, stream, source, stats)
            return
        if not first:
            return
        rest = read_lines(stream, source, stats, max_line_bytes)
        lines = _numbered_after((1, first), rest)
        yield from events_from_lines(lines, source, stats, max_line_bytes=max_line_bytes)


def _numbered_after(first: NumberedLine, rest: Iterator[NumberedLine]) -> Iterator[NumberedLine]:
    yield first
    for number, line in rest:
        yield number + 1, line


def _whole_document(
    first: bytes, stream: BinaryIO, source: str, stats: ParseStats
) -> Iterator[AuditEvent]:
    try:
        data = first + stream.read(MAX_DOCUMENT_BYTES)
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
        stats.problem(source, 1, _read_failure(error))
        return
    stats.lines += data.count(b"\n") + 1
    if len(data) > MAX_DOCUMENT_BYTES:
        stats.problem(source, 1, f"document exceeds {MAX_DOCUMENT_BYTES} bytes")
        return
    try:
        documents = decode_document(data)
    except MalformedEvent as error:
        stats.problem(source, 1, str(error))
        return
    for index, document in enumerate(documents):
        try:
            yield parse_event(document, source, 1)
        except MalformedEvent as error:
            stats.problem(source, 1, f"item {index}: {error}")


def oldest_first(paths: Sequence[Path]) -> list[Path]:
    """Rotated files before the live one: by modification time, then name (the API
    server's backups carry their rotation time in the name)."""

    def age(path: Path) -> tuple[float, str]:
        try:
            return path.stat().st_mtime, path.name
        except OSError:
            return 0.0, path.name  # reported when it is opened

    return sorted(paths, key=age)


class LogFollower:
    """Follows one log file across rotation (a new file under the name) and truncation
    (copytruncate), as `tail -F` does. `poll()` returns the complete lines written since
    the last poll; it never blocks."""

    def __init__(
        self,
        path: Path,
        *,
        from_start: bool = False,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        self.path = path
        self.rotations = 0
        self.truncations = 0
        self._from_start = from_start
        self._max_line_bytes = max_line_bytes
        self._handle: BinaryIO | None = None
        self._identity: tuple[int, int] | None = None
        self._position = 0
        self._pending = b""  # a line whose end has not been written yet
        self._skipping = 0  # bytes of an over-long line being skipped; 0 when not
        self._line = 0
        self._first_attempt = True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def poll(self) -> list[NumberedLine]:
        if self._handle is None:
            # Only a file that was there when following began is read from its end.
            self._open(at_end=not self._from_start and self._first_attempt)
            self._first_attempt = False
            if self._handle is None:
                return []
            return self._read_available()
        status = _stat(self.path)
        lines: list[NumberedLine] = []
        if status is not None and (status.st_dev, status.st_ino) != self._identity:
            # Rotated: what was written to the old file before the switch comes first.
            lines.extend(self._read_available())
            lines.extend(self._flush_pending())
            self.close()
            self.rotations += 1
            self._open(at_end=False)
        elif status is not None and status.st_size < self._position:
            self.truncations += 1
            self._restart()
        lines.extend(self._read_available())
        return lines

    def _open(self, *, at_end: bool) -> None:
        try:
            # A pipe would wait for a writer, deaf to SIGTERM; rotation and truncation are
            # a file's anyway.
            descriptor = open_regular(self.path)
        except FileNotFoundError:
            return  # not there yet (or between rotation and re-creation): try again later
        except NotRegularFile as error:
            raise AuditInputError(f"{self.path}: {error}; follow reads a log file") from None
        except OSError as error:
            raise AuditInputError(f"{self.path}: cannot be read ({error.strerror})") from None
        handle = os.fdopen(descriptor, "rb", buffering=0)
        status = os.fstat(descriptor)
        self._handle = handle
        self._identity = (status.st_dev, status.st_ino)
        self._pending, self._skipping, self._line, self._position = b"", 0, 0, 0
        if at_end:
            # Number lines as they are in the file, although the old ones are not read.
            self._line = self._count_lines()
            self._position = handle.tell()

    def _count_lines(self) -> int:
        assert self._handle is not None
        count = 0
        while chunk := self._handle.read(_READ_CHUNK):
            count += chunk.count(b"\n")
        return count

    def _restart(self) -> None:
        assert self._handle is not None
        self._handle.seek(0)
        self._pending, self._skipping, self._line, self._position = b"", 0, 0, 0

    def _read_available(self) -> list[NumberedLine]:
        if self._handle is None:
            return []
        lines: list[NumberedLine] = []
        budget = _MAX_READ_PER_POLL
        while budget > 0:
            chunk = self._handle.read(min(_READ_CHUNK, budget))
            if not chunk:
                break
            budget -= len(chunk)
            self._position += len(chunk)
            self._split(chunk, lines)
        return lines

    def _split(self, chunk: bytes, lines: list[NumberedLine]) -> None:
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._hold(chunk[start:], lines)
                return
            piece = chunk[start : end + 1]
            start = end + 1
            self._line += 1
            if self._skipping:
                lines.append((self._line, OversizedLine(self._skipping + len(piece))))
                self._skipping = 0
            elif len(self._pending) + len(piece) > self._max_line_bytes:
                size = len(self._pending) + len(piece)
                lines.append((self._line, OversizedLine(size)))
                self._pending = b""
            else:
                lines.append((self._line, self._pending + piece))
                self._pending = b""

    def _hold(self, rest: bytes, lines: list[NumberedLine]) -> None:
        if self._skipping:
            self._skipping += len(rest)
        elif len(self._pending) + len(rest) > self._max_line_bytes:
            self._skipping = len(self._pending) + len(rest)
            self._pending = b""
        else:
            self._pending += rest

    def _flush_pending(self) -> list[NumberedLine]:
        """The last line of a rotated file, if it lacks its newline."""
        if self._skipping:
            self._line += 1
            line: NumberedLine = (self._line, OversizedLine(self._skipping))
        elif self._pending:
            self._line += 1
            line = (self._line, self._pending)
        else:
            return []
        self._pending, self._skipping = b"", 0
        return [line]


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None
