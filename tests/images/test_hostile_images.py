"""Hostile and broken images: each is refused with an error naming the image, or its bad
entries are skipped with a warning; nothing is read from outside the image root."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from images.builders import Blobs, Entry, docker_archive, file, layer_tar, sha256, symlink
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import MAX_MANIFEST_BYTES
from kubeproof.images.reader import read_image

STATUS = "Package: a\nStatus: install ok installed\nVersion: 1.0\n"


def layout_with(tmp_path: Path, *layers: bytes, compression: str = "gzip") -> tuple[Path, Blobs]:
    blobs = Blobs()
    layout = blobs.write_layout(
        tmp_path / "l", {"t": blobs.image(list(layers), compression=compression)}
    )
    return layout, blobs


def blob_file(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def layer_digest(blobs: Blobs) -> str:
    documents = [json.loads(d) for d in blobs.blobs.values() if d.startswith(b"{")]
    manifest = next(d for d in documents if isinstance(d.get("layers"), list))
    return str(manifest["layers"][-1]["digest"])


def test_layer_digest_mismatch_is_rejected(tmp_path: Path) -> None:
    layout, blobs = layout_with(
        tmp_path, layer_tar(file("var/lib/dpkg/status", STATUS)), compression="none"
    )
    path = blob_file(layout, layer_digest(blobs))
    data = bytearray(path.read_bytes())
    data[600] ^= 1  # flip one bit inside the status file's content
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError, match="digest mismatch"):
        read_image(f"oci:{layout}:t")


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_truncated_layer_is_rejected(tmp_path: Path, compression: str) -> None:
    layout, blobs = layout_with(
        tmp_path, layer_tar(file("var/lib/dpkg/status", STATUS * 50)), compression=compression
    )
    path = blob_file(layout, layer_digest(blobs))
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(ImageError, match=r"oci:.*layer sha256:"):
        read_image(f"oci:{layout}:t")


def test_garbage_layer_is_rejected_even_with_matching_digests(tmp_path: Path) -> None:
    garbage = b"\x1f\x8b" + b"not really gzip" * 10
    blobs = Blobs()
    manifest = blobs.image([b""], compression="none")  # then swap in the garbage layer
    document = json.loads(blobs.blobs[manifest["digest"]])
    document["layers"][0] = blobs.add(garbage, "application/vnd.oci.image.layer.v1.tar+gzip")
    layout = blobs.write_layout(
        tmp_path / "l", {"t": blobs.add(json.dumps(document).encode(), document["mediaType"])}
    )
    with pytest.raises(ImageError, match="corrupt or truncated"):
        read_image(f"oci:{layout}:t")


def test_manifest_digest_mismatch_is_rejected(tmp_path: Path) -> None:
    layout, _blobs = layout_with(tmp_path, layer_tar(file("etc/alpine-release", "3.19.1")))
    index = json.loads((layout / "index.json").read_text())
    path = blob_file(layout, index["manifests"][0]["digest"])
    path.write_bytes(path.read_bytes().replace(b'schemaVersion": 2', b'schemaVersion": 3'))
    with pytest.raises(ImageError, match="digest mismatch"):
        read_image(f"oci:{layout}:t")


def test_path_traversal_entries_are_skipped_and_symlinks_stay_inside(tmp_path: Path) -> None:
    outside = tmp_path / "outside-os-release"
    outside.write_text("ID=evil\n")
    layer = layer_tar(
        file("../../etc/shadow", "x"),
        file(
            "var/../../var/lib/dpkg/status",
            "Package: evil\nStatus: install ok installed\nVersion: 6.6.6\n",
        ),
        symlink("etc/os-release", "../../../../.." + str(outside)),
        symlink("lib", "/../../.."),
        file("/etc/alpine-release", "3.20.0\n"),  # absolute names mean the image root
    )
    layout, _ = layout_with(tmp_path, layer)
    image = read_image(f"oci:{layout}:t")
    assert image.packages == ()
    assert image.os is not None and (image.os.id, image.os.version_id) == ("alpine", "3.20.0")
    assert sum("leaves the image root" in w for w in image.warnings) == 2


def test_symlink_loops_do_not_hang(tmp_path: Path) -> None:
    layout, _ = layout_with(
        tmp_path,
        layer_tar(
            symlink("etc/os-release", "os-release2"), symlink("etc/os-release2", "os-release")
        ),
    )
    assert read_image(f"oci:{layout}:t").os is None


def test_oversized_wanted_file_is_refused_not_read_in_part(tmp_path: Path) -> None:
    from kubeproof.images import filesystem

    wanted = filesystem.wanted_file("etc/os-release")
    assert wanted is not None and wanted.whole
    layer = layer_tar(file("etc/os-release", "ID=debian\n" + "#" * wanted.limit))
    layout, _ = layout_with(tmp_path, layer)
    with pytest.raises(ImageError, match=r"etc/os-release is \d+ bytes, over the \d+ byte limit"):
        read_image(f"oci:{layout}:t")


def test_docker_archive_layer_mismatch_is_rejected(tmp_path: Path) -> None:
    good = layer_tar(file("var/lib/dpkg/status", STATUS))
    archive = docker_archive(tmp_path / "a.tar", [good])
    # Rewrite the layer with different content under the same name.
    rewritten = tmp_path / "b.tar"
    with tarfile.open(archive) as source, tarfile.open(rewritten, "w") as target:
        for member in source.getmembers():
            data = source.extractfile(member)
            content = data.read() if data else b""
            if member.name.endswith("layer.tar"):
                content = layer_tar(file("var/lib/dpkg/status", STATUS.replace("1.0", "9.9")))
                member.size = len(content)
            import io

            target.addfile(member, io.BytesIO(content))
    with pytest.raises(ImageError, match=r"docker-archive:.*digest mismatch"):
        read_image(f"docker-archive:{rewritten}")


@pytest.mark.parametrize("content", [b"", b"not a tar at all", b"{}"])
def test_not_an_archive_or_layout(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.tar"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=str(path)):
        read_image(f"docker-archive:{path}")
    with pytest.raises(ImageError, match="not an OCI image layout"):
        read_image(f"oci:{tmp_path}")


def test_layout_index_with_bad_json_and_bad_digest(tmp_path: Path) -> None:
    layout, _ = layout_with(tmp_path, layer_tar(file("a", "b")))
    (layout / "index.json").write_text('{"manifests": [{"digest": "sha256:zz", "size": 1}]}')
    with pytest.raises(ImageError, match="malformed digest"):
        read_image(f"oci:{layout}")
    (layout / "index.json").write_text("[1, 2")
    with pytest.raises(ImageError, match="not valid JSON"):
        read_image(f"oci:{layout}")
    (layout / "index.json").write_bytes(b"{" + b" " * MAX_MANIFEST_BYTES + b"}")
    with pytest.raises(ImageError, match=r"index.json is larger than 4 MiB"):
        read_image(f"oci:{layout}")


def test_entry_and_digest_helpers_agree() -> None:
    assert sha256(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert Entry("x").kind == "file"
