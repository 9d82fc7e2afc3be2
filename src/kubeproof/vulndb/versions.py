"""Version ordering of the ecosystems kubeproof matches: dpkg (Debian, Ubuntu), apk
(Alpine), rpm (Red Hat, Rocky Linux, AlmaLinux), PEP 440 (PyPI), SemVer 2.0.0 (npm,
crates.io), Go module versions and Maven's ComparableVersion. Each comparison returns <0,
0 or >0, and raises InvalidVersion for a version its ecosystem cannot order."""

from __future__ import annotations

import functools
import re
import unicodedata
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


# -- rpm (rpmio/rpmvercmp.c, rpmVersionCompare) ------------------------------------------

RPM_ECOSYSTEMS = ("Red Hat", "Rocky Linux", "AlmaLinux")
_RPM_SEGMENT = re.compile(r"[0-9]+|[A-Za-z]+|[~^]")
_RPM_EPOCH = re.compile(r"^(\d+):")
_MAX_VERSION_LENGTH = 4096


def _rpm_segments(text: str) -> list[str]:
    # rpm skips every byte that is not an ASCII letter, digit, `~` or `^`; what is left is
    # maximal runs of digits, of letters, and the two markers.
    return _RPM_SEGMENT.findall(text)


def rpmvercmp(a: str, b: str) -> int:
    """rpm's rpmvercmp: segments of digits (compared as numbers) or letters (as bytes);
    `~` sorts before anything, even the end; `^` sorts after the end but before anything
    else; a numeric segment is newer than an alphabetic one."""
    if a == b:
        return 0
    left, right = _rpm_segments(a), _rpm_segments(b)
    i = 0
    while True:
        one = left[i] if i < len(left) else ""
        two = right[i] if i < len(right) else ""
        i += 1
        if one == "~" or two == "~":
            if one != two:
                return -1 if one == "~" else 1
            continue
        if one == "^" or two == "^":
            if not one:
                return -1
            if not two:
                return 1
            if one != two:
                return 1 if two == "^" else -1
            continue
        if not one or not two:
            break
        if one[0].isdigit() != two[0].isdigit():
            return 1 if one[0].isdigit() else -1
        if one[0].isdigit():
            one, two = one.lstrip("0"), two.lstrip("0")
            if len(one) != len(two):
                return 1 if len(one) > len(two) else -1
        if one != two:
            return 1 if one > two else -1
    if not one and not two:
        return 0
    return -1 if not one else 1


def parse_rpm_evr(text: str) -> tuple[int, str, str]:
    """(epoch, version, release) of `[EPOCH:]VERSION[-RELEASE]`; a missing epoch is 0, a
    missing release empty (as `rpm.vercmp` reads them)."""
    if not text or len(text) > _MAX_VERSION_LENGTH:
        raise InvalidVersion(f"invalid rpm version {text[:80]!r}")
    epoch = 0
    match = _RPM_EPOCH.match(text)
    if match:
        epoch, text = int(match.group(1)), text[match.end() :]
    version, separator, release = text.rpartition("-")
    if not separator:
        version, release = text, ""
    if not version:
        raise InvalidVersion(f"invalid rpm version {text[:80]!r}")
    return epoch, version, release


def compare_rpm(a: str, b: str) -> int:
    """rpm's EVR comparison (`rpm.vercmp`): epoch, then version, then release."""
    epoch_a, version_a, release_a = parse_rpm_evr(a)
    epoch_b, version_b, release_b = parse_rpm_evr(b)
    if epoch_a != epoch_b:
        return -1 if epoch_a < epoch_b else 1
    return rpmvercmp(version_a, version_b) or rpmvercmp(release_a, release_b)


# -- Maven (maven-artifact ComparableVersion) --------------------------------------------

_MAVEN_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_MAVEN_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_MAVEN_RELEASE = _MAVEN_QUALIFIERS.index("")
# An item is (kind, value): numbers, qualifiers, and sub-lists (started by `-` or by a
# switch between letters and digits), as ComparableVersion parses them.
_NUMBER, _QUALIFIER, _LIST = 0, 1, 2
_MavenItem = tuple[int, Any]


def _maven_qualifier(text: str, followed_by_digit: bool) -> _MavenItem:
    if followed_by_digit and text in ("a", "b", "m"):
        text = {"a": "alpha", "b": "beta", "m": "milestone"}[text]
    return (_QUALIFIER, _MAVEN_ALIASES.get(text, text))


def _maven_item(is_digit: bool, text: str) -> _MavenItem:
    return (_NUMBER, int(text)) if is_digit else _maven_qualifier(text, False)


def _maven_is_null(item: _MavenItem) -> bool:
    kind, value = item
    if kind == _NUMBER:
        return bool(value == 0)
    if kind == _QUALIFIER:
        return bool(value == "")
    return not value


def _maven_normalise(items: list[_MavenItem]) -> None:
    """Trailing null items (0, "", empty lists) are removed, up to a non-list item."""
    for index in range(len(items) - 1, -1, -1):
        if _maven_is_null(items[index]):
            del items[index]
        elif items[index][0] != _LIST:
            break


