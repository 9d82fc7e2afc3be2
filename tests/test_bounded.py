"""Small files written by somebody else: read whole, or refused with the file named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubeproof.bounded import UnreadableFile, read_bounded


def test_a_file_within_the_limit_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(b"x" * 1024)
    assert read_bounded(path, 1024, "signing key") == b"x" * 1024


@pytest.mark.parametrize(
    ("limit", "shown"), [(64 * 1024, "64 KiB"), (16 << 20, "16 MiB"), (1000, "1000 bytes")]
)
def test_a_larger_file_is_refused_with_the_limit(tmp_path: Path, limit: int, shown: str) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * (limit + 1))
    with pytest.raises(UnreadableFile, match=f"^head file big is larger than {shown}$"):
        read_bounded(path, limit, "head file big")


def test_a_device_or_pipe_is_refused_without_waiting(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)  # no writer: opening it to read would wait for ever
    for path in ("/dev/zero", pipe):
        with pytest.raises(UnreadableFile, match=f"^cannot read {path}: not a regular file$"):
            read_bounded(path, 1024, str(path))


def test_a_symlink_to_a_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "..data").write_bytes(b"token")  # as Kubernetes mounts a Secret
    (tmp_path / "token").symlink_to(tmp_path / "..data")
    assert read_bounded(tmp_path / "token", 64, "token") == b"token"


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_an_unreadable_path_says_why(tmp_path: Path, kind: str) -> None:
    path = tmp_path / kind
    if kind == "directory":
        path.mkdir()
    with pytest.raises(UnreadableFile) as raised:
        read_bounded(path, 10, f"VEX file {path}")
    reason = "No such file or directory" if kind == "missing" else "Is a directory"
    assert str(raised.value) == f"cannot read VEX file {path}: {reason}"
