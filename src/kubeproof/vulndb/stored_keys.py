"""Version sort keys that can be stored: each advisory's range events are turned into
comparable keys once, when `vulndb update` loads them, so that matching compares strings
instead of parsing every event version again.

The keys are those of kubeproof.vulndb.versions (PEP 440 versions get one built from
packaging's public fields that orders exactly as `packaging.version.Version` does), each
written as one order-preserving string (`ordered_text`). An ecosystem whose ordering has
no such key (apk) is not stored: it is compiled when matching, as before. Each stored
ecosystem carries a fingerprint of its key function, and keys stored under another
fingerprint (a kubeproof whose version rules changed) are not trusted: matching then
compiles from the versions' text, which the database keeps beside the keys."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from packaging.version import InvalidVersion as _PackagingInvalid
from packaging.version import Version

from kubeproof.inventory.objects import as_dict, as_list, as_str
from kubeproof.vulndb.osv import CompiledEntry, CompiledRange
from kubeproof.vulndb.versions import InvalidVersion, dpkg_key, go_key, semver_key

StoredKey = Callable[[str], Any]


# Order-preserving text: a key (nested tuples of non-negative ints and strings) becomes one
# string that compares, as a string, exactly as the key compares as a tuple. Each element
# is self-delimiting, and the markers order below what they may be compared with: a
# tuple's end (a shorter tuple sorts first) below any element's tag, a string's end below
# any of its (shifted) characters, an int's length in its tag (a longer int is larger).
_TUPLE_END, _STRING_TAG, _STRING_END, _SHIFT, _INT_TAG = " ", "#", "!", 0x22, 0x40


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, tuple | list):
        out.append("(")
        for item in value:
            _encode(item, out)
        out.append(_TUPLE_END)
    elif isinstance(value, str):
        out.append(_STRING_TAG)
        out.append("".join(chr(ord(c) + _SHIFT) for c in value))
        out.append(_STRING_END)
    elif isinstance(value, int) and value >= 0:
        digits = str(value)
        out.append(chr(_INT_TAG + len(digits)) + digits)
    else:
        raise InvalidVersion(f"cannot store a version key part {value!r}")


def ordered_text(key: Any) -> str:
    """The key as one order-preserving string (see above)."""
    out: list[str] = []
    _encode(key, out)
    return "".join(out)


def pep440_key(text: str) -> list[Any]:
    """packaging's comparison key (`Version._key`) from its public fields, without its
    Infinity objects: each optional part is a tagged list so that "absent" sorts where
    packaging puts it (a dev release before its pre-releases, a post release after, a
    local version after the public one)."""
    try:
        version = Version(text)
    except _PackagingInvalid as error:
        raise InvalidVersion(str(error)) from None
    release = list(version.release)
    while release and release[-1] == 0:
        release.pop()
    if version.pre is not None:
        pre: list[Any] = [1, version.pre[0], version.pre[1]]
    elif version.post is None and version.dev is not None:
        pre = [0]  # 1.0.dev1 sorts before 1.0a1
    else:
        pre = [2]
    post = [0] if version.post is None else [1, version.post]
    dev = [1] if version.dev is None else [0, version.dev]
    local: list[Any] = [0]
    if version.local is not None:
        parts = version.local.split(".")
        local = [1, [[1, int(p), ""] if p.isdigit() else [0, 0, p] for p in parts]]
    return [version.epoch, release, pre, post, dev, local]


def _text_key(function: Callable[[str], Any]) -> StoredKey:
    return lambda text: ordered_text(function(text))


# Ecosystems whose keys are stored (others, Alpine among them, are compiled when matching).
_STORED: dict[str, StoredKey] = {
    "Debian": _text_key(dpkg_key),
    "Ubuntu": _text_key(dpkg_key),
    "PyPI": _text_key(pep440_key),
    "Go": _text_key(go_key),
    "npm": _text_key(semver_key),
    "crates.io": _text_key(semver_key),
}
# Versions of every scheme: their keys fingerprint the key function of an ecosystem.
_PROBES = (
    "0",
    "1",
    "1.0",
    "1.0.0",
    "v1.2.3",
    "1:2.3-4",
    "1.0~rc1-1",
    "2.36-9+deb12u3",
    "1.2.3-rc.1",
    "1.2.3-alpha.10+build.5",
    "0.0.0-20210101000000-abcdef123456",
    "1.0a1",
    "1.0.post2.dev3",
    "1!2.0+local.7",
    "01.0.0",
    "bad version",
)


def stored_key(ecosystem: str) -> StoredKey | None:
    """The storable key function of an OSV ecosystem (`Debian:12` -> Debian's), or None."""
    return _STORED.get(ecosystem.split(":", 1)[0])


def fingerprint(ecosystem: str) -> str | None:
    """A short digest of what the ecosystem's key function gives for a fixed set of
    versions: it changes when the version rules do."""
    key_of = stored_key(ecosystem)
    if key_of is None:
        return None
    answers = []
    for probe in _PROBES:
        try:
            answers.append(key_of(probe))
        except InvalidVersion:
            answers.append("invalid")
    text = json.dumps(answers, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- compiled ranges, as stored ----------------------------------------------------------


def _events(version_range: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (kind, value)
        for event in as_list(version_range.get("events"))
        for kind, value in as_dict(event).items()
        if isinstance(value, str)
    ]


def compile_range_stored(version_range: dict[str, Any], key_of: StoredKey) -> list[Any]:
    """[events, limits, needs_version, error]: what CompiledRange holds, as JSON. Events
    are ordered as osv.compile_range orders them (any event at "0" first, in its original
    order, then by version)."""
    raw = _events(version_range)
    try:
        events: list[list[Any]] = [
            [kind, None if kind == "introduced" and value == "0" else key_of(value), value]
            for kind, value in raw
            if kind != "limit"
        ]
        limits = [key_of(value) for kind, value in raw if kind == "limit" and value != "*"]
    except InvalidVersion as error:
        return [[], [], True, str(error)]
    zeros = [event for event in events if event[2] == "0"]
    others = sorted((event for event in events if event[2] != "0"), key=lambda event: event[1])
    ordered = zeros + others
    needs_version = bool(limits) or any(event[1] is not None for event in ordered)
    return [ordered, limits, needs_version, None]


def compile_entry_stored(entry: dict[str, Any], key_of: StoredKey) -> list[Any]:
    ranges = [
        compile_range_stored(version_range, key_of)
        for version_range in map(as_dict, as_list(entry.get("ranges")))
        if as_str(version_range.get("type")) in ("ECOSYSTEM", "SEMVER")
    ]
    versions = [v for v in as_list(entry.get("versions")) if isinstance(v, str)]
    return [ranges, versions]


def ceiling(entries: list[list[Any]]) -> str | None:
    """The highest event key of an advisory's stored entries when every range is closed
    there (its last event in version order a fix or a last affected version): a version
    keyed above it is not affected by any range, and no range is undecidable. None when
    a range stays open or has an event the ecosystem cannot order. Versions named in a
    `versions` list are matched by their text whatever the ceiling."""
    highest = ""
    for ranges, _versions in entries:
        for events, _limits, needs_version, error in ranges:
            if error is not None or not needs_version or not events:
                return None
            if events[-1][0] not in ("fixed", "last_affected"):
                return None
            highest = max([highest, *(key for _, key, _ in events if key is not None)])
    return highest


T = TypeVar("T")


def _built(cls: type[T], **fields: Any) -> T:
    """An instance of a frozen dataclass from fields already in shape, without its
    generated __init__ (one object.__setattr__ per field): matching builds one per stored
    range, and that __init__ was most of the cost."""
    instance = object.__new__(cls)
    instance.__dict__.update(fields)
    return instance


def entry_from_stored(stored: list[Any]) -> CompiledEntry:
    """The CompiledEntry of a stored entry: no version is parsed, and the decoded lists
    serve as they are (an event [kind, key, text] unpacks like the tuple, and `versions`
    is only searched)."""
    ranges, versions = stored
    return _built(
        CompiledEntry,
        ranges=tuple(
            _built(CompiledRange, events=events, limits=limits, needs_version=needs, error=error)
            for events, limits, needs, error in ranges
        ),
        versions=versions,
    )
