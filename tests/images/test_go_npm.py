"""Go binaries' embedded build info (a real binary built by `go build`, and hand-laid
pre-1.18 pointer-format binaries) and npm packages (node_modules, package-lock.json),
read from images and written into the SBOM."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from images.builders import Blobs, Entry, executable, file, layer_tar
from images.gobuild import go_binary
from kubeproof.images.gobinary import BUILDINFO_MAGIC, read_build_info
from kubeproof.images.packages import (
    GOLANG,
    NPM,
    Package,
    parse_npm_lockfile,
    parse_npm_package_json,
)
from kubeproof.images.reader import ImageContents, read_image
from kubeproof.images.sbom import build_sbom, contents_from_sbom
from kubeproof.vulndb.versions import go_toolchain_semver

OS_RELEASE = file("etc/os-release", 'ID=debian\nVERSION_ID="12"\n')


def layout_of(tmp_path: Path, *layers: list[Entry]) -> str:
    blobs = Blobs()
    top = blobs.image([layer_tar(*entries) for entries in layers])
    return f"oci:{blobs.write_layout(tmp_path / 'layout', {'v1': top})}:v1"


def typed(contents: ImageContents, kind: str) -> set[tuple[str, str, str]]:
    return {(p.name, p.version, p.location) for p in contents.packages if p.type == kind}


# -- Go ----------------------------------------------------------------------------------


def test_real_go_binary_in_an_image(tmp_path: Path) -> None:
    binary = go_binary()
    stdlib = go_toolchain_semver(binary.go_version)
    assert stdlib is not None and binary.go_version.startswith("go1.")
    reference = layout_of(
        tmp_path,
        [
            OS_RELEASE,
            executable("usr/local/bin/app", binary.data),
            executable("usr/bin/old-app", binary.data),
            file("opt/app.data", binary.data),  # not executable: not read
        ],
        [file("usr/bin/.wh.old-app", b"")],  # deleted by an upper layer
    )
    contents = read_image(reference)
    assert typed(contents, GOLANG) == {
        ("stdlib", stdlib, "usr/local/bin/app"),
        # Replaced by a local directory: reported as the path and version it requires.
        ("golang.org/x/text", "v0.3.7", "usr/local/bin/app"),
    }
    info = read_build_info(binary.data)
    assert info is not None and info.main_path == "example.com/app"
    assert info.dependencies[0].replaced_by == "../lib (devel)"


def _elf_with_pointer_buildinfo(pointer_size: int, big_endian: bool, modinfo: bytes) -> bytes:
    """A minimal ELF file, one PT_LOAD segment, holding a pre-1.18 build info header: two
    pointers to Go string headers {data, length} in the segment's virtual addresses."""
    order = ">" if big_endian else "<"
    word = "Q" if pointer_size == 8 else "I"
    base_address = 0x400000
    header_size, program_header_size = (64, 56) if pointer_size == 8 else (52, 32)
    buildinfo_offset = 0x100
    version = b"go1.16.15"
    wrapped = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6" + modinfo
    wrapped += b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2"
    string_headers = buildinfo_offset + 32
    strings = string_headers + 4 * pointer_size
    body = bytearray(max(4096, strings + len(version) + len(wrapped)))  # a page, at least
    body[buildinfo_offset : buildinfo_offset + 16] = BUILDINFO_MAGIC + bytes(
        [pointer_size, 1 if big_endian else 0]
    )
    struct.pack_into(
        order + word * 2,
        body,
        buildinfo_offset + 16,
        base_address + string_headers,
        base_address + string_headers + 2 * pointer_size,
    )
    struct.pack_into(
        order + word * 4,
        body,
        string_headers,
        base_address + strings,
        len(version),
        base_address + strings + len(version),
        len(wrapped),
    )
    body[strings : strings + len(version) + len(wrapped)] = version + wrapped
    identification = b"\x7fELF" + bytes([2 if pointer_size == 8 else 1, 2 if big_endian else 1, 1])
    body[0:16] = identification.ljust(16, b"\0")
    if pointer_size == 8:
        struct.pack_into(order + "HHIQQQIHHHHHH", body, 16, 2, 62, 1, 0, header_size, 0, 0,
                         header_size, program_header_size, 1, 0, 0, 0)  # fmt: skip
        struct.pack_into(order + "IIQQQQQQ", body, header_size, 1, 4, 0, base_address,
                         base_address, len(body), len(body), 0x1000)  # fmt: skip
    else:
        struct.pack_into(order + "HHIIIIIHHHHHH", body, 16, 2, 20, 1, 0, header_size, 0, 0,
                         header_size, program_header_size, 1, 0, 0, 0)  # fmt: skip
        struct.pack_into(order + "IIIIIIII", body, header_size, 1, 0, base_address,
                         base_address, len(body), len(body), 4, 0x1000)  # fmt: skip
    return bytes(body)


