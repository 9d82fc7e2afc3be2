"""CycloneDX 1.6 SBOMs: valid against the official schema (bundled by cyclonedx-python-lib),
purls as the purl spec writes them, deterministic bom-refs, and the cache by digest that
spares reading the layers of an image seen before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from images.builders import Blobs, file, layer_tar
from kubeproof.images import sbom
from kubeproof.images.cached import scan_image
from kubeproof.images.errors import ImageError
from kubeproof.images.sbom import cache_path, contents_from_sbom

SITE = "usr/lib/python3/dist-packages"


@pytest.fixture(autouse=True)
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def debian_layout(
    tmp_path: Path, dpkg_status: bytes, os_release: bytes, python_metadata: tuple[str, bytes]
) -> tuple[Path, str]:
    dist_info, metadata = python_metadata
    blobs = Blobs()
    top = blobs.image(
        [
            layer_tar(
                file("etc/os-release", os_release),
                file("var/lib/dpkg/status", dpkg_status),
                file(f"{SITE}/{dist_info}/METADATA", metadata),
            )
        ]
    )
    return blobs.write_layout(tmp_path / "layout", {"v1": top}), top["digest"]


def test_sbom_is_valid_cyclonedx_1_6_with_purls(debian_layout: tuple[Path, str]) -> None:
    layout, digest = debian_layout
    scanned = scan_image(f"oci:{layout}:v1")
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(scanned.sbom)
    assert errors is None, errors
    document = json.loads(scanned.sbom)
    assert document["specVersion"] == "1.6"
    assert document["metadata"]["component"]["bom-ref"] == digest
    purls = {c["purl"] for c in document["components"]}
    libc = next(p for p in scanned.contents.packages if p.name == "libc6")
    version = libc.version.replace("+", "%2B")  # purl percent-encodes +
    assert f"pkg:deb/debian/libc6@{version}?arch={libc.arch}&distro=debian-12" in purls
    assert any(p.startswith("pkg:pypi/pytest@") for p in purls)
    assert all(c["bom-ref"] == c["purl"] for c in document["components"])


def test_bom_refs_are_deterministic(debian_layout: tuple[Path, str]) -> None:
    layout, _ = debian_layout
    first = json.loads(scan_image(f"oci:{layout}:v1", use_cache=False).sbom)
    second = json.loads(scan_image(f"oci:{layout}:v1", use_cache=False).sbom)
    assert first["serialNumber"] == second["serialNumber"]
    assert [c["bom-ref"] for c in first["components"]] == [
        c["bom-ref"] for c in second["components"]
    ]


def test_cache_by_digest_spares_the_layers(
    debian_layout: tuple[Path, str], cache_home: Path
) -> None:
    layout, digest = debian_layout
    first = scan_image(f"oci:{layout}:v1")
    assert not first.from_cache
    assert cache_path(digest) == cache_home / "kubeproof" / "sbom" / f"{digest}.json"
    assert cache_path(digest).is_file()
    # Remove every layer blob: a second scan can only succeed from the cache.
    manifest = json.loads((layout / "blobs" / "sha256" / digest.split(":")[1]).read_text())
    for layer in manifest["layers"]:
        (layout / "blobs" / "sha256" / layer["digest"].split(":")[1]).unlink()
    second = scan_image(f"oci:{layout}:v1")
    assert second.from_cache
    assert second.contents.packages == first.contents.packages
    assert second.contents.os is not None and first.contents.os is not None
    assert (second.contents.os.id, second.contents.os.version_id) == (
        first.contents.os.id,
        first.contents.os.version_id,
    )
    with pytest.raises(ImageError, match="missing"):
        scan_image(f"oci:{layout}:v1", use_cache=False)


def test_cache_entry_of_another_extractor_version_is_rebuilt(
    debian_layout: tuple[Path, str],
) -> None:
    layout, digest = debian_layout
    scan_image(f"oci:{layout}:v1")
    document = json.loads(cache_path(digest).read_text())
    properties = document["metadata"]["component"]["properties"]
    version = next(p for p in properties if p["name"] == "kubeproof:extractor-version")
    version["value"] = "0"  # as an older kubeproof would have written it
    cache_path(digest).write_text(json.dumps(document))
    assert not scan_image(f"oci:{layout}:v1").from_cache
    assert scan_image(f"oci:{layout}:v1").from_cache  # rewritten by the current extractor


@pytest.mark.parametrize(
    "damage",
    [
        b'{"components": [{"name": "fake"}]}',
        b"\xff\xfe not UTF-8",
        b"{" + b" " * 64,  # oversized, with the limit patched down below
    ],
    ids=["foreign", "binary", "oversized"],
)
def test_damaged_cache_entry_is_rebuilt(
    debian_layout: tuple[Path, str], monkeypatch: pytest.MonkeyPatch, damage: bytes
) -> None:
    layout, digest = debian_layout
    scan_image(f"oci:{layout}:v1")
    monkeypatch.setattr(sbom, "MAX_CACHED_SBOM_BYTES", 64)
    cache_path(digest).write_bytes(damage)
    again = scan_image(f"oci:{layout}:v1")
    assert not again.from_cache and len(again.contents.packages) > 1


def test_offline_registry_reference_needs_a_cached_digest(debian_layout: tuple[Path, str]) -> None:
    with pytest.raises(ImageError, match="--offline"):
        scan_image("127.0.0.1:9/kp/app:1", offline=True)
    layout, digest = debian_layout
    scan_image(f"oci:{layout}:v1")
    shutil.rmtree(layout)
    offline = scan_image(f"127.0.0.1:9/kp/app@{digest}", offline=True)
    assert offline.from_cache and offline.contents.digest == digest


@pytest.mark.parametrize("text", ["", "[]", '{"metadata": {"component": {"version": "x"}}}'])
def test_foreign_sbom_is_refused(text: str) -> None:
    with pytest.raises(ImageError, match="not a kubeproof SBOM"):
        contents_from_sbom(text, "f.json")


def test_purls_match_the_reference_implementation(dpkg_status: bytes) -> None:
    from packageurl import PackageURL

    from kubeproof.images.osrelease import OperatingSystem
    from kubeproof.images.packages import Package, parse_dpkg_status
    from kubeproof.images.sbom import package_url

    debian = OperatingSystem("debian", "12")
    packages = [
        *parse_dpkg_status(dpkg_status.decode(), "status"),
        Package("apk", "musl", "1.2.4_git20230717-r4", "x86_64"),
        Package("pypi", "zope-interface", "6.0+local"),
    ]
    for package in packages:
        ours = package_url(
            package, OperatingSystem("alpine", "3.19.1") if package.type == "apk" else debian
        )
        parsed = PackageURL.from_string(ours)
        assert (parsed.name, parsed.version) == (package.name, package.version)
        assert ours == parsed.to_string()
