"""Reading OCI layouts and docker-archives: layer order, whiteouts, opaque directories,
platform choice, compression, and the real package databases inside."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from images.builders import Blobs, Entry, docker_archive, file, layer_tar, symlink
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import Platform
from kubeproof.images.reader import read_image

SITE = "usr/local/lib/python3.12/site-packages"


def debian_layers(dpkg_status: bytes, os_release: bytes) -> list[bytes]:
    return [
        layer_tar(
            Entry("etc", kind="dir"),
            symlink("etc/os-release", "../usr/lib/os-release"),
            file("usr/lib/os-release", os_release),
            file("var/lib/dpkg/status", dpkg_status),
        ),
    ]


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_debian_layout_reads_real_dpkg_and_python(
    tmp_path: Path,
    dpkg_status: bytes,
    os_release: bytes,
    dpkg_installed: set[tuple[str, str, str, str]],
    python_metadata: tuple[str, bytes],
    compression: str,
) -> None:
    dist_info, metadata = python_metadata
    python_layer = layer_tar(file(f"{SITE}/{dist_info}/METADATA", metadata))
    blobs = Blobs()
    manifest = blobs.image(
        [*debian_layers(dpkg_status, os_release), python_layer], compression=compression
    )
    layout = blobs.write_layout(tmp_path / "layout", {"1.0": manifest})

    image = read_image(f"oci:{layout}:1.0")

    assert image.digest == manifest["digest"]
    release = dict(line.split("=", 1) for line in os_release.decode().splitlines() if "=" in line)
    assert image.os is not None
    assert (image.os.id, image.os.version_id) == (release["ID"], release["VERSION_ID"].strip('"'))
    assert image.os.source == "etc/os-release"  # read through the symlink
    debs = {
        (p.name, p.version, p.advisory_name, p.advisory_version)
        for p in image.packages
        if p.type == "deb"
    }
    assert debs == dpkg_installed
    pythons = {(p.name, p.version) for p in image.packages if p.type == "pypi"}
    assert pythons == {("pytest", importlib.metadata.version("pytest"))}


def test_whiteouts_and_opaque_directories_hide_lower_layers(
    tmp_path: Path, python_metadata: tuple[str, bytes]
) -> None:
    dist_info, metadata = python_metadata
    apk = "P:musl\nV:1.2.4-r2\nA:x86_64\no:musl\n\nP:busybox\nV:1.36.1-r15\no:busybox\n"
    lower = layer_tar(
        file("etc/os-release", 'ID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux"\n'),
        file("lib/apk/db/installed", apk),
        file(f"{SITE}/{dist_info}/METADATA", metadata),
        file(
            "opt/venv/lib/python3.12/site-packages/old-1.0.dist-info/METADATA",
            "Name: old\nVersion: 1.0\n",
        ),
    )
    upper = layer_tar(
        file(f"{SITE}/.wh.{dist_info}", b""),  # pytest uninstalled
        file("opt/venv/.wh..wh..opq", b""),  # venv replaced wholesale
        file(
            "opt/venv/lib/python3.12/site-packages/new-2.0.dist-info/METADATA",
            "Name: New_Package\nVersion: 2.0\n",
        ),
    )
    blobs = Blobs()
    layout = blobs.write_layout(tmp_path / "l", {"latest": blobs.image([lower, upper])})

    image = read_image(f"oci:{layout}:latest")

    assert image.os is not None and image.os.id == "alpine"
    assert {(p.type, p.name, p.version, p.advisory_name) for p in image.packages} == {
        ("apk", "musl", "1.2.4-r2", "musl"),
        ("apk", "busybox", "1.36.1-r15", "busybox"),
        ("pypi", "new-package", "2.0", "new-package"),
    }


def test_a_file_replacing_a_directory_hides_what_was_under_it(tmp_path: Path) -> None:
    lower = layer_tar(
        file("var/lib/dpkg/status", "Package: a\nStatus: install ok installed\nVersion: 1\n")
    )
    upper = layer_tar(file("var/lib/dpkg", b"not a directory any more"))
    blobs = Blobs()
    layout = blobs.write_layout(tmp_path / "l", {"t": blobs.image([lower, upper])})
    assert read_image(f"oci:{layout}:t").packages == ()


def test_multi_arch_index_chooses_the_platform(tmp_path: Path) -> None:
    blobs = Blobs()
    amd = blobs.image([layer_tar(file("etc/alpine-release", "3.19.1\n"))])
    arm = blobs.image(
        [layer_tar(file("etc/debian_version", "12.5\n"))], platform=("linux", "arm64")
    )
    index = blobs.index([(amd, ("linux", "amd64", None)), (arm, ("linux", "arm64", "v8"))])
    layout = blobs.write_layout(tmp_path / "l", {"multi": index})

    default = read_image(f"oci:{layout}:multi")
    arm64 = read_image(f"oci:{layout}:multi", Platform.parse("linux/arm64"))

    assert (default.digest, default.os and default.os.id) == (amd["digest"], "alpine")
    assert (arm64.digest, arm64.os and arm64.os.id) == (arm["digest"], "debian")
    with pytest.raises(ImageError, match=r"no manifest for platform linux/s390x.*linux/amd64"):
        read_image(f"oci:{layout}:multi", Platform.parse("linux/s390x"))


def test_distroless_status_d(tmp_path: Path) -> None:
    status_d = "var/lib/dpkg/status.d"
    layer = layer_tar(
        file(
            f"{status_d}/libssl3",
            "Package: libssl3\nVersion: 3.0.15-1~deb12u1\nArchitecture: amd64\nSource: openssl\n",
        ),
        file(f"{status_d}/libssl3.md5sums", "d41d8cd98f00b204e9800998ecf8427e  x\n"),
        file(
            f"{status_d}/tzdata", "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n"
        ),
        file("etc/os-release", 'ID=debian\nVERSION_ID="12"\n'),
    )
    blobs = Blobs()
    layout = blobs.write_layout(tmp_path / "l", {"t": blobs.image([layer])})
    packages = read_image(f"oci:{layout}:t").packages
    assert {(p.name, p.advisory_name, p.advisory_version) for p in packages} == {
        ("libssl3", "openssl", "3.0.15-1~deb12u1"),
        ("tzdata", "tzdata", "2024a-0+deb12u1"),
    }


@pytest.mark.parametrize("oci_style", [False, True])
def test_docker_archive(
    tmp_path: Path,
    dpkg_status: bytes,
    os_release: bytes,
    dpkg_installed: set[tuple[str, str, str, str]],
    oci_style: bool,
) -> None:
    archive = docker_archive(
        tmp_path / "image.tar", debian_layers(dpkg_status, os_release), oci_style=oci_style
    )
    image = read_image(f"docker-archive:{archive}")
    assert image.digest.startswith("sha256:")
    assert {(p.name, p.version) for p in image.packages} == {
        (n, v) for n, v, _, _ in dpkg_installed
    }