def _is_java_digit(character: str) -> bool:
    return unicodedata.category(character) == "Nd"


@functools.lru_cache(maxsize=65536)
def parse_maven_version(text: str) -> tuple[_MavenItem, ...]:
    if len(text) > _MAX_VERSION_LENGTH:
        raise InvalidVersion(f"Maven version over {_MAX_VERSION_LENGTH} characters")
    version = text.lower()
    root: list[_MavenItem] = []
    current = root
    lists = [root]
    is_digit, start = False, 0

    def open_list() -> None:
        nonlocal current
        child: list[_MavenItem] = []
        current.append((_LIST, child))
        current = child
        lists.append(child)

    for index, character in enumerate(version):
        if character in ".-":
            if index == start:
                current.append((_NUMBER, 0))
            else:
                current.append(_maven_item(is_digit, version[start:index]))
            start = index + 1
            if character == "-":
                open_list()
        elif _is_java_digit(character):
            if not is_digit and index > start:
                if current:  # `1.0.0.X1` is read as `1.0.0-X1`
                    open_list()
                current.append(_maven_qualifier(version[start:index], True))
                start = index
                open_list()
            is_digit = True
        else:
            if is_digit and index > start:
                current.append(_maven_item(True, version[start:index]))
                start = index
                open_list()
            is_digit = False
    if len(version) > start:
        if not is_digit and current:
            open_list()
        current.append(_maven_item(is_digit, version[start:]))
    for items in reversed(lists):
        _maven_normalise(items)
    return _freeze(root)


def _freeze(items: list[_MavenItem]) -> tuple[_MavenItem, ...]:
    return tuple((kind, _freeze(value) if kind == _LIST else value) for kind, value in items)


def _qualifier_rank(value: str) -> tuple[int, str]:
    # Known qualifiers in their order, then any other, alphabetically, after them all.
    if value in _MAVEN_QUALIFIERS:
        return _MAVEN_QUALIFIERS.index(value), ""
    return len(_MAVEN_QUALIFIERS), value


def _maven_compare_item(item: _MavenItem, other: _MavenItem | None) -> int:
    kind, value = item
    if other is None:
        if kind == _NUMBER:
            return 0 if value == 0 else 1
        if kind == _QUALIFIER:
            rank = _qualifier_rank(value)
            return (rank > (_MAVEN_RELEASE, "")) - (rank < (_MAVEN_RELEASE, ""))
        for child in value:
            result = _maven_compare_item(child, None)
            if result:
                return result
        return 0
    other_kind, other_value = other
    if kind == _NUMBER:
        if other_kind == _NUMBER:
            return int(value > other_value) - int(value < other_value)
        return 1  # 1.1 > 1-sp, 1.1 > 1-1
    if kind == _QUALIFIER:
        if other_kind == _QUALIFIER:
            left, right = _qualifier_rank(value), _qualifier_rank(other_value)
            return (left > right) - (left < right)
        return -1  # 1.any < 1.1, 1.any < 1-1
    if other_kind == _NUMBER:
        return -1  # 1-1 < 1.0.x
    if other_kind == _QUALIFIER:
        return 1  # 1-1 > 1-sp
    return _maven_compare_lists(value, other_value)


def _maven_compare_lists(left: tuple[_MavenItem, ...], right: tuple[_MavenItem, ...]) -> int:
    for index in range(max(len(left), len(right))):
        one = left[index] if index < len(left) else None
        two = right[index] if index < len(right) else None
        if one is None:
            result = 0 if two is None else -_maven_compare_item(two, None)
        else:
            result = _maven_compare_item(one, two)
        if result:
            return result
    return 0


def compare_maven(a: str, b: str) -> int:
    """Maven's ComparableVersion: `.`/`-` and letter-digit switches separate items;
    alpha < beta < milestone < rc = cr < snapshot < (release, ga, final) < sp < other
    qualifiers (alphabetically) < numbers; trailing zeros and empty qualifiers ignored."""
    return _maven_compare_lists(parse_maven_version(a), parse_maven_version(b))


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
        "crates.io": compare_semver,
        "Maven": compare_maven,
        **dict.fromkeys(RPM_ECOSYSTEMS, compare_rpm),
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
    """A sort key function for an OSV ecosystem's versions (apk, rpm and Maven, whose
    orderings have no simple key, compare through their comparison functions)."""
    keys: dict[str, VersionKey] = {
        "Debian": dpkg_key,
        "Ubuntu": dpkg_key,
        "Alpine": functools.cmp_to_key(compare_apk),
        "PyPI": pypi_key,
        "Go": go_key,
        "npm": semver_key,
        "crates.io": semver_key,
        "Maven": functools.cmp_to_key(compare_maven),
        **dict.fromkeys(RPM_ECOSYSTEMS, functools.cmp_to_key(compare_rpm)),
    }
    return keys.get(ecosystem.split(":", 1)[0])
