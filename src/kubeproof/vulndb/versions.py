"""Version ordering of the ecosystems kubeproof matches: dpkg (Debian, Ubuntu), apk
(Alpine) and PEP 440 (PyPI). Each comparison returns <0, 0 or >0, and raises
InvalidVersion for a version its ecosystem cannot order."""

from __future__ import annotations

import re
from collections.abc import Callable

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
    }.get(base)
