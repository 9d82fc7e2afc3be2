"""Reading a small file that somebody else wrote, without trusting its size."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnreadableFile(Exception):
    """The file could not be read, or is larger than its kind ever is. The message names
    the file as the caller described it."""


class NotRegularFile(OSError):
    """A directory, a pipe or a device where a file was expected."""


def open_regular(path: str | Path) -> int:
    """A descriptor to read a regular file (or a symlink to one, as Kubernetes mounts
    Secrets) from. Anything else is refused: a pipe would wait for a writer, holding up
    the process and its shutdown, and a device may never end. Opened without blocking,
    since on a pipe open() itself would wait."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        raise NotRegularFile("Is a directory" if stat.S_ISDIR(mode) else "not a regular file")
    return descriptor


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """The file's bytes. Reads at most `limit + 1` bytes whatever the file's size, so that
    a huge file is refused without being loaded; only a regular file (`open_regular`)."""
    try:
        with os.fdopen(open_regular(path), "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise UnreadableFile(f"cannot read {what}: {error.strerror or error}") from None
    if len(data) > limit:
        raise UnreadableFile(f"{what} is larger than {byte_size(limit)}")
    return data


def read_bounded_text(path: str | Path, limit: int, what: str) -> str:
    """`read_bounded`, as UTF-8 text."""
    try:
        return read_bounded(path, limit, what).decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableFile(f"{what}: not UTF-8 text") from None


MAX_CA_BUNDLE_BYTES = 1 << 20  # a CA bundle is a few certificates


def read_ca_bundle(path: str | Path, what: str) -> bytes:
    """A PEM bundle of CA certificates, refused when it is oversized or not PEM at all."""
    pem = read_bounded(path, MAX_CA_BUNDLE_BYTES, what)
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise UnreadableFile(f"{what}: not a PEM certificate")
    return pem


def byte_size(limit: int) -> str:
    """A limit as people write it: `64 MiB`, `1 KiB`, `100 bytes`."""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if limit >= scale and limit % scale == 0:
            return f"{limit // scale} {unit}"
    return f"{limit} bytes"
