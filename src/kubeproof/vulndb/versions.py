"""Version ordering of the ecosystems kubeproof matches: dpkg (Debian, Ubuntu), apk
(Alpine), PEP 440 (PyPI), SemVer 2.0.0 (npm) and Go module versions. Each comparison
returns <0, 0 or >0, and raises InvalidVersion for a version its ecosystem cannot order."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from packaging.version import InvalidVersion as _PackagingInvalid
from packaging.version import Version as _PackagingVersion

Compare = Callable[[str, str], int]


class InvalidVersion(ValueError):
    """A version string that its ecosystem's rules cannot order."""


# -- dpkg (deb-version(7), lib/dpkg/version.c) ------------------------------------------

_DPKG_VERSION = re.compile(r"^(?:(\d+):)?([0-9][A-Za-z0-9.+~:-]*?)(?:-([A-Za-z0-9.+~]+))?$")


def _dpkg_order(character: str) -> int:
    if character == "":
        return 0
    if character.isdigit():
        return 0
    if character.isalpha():
        return ord(character)
    if character == "~":
        return -1
    return ord(character) + 256


def _dpkg_part_compare(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_difference = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _dpkg_order(a[i] if i < len(a) else "")
            bc = _dpkg_order(b[j] if j < len(b) else "")
            if ac != bc:
                return ac - bc
            i, j = i + 1, j + 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_difference:
                first_difference = ord(a[i]) - ord(b[j])
            i, j = i + 1, j + 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_difference:
            return first_difference
    return 0


def parse_dpkg_version(text: str) -> tuple[int, str, str]:
    """(epoch, upstream, revision); InvalidVersion when dpkg would reject it."""
    match = _DPKG_VERSION.match(text.strip()) if text.isascii() else None
    if match is None:
        raise InvalidVersion(f"invalid dpkg version {text[:80]!r}")
    return int(match.group(1) or 0), match.group(2), match.group(3) or ""


def compare_dpkg(a: str, b: str) -> int:
    epoch_a, upstream_a, revision_a = parse_dpkg_version(a)
    epoch_b, upstream_b, revision_b = parse_dpkg_version(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    return _dpkg_part_compare(upstream_a, upstream_b) or _dpkg_part_compare(revision_a, revision_b)


# -- apk (apk-tools src/version.c) ------------------------------------------------------

(_INVALID, _DIGIT_OR_ZERO, _DIGIT, _LETTER, _SUFFIX, _SUFFIX_NO, _REVISION_NO, _END) = range(-1, 7)
_PRE_SUFFIXES = ("alpha", "beta", "pre", "rc")
_POST_SUFFIXES = ("cvs", "svn", "git", "hg", "p")


class _ApkTokens:
    """apk-tools' tokenizer: digits, one letter, _suffix[N], -rN, with its token states."""

    def __init__(self, text: str) -> None:
        self.text, self.position, self.kind = text, 0, _DIGIT

    def _at(self, offset: int = 0) -> str:
        index = self.position + offset
        return self.text[index] if index < len(self.text) else ""

    def _next_kind(self) -> None:
        current, following = self.kind, _INVALID
        character = self._at()
        if character == "":
            following = _END
        elif current in (_DIGIT, _DIGIT_OR_ZERO) and character.islower():
            following = _LETTER
        elif current == _LETTER and character.isdigit():
            following = _DIGIT
        elif current == _SUFFIX and character.isdigit():
            following = _SUFFIX_NO
        else:
            if character == ".":
                following = _DIGIT_OR_ZERO
            elif character == "_":
                following = _SUFFIX
            elif character == "-" and self._at(1) == "r":
                following = _REVISION_NO
                self.position += 1
            self.position += 1
        if following < current and not (
            (following == _DIGIT_OR_ZERO and current == _DIGIT)
            or (following == _SUFFIX and current == _SUFFIX_NO)
            or (following == _DIGIT and current == _LETTER)
        ):
            following = _INVALID
        self.kind = following

    def value(self) -> int:
        """The next token's value (apk-tools get_token), moving to the token after it."""
        if self.position >= len(self.text):
            self.kind = _END
            return 0
        length, value, forced = 0, 0, None
        rest = self.text[self.position :]
        if self.kind == _DIGIT_OR_ZERO and rest[0] == "0":
            length = len(rest) - len(rest.lstrip("0"))
            value, forced = -length, _DIGIT
        elif self.kind in (_DIGIT_OR_ZERO, _DIGIT, _SUFFIX_NO, _REVISION_NO):
            while length < len(rest) and rest[length].isdigit():
                length += 1
            value = int(rest[:length]) if length else 0
        elif self.kind == _LETTER:
            length, value = 1, ord(rest[0])
        elif self.kind == _SUFFIX:
            for index, suffix in enumerate(_PRE_SUFFIXES):
                if rest.startswith(suffix):
                    length, value = len(suffix), index - len(_PRE_SUFFIXES)
                    break
            else:
                for index, suffix in enumerate(_POST_SUFFIXES):
                    if rest.startswith(suffix):
                        length, value = len(suffix), index
                        break
                else:
                    self.kind = _INVALID
                    return -1
        else:
            self.kind = _INVALID
            return -1
        self.position += length
        if self.position >= len(self.text):
            self.kind = _END
        elif forced is not None:
            self.kind = forced
        else:
            self._next_kind()
        return value


def compare_apk(a: str, b: str) -> int:
    """apk_version_compare: Gentoo-style {digit}{.digit}...{letter}{_suf{#}}...{-r#}.
    Like apk-tools, a version that stops being valid is compared up to that point."""
    if not (a.isascii() and b.isascii()):
        raise InvalidVersion(f"invalid apk version {(b if a.isascii() else a)[:80]!r}")
    left, right = _ApkTokens(a), _ApkTokens(b)
    left_value = right_value = 0
    while (
        left.kind == right.kind and left.kind not in (_END, _INVALID) and left_value == right_value
    ):
        left_value, right_value = left.value(), right.value()
    if left_value != right_value:
        return -1 if left_value < right_value else 1
    if left.kind == right.kind:
        return 0
    # Equal so far: the longer version is greater, unless what follows is a pre-release.
    if left.kind == _SUFFIX and _ApkTokens_peek_suffix(left) < 0:
        return -1
    if right.kind == _SUFFIX and _ApkTokens_peek_suffix(right) < 0:
        return 1
    return -1 if left.kind > right.kind else 1 if right.kind > left.kind else 0


def _ApkTokens_peek_suffix(tokens: _ApkTokens) -> int:
    copy = _ApkTokens(tokens.text)
    copy.position, copy.kind = tokens.position, tokens.kind
    return copy.value()


def valid_apk_version(text: str) -> bool:
    if not text or not text.isascii():
        return False
    tokens = _ApkTokens(text)
    while tokens.kind not in (_END, _INVALID):
        tokens.value()
    return tokens.kind == _END


# -- PyPI (PEP 440) ---------------------------------------------------------------------


def compare_pypi(a: str, b: str) -> int:
    try:
        left, right = _PackagingVersion(a), _PackagingVersion(b)
    except _PackagingInvalid as error:
        raise InvalidVersion(str(error)) from None
    return -1 if left < right else 1 if left > right else 0


def comparator(ecosystem: str) -> Compare | None:
    """The ordering of an OSV ecosystem (`Debian:12`, `Alpine:v3.19`, `PyPI`), or None."""
    base = ecosystem.split(":", 1)[0]
    return {
        "Debian": compare_dpkg,
        "Ubuntu": compare_dpkg,
        "Alpine": compare_apk,
        "PyPI": compare_pypi,
        "Go": compare_go,
        "npm": compare_semver,
    }.get(base)


# -- SemVer 2.0.0 (npm) and Go module versions -------------------------------------------

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
# A prerelease identifier as a sort key: numeric ones sort before alphanumeric ones and
# compare as numbers, alphanumeric ones compare in ASCII order (semver.org item 11).
_Identifier = tuple[int, int, str]
SemverKey = tuple[int, int, int, int, tuple[_Identifier, ...]]


def _identifier_key(identifier: str) -> _Identifier:
    return (0, int(identifier), "") if identifier.isdigit() else (1, 0, identifier)


@functools.lru_cache(maxsize=65536)
def semver_key(text: str) -> SemverKey:
    """A tuple ordering versions by SemVer 2.0.0 precedence; build metadata is ignored and a
    release sorts after all of its prereleases. InvalidVersion if it is not SemVer."""
    match = _SEMVER.match(text.strip()) if text.isascii() else None
    if match is None:
        raise InvalidVersion(f"invalid semantic version {text[:80]!r}")
    major, minor, patch, prerelease = match.group(1, 2, 3, 4)
    identifiers = tuple(_identifier_key(p) for p in prerelease.split(".")) if prerelease else ()
    return int(major), int(minor), int(patch), 0 if prerelease else 1, identifiers


def compare_semver(a: str, b: str) -> int:
    left, right = semver_key(a), semver_key(b)
    return -1 if left < right else 1 if left > right else 0


def go_semver(text: str) -> str:
    """A Go module version (`v1.2.3`, pseudo-versions `v0.0.0-2021…-abcdef`,
    `v2.0.0+incompatible`) as the SemVer OSV's Go ecosystem writes (no `v`)."""
    return text[1:] if text.startswith("v") else text


def compare_go(a: str, b: str) -> int:
    """Go module versions are SemVer with a `v` (OSV omits it): pseudo-versions are
    prereleases, so they order before the release they precede, as the go command does."""
    return compare_semver(go_semver(a), go_semver(b))


_GO_TOOLCHAIN = re.compile(r"^go(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(beta|rc)(\d+))?$")


def go_toolchain_semver(text: str) -> str | None:
    """`go1.21.3` -> `1.21.3`, `go1.21` -> `1.21.0`, `go1.21rc2` -> `1.21.0-rc.2` (how OSV
    writes `stdlib` versions); None for development builds and anything else."""
    fields = text.strip().split()
    match = _GO_TOOLCHAIN.match(fields[0]) if fields else None
    if match is None:
        return None
    major, minor, patch, stage, number = match.groups()
    version = f"{major}.{minor or 0}.{patch or 0}"
    return f"{version}-{stage}.{number}" if stage else version


# -- sort keys: each version parsed once, then compared as plain tuples ------------------

VersionKey = Callable[[str], Any]


_DPKG_RUNS = re.compile(r"(\D*)(\d*)")
# dpkg's character order (_dpkg_order) shifted into code points, so that non-digit runs
# compare as plain strings: `~` (1) < end of run (2, the terminator) < letters < others.
_DPKG_TERMINATOR = "\x02"
_DPKG_TABLE = {code: chr(_dpkg_order(chr(code)) + 2) for code in range(128)}


def _dpkg_part_key(text: str) -> tuple[Any, ...]:
    """dpkg's part comparison as a key: alternating non-digit runs (mapped to dpkg's
    character order, ended by a terminator so that `~` sorts before the end of a run and
    letters after it) and numbers, closed by an empty run. Keys compare exactly as
    _dpkg_part_compare does (checked against it in the tests)."""
    runs = _DPKG_RUNS.findall(text)
    if len(runs) > 1:
        runs.pop()  # findall's final empty match
    parts: list[Any] = []
    for letters, digits in runs:
        parts.append(letters.translate(_DPKG_TABLE) + _DPKG_TERMINATOR)
        parts.append(int(digits) if digits else 0)
    parts.append(_DPKG_TERMINATOR)
    return tuple(parts)


def dpkg_key(text: str) -> tuple[Any, ...]:
    epoch, upstream, revision = parse_dpkg_version(text)
    return epoch, _dpkg_part_key(upstream), _dpkg_part_key(revision)


def pypi_key(text: str) -> _PackagingVersion:
    try:
        return _PackagingVersion(text)
    except _PackagingInvalid as error:
        raise InvalidVersion(str(error)) from None


def go_key(text: str) -> SemverKey:
    return semver_key(go_semver(text))


def version_key(ecosystem: str) -> VersionKey | None:
    """A sort key function for an OSV ecosystem's versions (apk, whose tokenizer has no
    simple key, compares through its comparison function)."""
    keys: dict[str, VersionKey] = {
        "Debian": dpkg_key,
        "Ubuntu": dpkg_key,
        "Alpine": functools.cmp_to_key(compare_apk),
        "PyPI": pypi_key,
        "Go": go_key,
        "npm": semver_key,
    }
    return keys.get(ecosystem.split(":", 1)[0])
