"""Package database and os-release parsers: round trips of generated records, and no
exception on any input."""

from __future__ import annotations

import contextlib
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from kubeproof.images.errors import ImageError
from kubeproof.images.filesystem import ImageFiles, normalise_entry_path
from kubeproof.images.osrelease import parse_os_release
from kubeproof.images.packages import (
    parse_apk_installed,
    parse_dpkg_status,
    parse_python_metadata,
)
from kubeproof.images.reference import parse_reference

NAMES = st.text(string.ascii_lowercase + string.digits + "+-.", min_size=1, max_size=20).filter(
    lambda s: s[0].isalnum()
)
VERSIONS = st.text(string.ascii_letters + string.digits + ".+~-:", min_size=1, max_size=20)
JUNK = st.text(max_size=400)


@given(JUNK)
def test_parsers_never_raise(text: str) -> None:
    parse_os_release(text)
    parse_dpkg_status(text, "x")
    parse_dpkg_status(text, "x", require_status=False)
    parse_apk_installed(text, "x")
    parse_python_metadata(text, "x")


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True),
        st.text(string.ascii_letters + string.digits + ' ._-()/"\\$`', max_size=30),
        max_size=8,
    )
)
def test_os_release_round_trip(fields: dict[str, str]) -> None:
    def quoted(value: str) -> str:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
        return '"' + escaped.replace("`", "\\`") + '"'

    text = "# comment\n" + "".join(f"{k}={quoted(v)}\n" for k, v in fields.items())
    assert parse_os_release(text) == fields


def test_os_release_forms() -> None:
    assert parse_os_release(
        'ID=alpine\nVERSION_ID=\'3.19.1\'\n  NAME="Alpine \\"L\\""\nnot a line\n=x\n'
    ) == {"ID": "alpine", "VERSION_ID": "3.19.1", "NAME": 'Alpine "L"'}


PACKAGES = st.lists(
    st.tuples(
        NAMES, VERSIONS, st.one_of(st.none(), NAMES), st.one_of(st.none(), VERSIONS), st.booleans()
    ),
    max_size=6,
    unique_by=lambda p: p[0],
)


@settings(max_examples=60)
@given(PACKAGES)
def test_dpkg_status_round_trip(
    packages: list[tuple[str, str, str | None, str | None, bool]],
) -> None:
    paragraphs = []
    for name, version, source, source_version, installed in packages:
        lines = [
            f"Package: {name}",
            f"Status: {'install ok installed' if installed else 'deinstall ok config-files'}",
            "Architecture: amd64",
            f"Version: {version}",
            "Description: first line",
            " continued",
            " .",
        ]
        if source:
            lines.append(f"Source: {source}" + (f" ({source_version})" if source_version else ""))
        paragraphs.append("\n".join(lines))
    parsed = parse_dpkg_status("\n\n".join(paragraphs) + "\n", "status")
    assert [(p.name, p.version, p.advisory_name, p.advisory_version) for p in parsed] == [
        (name, version, source or name, (source_version if source else None) or version)
        for name, version, source, source_version, installed in packages
        if installed
    ]


@given(st.lists(st.tuples(NAMES, VERSIONS, st.one_of(st.none(), NAMES)), max_size=6))
def test_apk_installed_round_trip(packages: list[tuple[str, str, str | None]]) -> None:
    text = "".join(
        f"C:Q1abc=\nP:{name}\nV:{version}\nA:x86_64\n"
        + (f"o:{origin}\n" if origin else "")
        + "F:usr/bin\nR:tool\n\n"
        for name, version, origin in packages
    )
    parsed = parse_apk_installed(text, "installed")
    assert [(p.name, p.version, p.advisory_name) for p in parsed] == [
        (name, version, origin or name) for name, version, origin in packages
    ]


def test_python_metadata_names_are_normalised_and_body_ignored() -> None:
    package = parse_python_metadata(
        "Metadata-Version: 2.1\nName: Foo_Bar.baz\nVersion: 1.0\n\nName: not-this\n", "m"
    )
    assert package is not None and (package.name, package.version) == ("foo-bar-baz", "1.0")
    assert parse_python_metadata("Name: x\n", "m") is None


@given(st.text(max_size=60))
def test_entry_paths_never_leave_the_root(name: str) -> None:
    path = normalise_entry_path(name)
    assert path is None or (not path.startswith("/") and ".." not in path.split("/"))


@settings(max_examples=60)
@given(
    st.dictionaries(
        st.sampled_from(["a", "a/b", "etc", "etc/x", "lib", "b/c"]),
        st.text("ab./", max_size=12),
        max_size=5,
    ),
    st.text("abcetlx./", max_size=20),
)
def test_symlink_resolution_stays_inside_and_ends(links: dict[str, str], path: str) -> None:
    files = ImageFiles(symlinks=links)
    resolved = files.resolve(path)
    assert resolved is None or (not resolved.startswith("/") and ".." not in resolved.split("/"))


@given(st.text(max_size=80))
def test_references_parse_or_fail_clearly(text: str) -> None:
    with contextlib.suppress(ImageError):
        parse_reference(text)
