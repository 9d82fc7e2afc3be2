"""Following a live log with tail -F semantics, and reading rotated files in order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from audit.auditlog import event, line
from kubeproof.audit.events import OversizedLine
from kubeproof.audit.source import AuditInputError, LogFollower, oldest_first


def contents(lines: list[tuple[int, bytes | OversizedLine]]) -> list[tuple[int, bytes]]:
    return [(n, text if isinstance(text, bytes) else b"<oversized>") for n, text in lines]


def test_following_starts_at_the_end_and_reads_what_is_appended(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"old 1\nold 2\n")
    follower = LogFollower(log)
    assert follower.poll() == []
    with log.open("ab") as handle:
        handle.write(b"new 3\n")
    assert contents(follower.poll()) == [(3, b"new 3\n")]  # numbered as in the file
    assert follower.poll() == []


def test_from_start_reads_everything(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"a\nb\n")
    assert contents(LogFollower(log, from_start=True).poll()) == [(1, b"a\n"), (2, b"b\n")]


def test_only_a_regular_file_is_followed(tmp_path: Path) -> None:
    pipe = tmp_path / "audit.log"
    os.mkfifo(pipe)  # opening it to read would wait for a writer, deaf to SIGTERM
    with pytest.raises(AuditInputError, match=f"{pipe}: not a regular file"):
        LogFollower(pipe).poll()


def test_a_partial_line_waits_for_its_end(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    follower = LogFollower(log)
    follower.poll()
    with log.open("ab") as handle:
        handle.write(b'{"half":')
        handle.flush()
        assert follower.poll() == []
        handle.write(b' "done"}\n')
    assert contents(follower.poll()) == [(1, b'{"half": "done"}\n')]


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"one\n")
    follower = LogFollower(log, from_start=True)
    assert contents(follower.poll()) == [(1, b"one\n")]
    with log.open("ab") as handle:
        handle.write(b"two\nlast without newline")
    os.rename(log, tmp_path / "audit-2026-03-02T10-00-00.000.log")
    assert follower.poll() == [(2, b"two\n")]  # the new file is not there yet
    log.write_bytes(b"first of new\n")
    assert contents(follower.poll()) == [(3, b"last without newline"), (1, b"first of new\n")]
    assert follower.rotations == 1


def test_truncation_starts_again_from_the_top(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"one\ntwo\n")
    follower = LogFollower(log, from_start=True)
    follower.poll()
    with log.open("r+b") as handle:  # copytruncate
        handle.truncate(0)
    with log.open("ab") as handle:
        handle.write(b"x\n")
    assert contents(follower.poll()) == [(1, b"x\n")]
    assert follower.truncations == 1


def test_a_file_that_appears_later_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    follower = LogFollower(log)
    assert follower.poll() == []
    log.write_bytes(b"hello\n")
    assert contents(follower.poll()) == [(1, b"hello\n")]


def test_over_long_lines_are_never_held_whole(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(b"")
    follower = LogFollower(log, max_line_bytes=1024)
    follower.poll()
    with log.open("ab") as handle:
        handle.write(b"y" * 3000)
        handle.flush()
        assert follower.poll() == []
        handle.write(b"y" * 3000 + b"\nok\n")
    [(number, oversized), (ok_number, ok)] = follower.poll()
    assert (number, ok_number) == (1, 2)
    assert isinstance(oversized, OversizedLine) and oversized.length == 6001
    assert ok == b"ok\n"


def test_rotated_files_are_read_oldest_first(tmp_path: Path) -> None:
    live = tmp_path / "audit.log"
    backup = tmp_path / "audit-2026-03-01T00-00-00.000.log.gz"
    live.write_bytes(line(event()))
    backup.write_bytes(b"")
    os.utime(backup, (1_700_000_000, 1_700_000_000))
    assert oldest_first([live, backup]) == [backup, live]
