"""Manifests from files, directories, stdin, Helm charts and Kustomize directories."""

from __future__ import annotations

import bisect
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeproof.bounded import byte_size
from kubeproof.inventory import K8sObject
from kubeproof.model import Location
from kubeproof.sources import renderers
from kubeproof.sources.documents import Document, InputError, parse_documents

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 64 * 1024 * 1024
_HELM_SOURCE = re.compile(r"^# Source: (.+)$", re.MULTILINE)


@dataclass
class Loaded:
    objects: list[K8sObject] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    files: int = 0


@dataclass(frozen=True)
class RenderOptions:
    """Passed through to `helm template`."""

    values: Sequence[str] = ()
    set_values: Sequence[str] = ()
    release: str = "release"
    namespace: str | None = None


def load_paths(paths: Sequence[str], render: RenderOptions | None = None) -> Loaded:
    """Every object under the given paths; problems become errors, never exceptions."""
    loaded = Loaded()
    render = render or RenderOptions()
    for target in paths:
        if target == "-":
            loaded.files += 1
            _add_text(loaded, sys.stdin.read(), "<stdin>")
            continue
        path = Path(target)
        if not path.exists():
            loaded.errors.append(InputError(target, "no such file or directory"))
        elif path.is_dir():
            _load_directory(loaded, path, render)
        elif renderers.is_packaged_chart(path):
            _add_rendered(loaded, path, renderers.helm_template(path, render), helm=True)
        else:
            _load_file(loaded, path)
    return loaded


def _load_directory(loaded: Loaded, root: Path, render: RenderOptions) -> None:
    for directory, subdirs, files in os.walk(root, followlinks=False):
        here = Path(directory)
        if renderers.is_chart(here):
            subdirs.clear()  # templates are not manifests until rendered
            _add_rendered(loaded, here, renderers.helm_template(here, render), helm=True)
            continue
        if renderers.is_kustomization(here):
            subdirs.clear()
            _add_rendered(loaded, here, renderers.kustomize_build(here), helm=False)
            continue
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            path = here / name
            if name.endswith(MANIFEST_SUFFIXES):
                if path.is_file():
                    _load_file(loaded, path)
                else:  # a pipe would block the walk, a device never end
                    loaded.files += 1
                    loaded.errors.append(InputError(str(path), "not a regular file; skipped"))
            elif renderers.is_packaged_chart(path):
                _add_rendered(loaded, path, renderers.helm_template(path, render), helm=True)


def _load_file(loaded: Loaded, path: Path) -> None:
    loaded.files += 1
    source = str(path)
    data = _read_limited(path)
    text = data if isinstance(data, InputError) else decode(data, source)
    if isinstance(text, InputError):
        loaded.errors.append(text)
    else:
        _add_text(loaded, text, source)


def _read_limited(path: Path) -> bytes | InputError:
    """The file's bytes. A regular file over the limit is refused by its size, unread;
    anything else (`<(helm template ...)`, a device) once it has given more than that."""
    limit = MAX_FILE_BYTES
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            data = handle.read(limit + 1) if size <= limit else b""
    except OSError as error:
        return InputError(str(path), f"cannot read: {error.strerror or error}")
    if size > limit or len(data) > limit:
        size_text = f"{size / 2**20:.0f} MiB, " if size > limit else ""
        return InputError(
            str(path), f"file is {size_text}over the {byte_size(limit)} limit; skipped"
        )
    return data


def decode(data: bytes, source: str) -> str | InputError:
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return InputError(source, "binary file (contains NUL bytes); skipped")
    try:
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            return data.decode("utf-16")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        return InputError(source, f"not UTF-8 text (byte {error.start}); skipped")


def _add_text(loaded: Loaded, text: str, source: str) -> None:
    for item in parse_documents(text, source):
        if isinstance(item, InputError):
            loaded.errors.append(item)
        else:
            _add_document(loaded, item, Location(source, item.line))


def _add_document(loaded: Loaded, document: Document, location: Location) -> None:
    for obj in objects_in(document.data, location):
        if isinstance(obj, InputError):
            loaded.errors.append(obj)
        else:
            loaded.objects.append(obj)


def objects_in(data: Any, location: Location) -> Iterator[K8sObject | InputError]:
    """The Kubernetes objects in one parsed document: itself, or a List's items."""
    if data is None:
        return  # an empty document
    if not isinstance(data, dict):
        yield InputError(
            location.file,
            f"document is a {_type_name(data)}, not a Kubernetes object; skipped",
            location.line,
        )
        return
    kind, api_version = data.get("kind"), data.get("apiVersion")
    if not isinstance(kind, str) or not kind or not isinstance(api_version, str):
        yield InputError(
            location.file, "document has no kind or apiVersion; skipped", location.line
        )
        return
    if kind == "List" or (kind.endswith("List") and isinstance(data.get("items"), list)):
        for index, item in enumerate(data.get("items") or []):
            yield from (
                objects_in(item, location)
                if isinstance(item, dict)
                else [
                    InputError(
                        location.file,
                        f"{kind} item {index} is a {_type_name(item)}, not an object; skipped",
                        location.line,
                    )
                ]
            )
        return
    yield K8sObject.from_raw(data, location)


def _type_name(value: Any) -> str:
    return {str: "string", list: "list", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _add_rendered(loaded: Loaded, origin: Path, rendered: str | InputError, *, helm: bool) -> None:
    """Objects rendered by helm or kustomize, located at the template they came from."""
    loaded.files += 1
    if isinstance(rendered, InputError):
        loaded.errors.append(rendered)
        return
    templates = _helm_sources(rendered) if helm else []
    for item in parse_documents(rendered, str(origin)):
        if isinstance(item, InputError):
            loaded.errors.append(item)
            continue
        index = bisect.bisect_right(templates, (item.line, "")) - 1
        source = origin.parent / templates[index][1] if index >= 0 else origin
        _add_document(loaded, item, Location(str(source), None))


def _helm_sources(rendered: str) -> list[tuple[int, str]]:
    """(line, template) for each `# Source:` comment helm writes above a document."""
    found, line, position = [], 1, 0
    for match in _HELM_SOURCE.finditer(rendered):
        line += rendered.count("\n", position, match.start())
        position = match.start()
        found.append((line, match.group(1).strip()))
    return found