MODINFO = (
    b"path\texample.com/legacy\nmod\texample.com/legacy\tv1.4.0\th1:abc=\n"
    b"dep\tgithub.com/gorilla/websocket\tv1.4.0\th1:def=\n"
    b"dep\tgolang.org/x/net\tv0.0.0-20200226121028-0de0cce0169b\th1:ghi=\n"
    b"=>\tgolang.org/x/net\tv0.0.0-20211209124913-491a49abca63\th1:jkl=\n"
)


@pytest.mark.parametrize(("pointer_size", "big_endian"), [(8, False), (4, True), (4, False)])
def test_pre_118_pointer_format(tmp_path: Path, pointer_size: int, big_endian: bool) -> None:
    data = _elf_with_pointer_buildinfo(pointer_size, big_endian, MODINFO)
    contents = read_image(layout_of(tmp_path, [OS_RELEASE, executable("bin/legacy", data)]))
    assert typed(contents, GOLANG) == {
        ("stdlib", "1.16.15", "bin/legacy"),
        ("example.com/legacy", "v1.4.0", "bin/legacy"),
        ("github.com/gorilla/websocket", "v1.4.0", "bin/legacy"),
        # A module replaced by another version is reported as the replacement.
        ("golang.org/x/net", "v0.0.0-20211209124913-491a49abca63", "bin/legacy"),
    }


def test_go_toolchain_versions() -> None:
    assert go_toolchain_semver("go1.21.3") == "1.21.3"
    assert go_toolchain_semver("go1.21") == "1.21.0"
    assert go_toolchain_semver("go1.21rc2") == "1.21.0-rc.2"
    assert go_toolchain_semver("go1.9beta1") == "1.9.0-beta.1"
    assert go_toolchain_semver("go1.22.1 X:boringcrypto") == "1.22.1"
    assert go_toolchain_semver("devel go1.23-abcdef") is None


def test_truncated_and_hostile_build_info() -> None:
    binary = go_binary().data
    header = binary.find(BUILDINFO_MAGIC)
    assert read_build_info(binary[: header + 40]) is None  # strings cut off
    huge_length = binary[: header + 32] + b"\xff\xff\xff\xff\x0f" + b"x" * 64
    assert read_build_info(huge_length) is None
    pointers_nowhere = bytearray(_elf_with_pointer_buildinfo(8, False, MODINFO))
    struct.pack_into("<Q", pointers_nowhere, 0x100 + 16, 0xDEAD0000)
    assert read_build_info(bytes(pointers_nowhere)) is None
    header_beyond_any_file = bytearray(_elf_with_pointer_buildinfo(8, False, MODINFO))
    struct.pack_into("<Q", header_beyond_any_file, 32, 2**63)  # e_phoff
    assert read_build_info(bytes(header_beyond_any_file)) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 3), st.binary(max_size=64))
def test_build_info_parser_never_raises(prefix: bytes, pad: int, tail: bytes) -> None:
    data = b"\0" * (16 - len(prefix) % 16) * pad + prefix
    data += b"\0" * (-len(data) % 16) + BUILDINFO_MAGIC + tail
    read_build_info(data)


# -- npm ---------------------------------------------------------------------------------

