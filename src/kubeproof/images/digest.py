"""Content digests (`sha256:<hex>`) and a reader that verifies one while streaming."""

from __future__ import annotations

import hashlib
import io
import re
from typing import IO

from kubeproof.images.errors import ImageError

_DIGEST = re.compile(r"^(sha256|sha512):([a-f0-9]+)$")
_HEX_LENGTH = {"sha256": 64, "sha512": 128}


def parse_digest(text: str, where: str) -> tuple[str, str]:
    """(algorithm, hex) of a digest; an ImageError naming `where` when it is malformed."""
    match = _DIGEST.match(text)
    if match is None or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
        raise ImageError(f"{where}: malformed digest {text[:80]!r}")
    return match.group(1), match.group(2)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def verify_bytes(data: bytes, expected: str, where: str) -> None:
    algorithm, hex_value = parse_digest(expected, where)
    actual = hashlib.new(algorithm, data).hexdigest()
    if actual != hex_value:
        raise ImageError(
            f"{where}: digest mismatch: expected {expected}, content has {algorithm}:{actual}"
        )


class VerifyingReader(io.RawIOBase):
    """Passes bytes through while hashing them; `verify()` (after EOF) checks the digest and,
    when known, the size. Reading past `expected_size` stops early: an oversized blob is a
    mismatch, not a reason to read forever."""

    def __init__(
        self, stream: IO[bytes], expected: str, where: str, expected_size: int | None = None
    ) -> None:
        super().__init__()
        algorithm, self._expected_hex = parse_digest(expected, where)
        self._hash = hashlib.new(algorithm)
        self._stream = stream
        self._expected = expected
        self._where = where
        self._expected_size = expected_size
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = len(buffer)
        if self._expected_size is not None:
            # Read one byte more than announced so an oversized blob is noticed.
            want = min(want, self._expected_size + 1 - self.size)
            if want <= 0:
                return 0
        chunk = self._stream.read(want)
        if not chunk:
            return 0
        self._hash.update(chunk)
        self.size += len(chunk)
        memoryview(buffer)[: len(chunk)] = chunk
        return len(chunk)

    def drain(self) -> None:
        while self.read(1 << 20):
            pass

    def verify(self) -> None:
        self.drain()
        if self._expected_size is not None and self.size != self._expected_size:
            raise ImageError(
                f"{self._where}: size mismatch: expected {self._expected_size} "
                f"bytes, got {'more' if self.size > self._expected_size else self.size}"
            )
        if self._hash.hexdigest() != self._expected_hex:
            raise ImageError(
                f"{self._where}: digest mismatch: expected {self._expected}, "
                f"content has {self._hash.name}:{self._hash.hexdigest()}"
            )
