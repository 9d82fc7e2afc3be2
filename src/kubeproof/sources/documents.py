"""Turn the text of a YAML or JSON file into documents, each with the line it starts on.

Hostile input is expected here: alias bombs, absurd nesting, binary data. Each is turned
into an `InputError` naming the file and line; nothing here raises on bad input.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

MAX_DOCUMENT_BYTES = 8 * 1024 * 1024  # etcd stores at most 1.5 MiB per object
MAX_EXPANDED_NODES = 2_000_000  # what aliases may expand a document to
# A string counts a node per KiB: `[&a <400 KB>, *a, *a ...]` is small as nodes go, but
# whatever writes the document out (a hash, a report) writes each copy.
STRING_BYTES_PER_NODE = 1024
MAX_DEPTH = 500  # real objects nest a few dozen levels; libyaml's composer recurses in C

# The YAML spec forbids `---` and `...` at column 0 inside content, so splitting on them
# is exact, and lets each document keep its line number without a slow node-level parse.
# The newline is part of the pattern rather than a multi-line `^`: the regex engine then
# skips from newline to newline, six times faster over a large file.
_DOCUMENT_MARKER = re.compile(r"\n(?:---|\.\.\.)(?=[ \t\r\n]|$)")
_FIRST_MARKER = re.compile(r"(?:---|\.\.\.)(?=[ \t\r\n]|$)")


@dataclass(frozen=True, slots=True)
class InputError:
    source: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Document:
    data: Any
    line: int  # 1-based line of the document's first content line


FAST_PARSER = "pyrs_yaml.pyrs_yaml"


def _compiled_fast_parser() -> ModuleType | None:
    """pyrs-yaml's compiled module: Rust-backed, five times PyYAML's C loader, identical
    output on Kubernetes YAML. Loaded on its own because the package's `__init__` imports
    asyncio, arrow and pendulum for features never used here (a tenth of a second at every
    start); a later `import pyrs_yaml` finds this module and reuses it."""
    if FAST_PARSER in sys.modules:
        return sys.modules[FAST_PARSER]
    try:
        package = importlib.util.find_spec("pyrs_yaml")
        folders = (package.submodule_search_locations or []) if package else []
        for path in (
            os.path.join(folder, f"pyrs_yaml{suffix}")
            for folder in folders
            for suffix in importlib.machinery.EXTENSION_SUFFIXES
        ):
            spec = importlib.util.spec_from_file_location(FAST_PARSER, path)
            if os.path.isfile(path) and spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                sys.modules[FAST_PARSER] = module
                spec.loader.exec_module(module)
                return module
        return importlib.import_module(FAST_PARSER)  # laid out otherwise: the usual way
    except (ImportError, OSError):  # pragma: no cover - a platform without its wheel
        sys.modules.pop(FAST_PARSER, None)
        return None


fast_yaml = _compiled_fast_parser()

# The first line with content: not blank, not a comment, not a directive.
_CONTENT_LINE = re.compile(r"^[ \t]*[^ \t\r\n#%]", re.MULTILINE)

# An `&name` anchor, and a `*name` alias, anywhere a node may start. They over-match (in
# quoted strings) rather than miss: a false match only costs the slower, bomb-proof path.
_ANCHOR = re.compile(r"(?:^|[\s\[{,:-])&[^\s,\[\]{}]")
_ALIAS = re.compile(r"(?:^|[\s\[{,:])\*[^\s,\[\]{}]")


def parse_documents(text: str, source: str) -> Iterator[Document | InputError]:
    """Every document in a YAML stream (JSON is YAML too, but takes the fast path)."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            pass  # flow-style YAML, or broken JSON: let the YAML parser say which
        else:
            yield Document(data, text[: len(text) - len(stripped)].count("\n") + 1)
            return
    for chunk, chunk_line, line in _split(text):
        yield _parse_one(chunk, chunk_line, line, source)


class DocumentError(ValueError):
    """A configuration file that is not one readable document; the message names it."""


def load_single_document(text: str, source: str) -> Any:
    """The one document of a configuration file (YAML or JSON), read with every guard
    manifests have (alias bombs, nesting, size); None when it is empty. DocumentError
    names the file and line otherwise."""
    found = []
    for item in parse_documents(text, source):
        if isinstance(item, InputError):
            raise DocumentError(str(item))
        found.append(item.data)
    if len(found) > 1:
        raise DocumentError(f"{source}: holds {len(found)} documents, not one")
    return found[0] if found else None


