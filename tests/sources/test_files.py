"""Manifests from the file system: directories, multi-document files, Lists, bad files."""

from __future__ import annotations

import io
import os
import sys
import threading
from pathlib import Path

import pytest

from kubeproof.sources import files
from kubeproof.sources.files import load_paths

POD = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers: []\n"


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_directories_are_read_recursively_with_locations(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", POD.format(name="a") + "---\n" + POD.format(name="b"))
    write(tmp_path / "sub" / "c.yml", POD.format(name="c"))
    write(
        tmp_path / "sub" / "d.json",
        '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "d"}}',
    )
    write(tmp_path / "notes.txt", "not a manifest")
    loaded = load_paths([str(tmp_path)])
    assert loaded.errors == []
    assert loaded.files == 3
    where = {
        o.name: (Path(o.location.file).name, o.location.line) for o in loaded.objects if o.location
    }
    assert where == {"a": ("a.yaml", 1), "b": ("a.yaml", 8), "c": ("c.yml", 1), "d": ("d.json", 1)}


def test_list_kinds_are_expanded(tmp_path: Path) -> None:
    write(
        tmp_path / "list.yaml",
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: Pod, metadata: {name: pod}}\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: settings, namespace: team}}\n"
        "- 3\n",
    )
    loaded = load_paths([str(tmp_path / "list.yaml")])
    assert sorted(o.name for o in loaded.objects) == ["pod", "settings"]
    assert len(loaded.errors) == 1 and "item 2" in loaded.errors[0].message


def test_bad_files_are_reported_and_the_rest_still_scanned(tmp_path: Path) -> None:
    write(tmp_path / "good.yaml", POD.format(name="good"))
    write(tmp_path / "binary.yaml", b"\x00\x01\x02binary")
    write(tmp_path / "latin1.yaml", "name: caf\xe9\n".encode("latin-1"))
    write(tmp_path / "empty.yaml", "")
    write(tmp_path / "scalar.yaml", "just a string\n")
    write(tmp_path / "nokind.yaml", "metadata: {name: x}\n")
    write(tmp_path / "broken.yaml", "a: [1\n")
    loaded = load_paths([str(tmp_path), str(tmp_path / "missing.yaml")])
    assert [o.name for o in loaded.objects] == ["good"]
    messages = {Path(e.source).name: e.message for e in loaded.errors}
    assert "binary" in messages["binary.yaml"]
    assert "UTF-8" in messages["latin1.yaml"]
    assert "not a Kubernetes object" in messages["scalar.yaml"]
    assert "no kind" in messages["nokind.yaml"]
    assert "invalid YAML" in messages["broken.yaml"]
    assert "no such file" in messages["missing.yaml"]
    assert "empty.yaml" not in messages


def test_huge_files_are_refused_by_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:  # sparse: 100 MB on paper, nothing on disk
        handle.truncate(100 * 1024 * 1024)
    loaded = load_paths([str(big)])
    assert loaded.objects == []
    assert "over the" in loaded.errors[0].message


def test_an_endless_file_is_refused_after_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "MAX_FILE_BYTES", 1024)
    loaded = load_paths(["/dev/zero"])  # its size says 0; reading it never ends
    assert loaded.objects == []
    assert loaded.errors[0].message == "file is over the 1 KiB limit; skipped"


def test_a_named_pipe_is_read_when_named_and_skipped_in_a_directory(tmp_path: Path) -> None:
    pipe = tmp_path / "rendered.yaml"
    os.mkfifo(pipe)
    write(tmp_path / "good.yaml", POD.format(name="good"))
    walked = load_paths([str(tmp_path)])  # opening the pipe would wait for a writer
    assert [o.name for o in walked.objects] == ["good"]
    assert [(e.source, e.message) for e in walked.errors] == [
        (str(pipe), "not a regular file; skipped")
    ]

    # Named on the command line, as `kubeproof scan <(helm template ...)` does, it is read.
    def render() -> None:
        with pipe.open("w") as writer:
            writer.write(POD.format(name="piped"))

    writer = threading.Thread(target=render)
    writer.start()
    named = load_paths([str(pipe)])
    writer.join()
    assert [o.name for o in named.objects] == ["piped"]


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(POD.format(name="piped")))
    loaded = load_paths(["-"])
    assert [o.name for o in loaded.objects] == ["piped"]
    assert loaded.objects[0].location is not None
    assert loaded.objects[0].location.file == "<stdin>"


def test_wrong_types_in_known_fields_do_not_crash(tmp_path: Path) -> None:
    write(
        tmp_path / "odd.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: [1, 2]\nspec: 7\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, labels: 5}\n"
        "spec: {template: {spec: {containers: [1, {name: 3, image: [x]}]}}}\n",
    )
    loaded = load_paths([str(tmp_path)])
    assert len(loaded.objects) == 2
