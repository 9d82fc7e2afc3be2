"""Keeping the agent's resident memory close to what it holds, where the C library is glibc
(elsewhere these do nothing).

Python hands allocations over 512 bytes (large dicts and lists, strings, HTTP bodies) to
malloc, and glibc gives every thread that allocates an arena of its own, whose free
memory only that arena reuses: the agent's dozens of watcher threads and its scan thread
would each keep the high-water mark of what they once parsed or judged. Two arenas are
shared by all threads instead; and after a whole-cache scan, what it freed is returned
to the system (malloc_trim), so that the next peak starts from what is actually held.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


@functools.cache
def _glibc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(libc, "mallopt") or not hasattr(libc, "malloc_trim"):
        return None  # not glibc (musl has neither)
    return libc


def limit_arenas() -> bool:
    """At most ARENAS malloc arenas for the whole process; call before starting threads.
    True when the C library took it."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_ARENA_MAX, ARENAS))


def release_free_memory() -> bool:
    """Return the C heap's free pages to the system; True when some were."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))
