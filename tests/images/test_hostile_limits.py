"""Hostile images that aim at memory or the parser rather than at the filesystem: layers
that hold too much, archives whose members are links, files of zeros, JSON nested too
deeply, a cache that cannot be written. Each is refused with an error naming the image, or
skipped with a warning, and memory stays bounded (limits are patched down to keep the
inputs small)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from images.builders import OCI_CONFIG, OCI_MANIFEST, Blobs, Entry, file, layer_tar, symlink
from kubeproof.images import filesystem
from kubeproof.images.cached import scan_image
from kubeproof.images.errors import ImageError
from kubeproof.images.filesystem import ImageFiles, apply_layer
from kubeproof.images.reader import read_image
from kubeproof.images.sbom import cache_path, contents_from_sbom

STATUS = "Package: a\nStatus: install ok installed\nVersion: 1.0\n"
DEEP = b"[" * 100_000 + b"]" * 100_000


def hardlink(path: str, target: str) -> Entry:
    return Entry(path, kind="hardlink", target=target)


def cut_inside(layer: bytes, name: str) -> bytes:
    """The layer cut off 10 bytes into the data of entry `name`."""
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return layer[: tar.getmember(name).offset_data + 10]


def test_wanted_files_are_counted_before_they_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filesystem, "MAX_TOTAL_WANTED_BYTES", 1000)
    second = "var/lib/dpkg/info/b.list"
    layer = layer_tar(file("var/lib/dpkg/info/a.list", "/a\n" * 200), file(second, "/b\n" * 200))
    # Cut inside the second file: refused before its data is read, it is never reached.
    with pytest.raises(ImageError, match="layer x: package data over 1000 bytes"):
        apply_layer(ImageFiles(), io.BytesIO(cut_inside(layer, second)), "layer x")


def test_lower_layers_count_towards_the_wanted_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filesystem, "MAX_TOTAL_WANTED_BYTES", 1000)
    state = ImageFiles()
    apply_layer(state, io.BytesIO(layer_tar(file("var/lib/dpkg/status", "x" * 600))), "one")
    rewritten = layer_tar(file("var/lib/dpkg/status", "y" * 300))  # replaces it: still fits
    apply_layer(state, io.BytesIO(rewritten), "two")
    more = layer_tar(file("var/lib/dpkg/info/a.list", "z" * 800))
    with pytest.raises(ImageError, match="three: package data over 1000 bytes"):
        apply_layer(state, io.BytesIO(more), "three")


def test_symlink_target_longer_than_path_max_is_skipped() -> None:
    state = ImageFiles()
    target = "a" * (filesystem.MAX_SYMLINK_TARGET + 1)
    layer = layer_tar(symlink("etc/os-release", target), symlink("lib", "usr/lib"))
    apply_layer(state, io.BytesIO(layer), "layer x")
    assert state.symlinks == {"lib": "usr/lib"}
    assert state.warnings == [
        "layer x: skipped entry 'etc/os-release' whose symlink target is over 4096 characters"
    ]


def test_symlink_targets_are_bounded_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filesystem, "MAX_SYMLINK_BYTES", 100)
    layer = layer_tar(*(symlink(f"s/{n}", "t" * 40) for n in range(3)))
    with pytest.raises(ImageError, match="layer x: symlink targets over 100 bytes"):
        apply_layer(ImageFiles(), io.BytesIO(layer), "layer x")


def test_entries_per_layer_are_bounded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(filesystem, "MAX_LAYER_ENTRIES", 5)
    directories = [Entry(f"d/{n}", kind="dir") for n in range(6)]
    apply_layer(ImageFiles(), io.BytesIO(layer_tar(*directories[:5])), "layer x")
    blobs = Blobs()
    layout = blobs.write_layout(tmp_path / "l", {"t": blobs.image([layer_tar(*directories)])})
    with pytest.raises(ImageError, match=r"oci:.*layer sha256:\w+: more than 5 entries in one"):
        read_image(f"oci:{layout}:t")


def test_entries_are_not_kept_by_tarfile() -> None:
    layer = layer_tar(*(file(f"f/{n}", "x") for n in range(50)))
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r|") as tar:
        held = [len(tar.members) for _ in filesystem._entries(tar, "layer x")]
    assert len(held) == 50 and max(held) == 0


def archive_with(path: Path, *entries: Entry) -> Path:
    path.write_bytes(layer_tar(*entries))
    return path


def image_members(manifest_name: str = "manifest.json", layer: str = "l/layer.tar") -> list[Entry]:
    """A docker-archive's config and layer, and its manifest under `manifest_name`."""
    contents = layer_tar(file("var/lib/dpkg/status", STATUS))
    config = json.dumps({"rootfs": {"diff_ids": [Blobs().add(contents, "")["digest"]]}})
    manifest = json.dumps([{"Config": "config.json", "Layers": [layer]}])
    return [
        file(manifest_name, manifest),
        file("config.json", config),
        file("blobs/layer", contents),
    ]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([symlink("manifest.json", "/etc/passwd")], r"no '/etc/passwd' in the archive \(linked"),
        ([hardlink("manifest.json", "missing")], r"no 'missing' in the archive \(linked from"),
        (
            [symlink("manifest.json", "b"), symlink("b", "manifest.json")],
            "'manifest.json' is a chain or loop",
        ),
        (
            [*image_members(), symlink("l/layer.tar", "x"), symlink("l/x", "layer.tar")],
            "'l/layer.tar' is a chain or loop of links",
        ),
        (
            [*image_members(), symlink("l/layer.tar", "../../../../dev/zero")],
            r"no '\.\./\.\./\.\./dev/zero' in the archive",
        ),
        ([Entry("manifest.json", kind="dir")], "'manifest.json' is not a file"),
    ],
)
def test_docker_archive_links_are_refused_clearly(
    tmp_path: Path, entries: list[Entry], message: str
) -> None:
    archive = archive_with(tmp_path / "a.tar", *entries)
    with pytest.raises(ImageError, match=f"docker-archive {archive}: {message}"):
        read_image(f"docker-archive:{archive}")


