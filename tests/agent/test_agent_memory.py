"""The agent's malloc settings (agent/memory.py) take where the C library is glibc."""

from __future__ import annotations

import platform

import pytest

from kubeproof.agent import memory

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="glibc only; elsewhere these do nothing")
def test_arenas_are_limited_and_free_memory_returned() -> None:
    assert memory.limit_arenas() is True
    held = [bytes(200_000) for _ in range(200)]  # malloc'd (past pymalloc's 512 bytes)
    del held
    assert isinstance(memory.release_free_memory(), bool)