LOCK_V3 = {
    "name": "shop",
    "lockfileVersion": 3,
    "packages": {
        "": {"name": "shop", "version": "1.0.0"},
        "node_modules/lodash": {"version": "4.17.20"},
        "node_modules/@babel/core": {"version": "7.23.0"},
        "node_modules/jest": {"version": "29.7.0", "dev": True},
        "node_modules/local-lib": {"resolved": "../lib", "link": True},
        "node_modules/a/node_modules/semver": {"version": "7.5.1"},
    },
}
LOCK_V1 = {
    "lockfileVersion": 1,
    "dependencies": {
        "express": {
            "version": "4.18.2",
            "dependencies": {"qs": {"version": "6.11.0"}},
        },
        "mocha": {"version": "10.2.0", "dev": True},
    },
}


def test_npm_lockfiles() -> None:
    found = {(p.name, p.version) for p in parse_npm_lockfile(json.dumps(LOCK_V3).encode(), "x")}
    assert found == {("lodash", "4.17.20"), ("@babel/core", "7.23.0"), ("semver", "7.5.1")}
    found = {(p.name, p.version) for p in parse_npm_lockfile(json.dumps(LOCK_V1).encode(), "x")}
    assert found == {("express", "4.18.2"), ("qs", "6.11.0")}
    assert parse_npm_lockfile(b"{not json", "x") == []
    assert parse_npm_lockfile(b'{"packages": [1, 2]}', "x") == []
    assert parse_npm_package_json(b'{"name": 5, "version": "1.0.0"}', "x") is None
    assert parse_npm_package_json(b"[" * 100_000, "x") is None


def _package_json(name: str, version: str) -> bytes:
    return json.dumps({"name": name, "version": version, "main": "index.js"}).encode()


def test_npm_packages_in_an_image(tmp_path: Path) -> None:
    app = "srv/app"
    reference = layout_of(
        tmp_path,
        [
            OS_RELEASE,
            file(f"{app}/package.json", _package_json("shop", "1.0.0")),  # the app itself
            file(f"{app}/package-lock.json", json.dumps(LOCK_V3)),
            file(f"{app}/node_modules/lodash/package.json", _package_json("lodash", "4.17.20")),
            file(
                f"{app}/node_modules/@babel/core/package.json",
                _package_json("@babel/core", "7.23.0"),
            ),
            file(
                f"{app}/node_modules/a/node_modules/semver/package.json",
                _package_json("semver", "7.5.1"),
            ),
            file(f"{app}/node_modules/lodash/fp/package.json", b'{"main": "../fp.js"}'),
            file(f"{app}/node_modules/broken/package.json", b"{"),
        ],
    )
    contents = read_image(reference)
    modules = f"{app}/node_modules"
    assert typed(contents, NPM) == {
        ("lodash", "4.17.20", f"{modules}/lodash/package.json"),
        ("@babel/core", "7.23.0", f"{modules}/@babel/core/package.json"),
        ("semver", "7.5.1", f"{modules}/a/node_modules/semver/package.json"),
    }


def test_npm_lockfile_without_node_modules(tmp_path: Path) -> None:
    reference = layout_of(
        tmp_path, [OS_RELEASE, file("app/package-lock.json", json.dumps(LOCK_V1))]
    )
    assert typed(read_image(reference), NPM) == {
        ("express", "4.18.2", "app/package-lock.json"),
        ("qs", "6.11.0", "app/package-lock.json"),
    }


def test_sbom_purls_and_round_trip(tmp_path: Path) -> None:
    packages = (
        Package(GOLANG, "github.com/gorilla/websocket", "v1.4.0", location="bin/a"),
        Package(GOLANG, "stdlib", "1.21.3", location="bin/a"),
        Package(NPM, "@babel/core", "7.23.0", location="n/package.json"),
        Package(NPM, "lodash", "4.17.20", location="l/package.json"),
    )
    digest = "sha256:" + "ab" * 32
    contents = ImageContents("oci:x", digest, None, None, packages)
    document = json.loads(build_sbom(contents))
    assert {c["purl"] for c in document["components"]} == {
        "pkg:golang/github.com/gorilla/websocket@v1.4.0",
        "pkg:golang/stdlib@1.21.3",
        "pkg:npm/%40babel/core@7.23.0",
        "pkg:npm/lodash@4.17.20",
    }
    assert contents_from_sbom(json.dumps(document), "test").packages == tuple(sorted(packages))
