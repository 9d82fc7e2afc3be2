"""Turn the text of a YAML or JSON file into documents, each with the line it starts on.

Hostile input is expected here: alias bombs, absurd nesting, binary data. Each is turned
into an `InputError` naming the file and line; nothing here raises on bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

MAX_DOCUMENT_BYTES = 8 * 1024 * 1024  # etcd stores at most 1.5 MiB per object
MAX_EXPANDED_NODES = 2_000_000  # what aliases may expand a document to
MAX_DEPTH = 500  # real objects nest a few dozen levels; libyaml's composer recurses in C

# The YAML spec forbids `---` and `...` at column 0 inside content, so splitting on them
# is exact, and lets each document keep its line number without a slow node-level parse.
_DOCUMENT_MARKER = re.compile(r"^(?:---|\.\.\.)(?=[ \t\r\n]|$)", re.MULTILINE)


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


_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class KubernetesLoader(_BaseLoader):  # type: ignore[misc]
    """YAML 1.1 like the Kubernetes tools (booleans, octal), but timestamps stay strings,
    as they do in Kubernetes objects."""


KubernetesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}


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


def _split(text: str) -> Iterator[tuple[str, int, int]]:
    """(chunk, line the chunk starts on, line its content starts on) per document."""
    start, line = 0, 1
    for marker in _DOCUMENT_MARKER.finditer(text):
        yield from _content(text[start : marker.start()], line)
        line += text.count("\n", start, marker.start())
        # Content may follow the marker on its line (`--- !tag` or `--- {a: 1}`).
        start = marker.end()
    yield from _content(text[start:], line)


def _content(chunk: str, line: int) -> Iterator[tuple[str, int, int]]:
    offset = 0
    for raw in chunk.splitlines(keepends=True):
        body = raw.strip()
        if body and not body.startswith("#") and not body.startswith("%"):
            break
        offset += 1
    else:
        return
    yield chunk, line, line + offset


def _parse_one(chunk: str, chunk_line: int, line: int, source: str) -> Document | InputError:
    if len(chunk) > MAX_DOCUMENT_BYTES:
        return InputError(
            source,
            f"document larger than {MAX_DOCUMENT_BYTES // 2**20} MiB "
            "(Kubernetes objects are at most 1.5 MiB); skipped",
            line,
        )
    if _may_nest_deeply(chunk) and (depth := _depth(chunk)) > MAX_DEPTH:
        return InputError(
            source, f"document nests {depth} levels deep (limit {MAX_DEPTH}); skipped", line
        )
    try:
        data = yaml.load(chunk, Loader=KubernetesLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        at = chunk_line + mark.line if mark is not None else line
        return InputError(source, f"invalid YAML: {error.problem or error.context}", at)
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        return InputError(source, f"invalid YAML: {error}", line)
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
    depth = deepest = 0
    try:
        for event in yaml.parse(chunk, Loader=KubernetesLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                deepest = max(deepest, depth)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        pass  # the loader reports the error with its line
    return deepest


def _expanded_size(data: Any) -> int:
    """How many nodes the document has once every alias is expanded, counted without
    expanding: the size of each shared node is computed once. A document that contains
    itself (`&a [*a]`) is infinite."""
    sizes: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, children_done = stack.pop()
        children = list(node.values()) if isinstance(node, dict) else node
        if children_done:
            size = 1 + sum(sizes.get(id(c), 1) for c in children)
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