def _split(text: str) -> Iterator[tuple[str, int, int]]:
    """(chunk, line the chunk starts on, line its content starts on) per document."""
    start, line = 0, 1
    first = _FIRST_MARKER.match(text)
    if first is not None:
        start = first.end()
    for marker in _DOCUMENT_MARKER.finditer(text, start):
        end = marker.start() + 1  # the marker starts after the newline
        yield from _content(text[start:end], line)
        line += text.count("\n", start, end)
        # Content may follow the marker on its line (`--- !tag` or `--- {a: 1}`).
        start = marker.end()
    yield from _content(text[start:], line)


def _content(chunk: str, line: int) -> Iterator[tuple[str, int, int]]:
    """The chunk with the line of its first content; nothing when it holds no content."""
    first = _CONTENT_LINE.search(chunk)
    if first is not None:
        yield chunk, line, line + chunk.count("\n", 0, first.start())


def _parse_one(chunk: str, chunk_line: int, line: int, source: str) -> Document | InputError:
    if len(chunk) > MAX_DOCUMENT_BYTES:
        return InputError(
            source,
            f"document larger than {MAX_DOCUMENT_BYTES // 2**20} MiB "
            "(Kubernetes objects are at most 1.5 MiB); skipped",
            line,
        )
    if fast_yaml is not None and not _may_alias(chunk):
        try:
            return Document(fast_yaml.safe_load(chunk, "yaml1.1"), line)
        except Exception as error:
            fast_error = str(error).splitlines()[0] if str(error) else type(error).__name__
            problem = _load_with_pyyaml(chunk, chunk_line, line, source)
            if isinstance(problem, InputError):
                return problem
            return InputError(source, f"invalid YAML: {fast_error}", line)
    return _load_with_pyyaml(chunk, chunk_line, line, source)


def _may_alias(chunk: str) -> bool:
    # An alias needs an anchor; `*` alone is common (cron schedules, RBAC wildcards).
    return "*" in chunk and "&" in chunk and bool(_ALIAS.search(chunk) and _ANCHOR.search(chunk))


def _pyyaml() -> tuple[ModuleType, ModuleType]:
    """PyYAML and its Kubernetes loader, imported only for the documents that need them
    (anchors, errors): most scans never do, and importing it costs about 20 ms."""
    import yaml

    from kubeproof.sources import pyyaml_loader

    return yaml, pyyaml_loader


def _load_with_pyyaml(chunk: str, chunk_line: int, line: int, source: str) -> Document | InputError:
    yaml, pyyaml_loader = _pyyaml()
    if _may_nest_deeply(chunk) and (depth := _depth(chunk)) > MAX_DEPTH:
        return InputError(
            source, f"document nests {depth} levels deep (limit {MAX_DEPTH}); skipped", line
        )
    try:
        data = pyyaml_loader.load(chunk)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        at = chunk_line + mark.line if mark is not None else line
        return InputError(source, f"invalid YAML: {error.problem or error.context}", at)
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        return InputError(source, f"invalid YAML: {str(error).splitlines()[0]}", line)
    if "*" in chunk and "&" in chunk and _expanded_size(data) > MAX_EXPANDED_NODES:
        return InputError(
            source,
            "YAML aliases expand to more than "
            f"{MAX_EXPANDED_NODES:,} nodes (an alias bomb?); skipped",
            line,
        )
    return Document(data, line)


def _may_nest_deeply(chunk: str) -> bool:
    # Cheap and conservative: only a document with many openers can nest past the limit.
    return chunk.count("[") + chunk.count("{") + chunk.count("- ") > MAX_DEPTH


def _depth(chunk: str) -> int:
    """Nesting depth from parser events: libyaml's event parser does not recurse."""
    yaml, pyyaml_loader = _pyyaml()
    depth = deepest = 0
    try:
        for event in yaml.parse(chunk, Loader=pyyaml_loader.KubernetesLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                deepest = max(deepest, depth)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass  # the loader reports the error with its line
    return deepest


def _scalar_size(value: Any) -> int:
    return 1 + len(value) // STRING_BYTES_PER_NODE if isinstance(value, str) else 1


def _expanded_size(data: Any) -> int:
    """How many nodes the document has once every alias is expanded, counted without
    expanding: the size of each shared node is computed once. A document that contains
    itself (`&a [*a]`) is infinite."""
    if not isinstance(data, dict | list):
        return _scalar_size(data)  # an anchored scalar (`&a ~`)
    sizes: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, children_done = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node
        if children_done:
            size = 1 + sum(sizes.get(id(c)) or _scalar_size(c) for c in children)
            if size > MAX_EXPANDED_NODES:
                return size
            sizes[id(node)] = size
            continue
        if id(node) in sizes:
            continue
        if id(node) in entered:
            return MAX_EXPANDED_NODES + 1
        entered.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if isinstance(c, dict | list))
    return sizes.get(id(data), 1)
