"""Equal parts of cached objects held once.

Most of a cluster repeats itself: a Pod's spec repeats its ReplicaSet's template, which
repeats its Deployment's; every container of an application carries the same probes,
resources and securityContext; and the same strings (keys, images, policies) come back in
every object. Parsed apart, each copy costs its own dicts, lists and strings: the 10,000
objects of the agent benchmark take about 155 MB as parsed, and about 65 MB shared (this
table included). `SharedValues.share` returns a value equal to its argument, built from
parts already held whenever equal ones exist.

Sharing is safe only because nothing edits a cached object: a change replaces the object
(ObjectCache), and checks only read. An entry lives as long as an object holds it: the
table is swept of entries that only it holds whenever it has doubled since the last sweep.
"""

from __future__ import annotations

import sys
import threading
from sys import intern
from typing import Any

_DICT, _LIST = "{", "["  # the first part of a dict's and of a list's key
_FIRST_SWEEP = 4096


class SharedValues:
    """A hash-consing table of JSON values (dicts, lists, strings and scalars)."""

    def __init__(self) -> None:
        # A dict or list by what it holds: its keys, its strings, and for every nested
        # dict or list the id of the shared instance (alive while the entry holding it is).
        self._known: dict[tuple[Any, ...], Any] = {}
        self._sweep_at = _FIRST_SWEEP
        self._lock = threading.Lock()  # the watchers parse on threads of their own

    def __len__(self) -> int:
        return len(self._known)

    def share(self, value: Any) -> Any:
        """`value`, or an equal value made of shared parts (never edit the result)."""
        with self._lock:
            shared = self._share(value)
            if len(self._known) >= self._sweep_at:
                self._sweep()
        return shared

    def _share(self, value: Any) -> Any:
        kind = type(value)
        if kind is dict:
            parts: list[Any] = [_DICT]
            items = {}
            for key, item in value.items():
                item, part = self._item(item)
                key = intern(key) if type(key) is str else key
                items[key] = item
                parts += (key, part)
            return self._known.setdefault(tuple(parts), items)
        if kind is list:
            parts = [_LIST]
            shared = []
            for item in value:
                item, part = self._item(item)
                shared.append(item)
                parts.append(part)
            return self._known.setdefault(tuple(parts), shared)
        return intern(value) if kind is str else value

    def _item(self, item: Any) -> tuple[Any, Any]:
        """A nested value, shared, and what stands for it in its parent's key: a string
        itself; a dict or list its id (a plain int: alive while the parent's entry holds
        the value); any other scalar with its type (True == 1 == 1.0 otherwise)."""
        kind = type(item)
        if kind is str:
            item = intern(item)
            return item, item
        if kind is dict or kind is list:
            item = self._share(item)
            return item, id(item)
        return item, (kind, item)

    def _sweep(self) -> None:
        """Forget what no object holds any more. Newest first: a dict or list is always
        added after its parts, so forgetting it first lets its parts go in the same sweep."""
        known = self._known
        for key in reversed(list(known)):
            if sys.getrefcount(known[key]) <= 2:  # the table's reference and the argument
                del known[key]
        self._sweep_at = max(_FIRST_SWEEP, 2 * len(known))
