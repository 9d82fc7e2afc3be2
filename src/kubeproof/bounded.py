"""Reading a small file that somebody else wrote, without trusting its size."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class UnreadableFile(Exception):
    """The file could not be read, or is larger than its kind ever is. The message names
    the file as the caller described it."""


def read_bounded(path: str | Path, limit: int, what: str) -> bytes:
    """The file's bytes. Reads at most `limit + 1` bytes whatever the file's size, so that
    a huge file is refused without being loaded. Only a regular file (or a symlink to
    one, as Kubernetes mounts Secrets) is read: a pipe would wait for a writer, holding
    up the process and its shutdown, and a device may never end."""
    try:
        # Opening without blocking: on a pipe, open() itself would wait for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(descriptor, "rb") as handle:
            mode = os.fstat(descriptor).st_mode
            if not stat.S_ISREG(mode):
                reason = "Is a directory" if stat.S_ISDIR(mode) else "not a regular file"
                raise UnreadableFile(f"cannot read {what}: {reason}")
            data = handle.read(limit + 1)
    except OSError as error:
        raise UnreadableFile(f"cannot read {what}: {error.strerror or error}") from None
    if len(data) > limit:
        raise UnreadableFile(f"{what} is larger than {byte_size(limit)}")
    return data


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