def test_docker_archive_members_linked_inside_it_are_read(tmp_path: Path) -> None:
    """`docker save` stores a layer once and links its other names to it."""
    entries = [*image_members("real-manifest.json"), symlink("manifest.json", "real-manifest.json")]
    archive = archive_with(tmp_path / "a.tar", *entries, symlink("l/layer.tar", "../blobs/layer"))
    assert [p.name for p in read_image(f"docker-archive:{archive}").packages] == ["a"]
    gzipped = tmp_path / "a.tar.gz"
    gzipped.write_bytes(gzip.compress(archive.read_bytes()))
    assert [p.name for p in read_image(f"docker-archive:{gzipped}").packages] == ["a"]


def test_file_of_zeros_is_not_a_docker_archive(tmp_path: Path) -> None:
    # tarfile's own guess ran an lzma reader through the zeros: some 7 MB/s, /dev/zero never
    # ended, and all to conclude that it is an empty tar.
    zeros = tmp_path / "zeros.tar"
    zeros.write_bytes(bytes(8 << 20))
    with pytest.raises(ImageError, match=f"{zeros}: not a readable docker-archive"):
        read_image(f"docker-archive:{zeros}")


def deep_oci_config(tmp_path: Path) -> str:
    blobs = Blobs()
    config = blobs.add(b'{"a": ' + DEEP + b"}", OCI_CONFIG)
    manifest = json.dumps({"schemaVersion": 2, "config": config, "layers": []}).encode()
    layout = blobs.write_layout(tmp_path / "l", {"t": blobs.add(manifest, OCI_MANIFEST)})
    return f"oci:{layout}:t"


def deep_oci_index(tmp_path: Path) -> str:
    blobs = Blobs()
    layout = blobs.write_layout(tmp_path / "l", {"t": blobs.image([layer_tar()])})
    (layout / "index.json").write_bytes(DEEP)
    return f"oci:{layout}"


def deep_archive_manifest(tmp_path: Path) -> str:
    return f"docker-archive:{archive_with(tmp_path / 'a.tar', file('manifest.json', DEEP))}"


def deep_archive_config(tmp_path: Path) -> str:
    manifest = json.dumps([{"Config": "config.json", "Layers": []}])
    entries = (file("manifest.json", manifest), file("config.json", b'{"a": ' + DEEP + b"}"))
    return f"docker-archive:{archive_with(tmp_path / 'a.tar', *entries)}"


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (deep_oci_config, r"OCI layout \S+ config sha256:\w+"),
        (deep_oci_index, r"OCI layout \S+ index.json"),
        (deep_archive_manifest, r"docker-archive \S+ manifest.json"),
        (deep_archive_config, r"docker-archive \S+ config.json"),
    ],
)
def test_json_nested_too_deeply_is_refused_clearly(
    tmp_path: Path, build: Callable[[Path], str], where: str
) -> None:
    with pytest.raises(ImageError, match=f"{where}: JSON nested too deeply"):
        read_image(build(tmp_path))


def test_sbom_cache_entry_nested_too_deeply_is_not_an_sbom() -> None:
    with pytest.raises(ImageError, match="entry: not a kubeproof SBOM"):
        contents_from_sbom(DEEP.decode(), "entry")


def test_unwritable_sbom_cache_does_not_fail_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    blobs = Blobs()
    top = blobs.image([layer_tar(file("var/lib/dpkg/status", STATUS))])
    layout = blobs.write_layout(tmp_path / "l", {"t": top})
    entry = cache_path(top["digest"])
    entry.mkdir(parents=True)  # a directory where the entry goes: os.replace fails
    scanned = scan_image(f"oci:{layout}:t")
    assert [p.name for p in scanned.contents.packages] == ["a"]
    assert any(w.startswith("SBOM cache not written") for w in scanned.contents.warnings)
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]  # no temporary left
