#!/usr/bin/env python3
"""Measure YAML (and JSON) parsers on a directory of Kubernetes manifests.

Usage (in the project's environment, `make install`; the reference is kubeproof's own
PyYAML loader):
    python bench/generate_manifests.py --resources 13000 --out out/k8s13k
    python bench/parsers.py --dir out/k8s13k [--repeat 3] [--only NAME,...] [--json FILE]
    python bench/parsers.py --from-json FILE        # print the tables of a saved run

Every candidate runs in its own subprocess (clean peak RSS, and a crash or an
abort in a C/Rust extension cannot take the run down). For each one it reports:

* stream: parse each file's whole text as one multi-document stream
* split:  split each file on lines matching ``^(---|\\.\\.\\.)(\\s|$)`` (recording
  each document's start line) and parse every document on its own
* CPU seconds (best of --repeat, garbage collector off), MB/s and docs/s; one
  pass keeping every document with the collector on; peak RSS; and whether the
  documents equal the reference (PyYAML C loader with go-yaml v2 scalars), file
  by file
* scalars: what it makes of ``on``, ``y``, ``NO``, ``0777``, ``0o17``, ``0b101``,
  ``1_000``, ``1e3``, ``12:30``, ``~``, ``2024-01-01``, ``!!str 0777``, a merge
  key and a duplicate key, next to what go-yaml v2 (Kubernetes) makes of them
* a 9-level "billion laughs" document, run under a 2 GiB address-space limit and
  a 30 s timeout: rejected, loaded as a shared graph, or killed
* json vs orjson on the JSON files, and on the whole corpus re-encoded as JSON

Candidates that are not installed are listed as such. Install the field with:
    pip install pyyaml orjson rapidyaml yaml-rs ruamel.yaml ruamel.yaml.clib \
        ryaml pyyaml-rs oryaml py-yaml12 pyrs-yaml rustyyaml xoryaml \
        rs-turboyaml fastyaml-rs yamlstar && pip install --pre libfyaml
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Loader = Callable[[str], list[Any]]

# ---------------------------------------------------------------------------
# Document splitting (our line-number plan)
# ---------------------------------------------------------------------------

_MARKER = re.compile(r"^(---|\.\.\.)(?:[ \t\r]|$)", re.M)


def split_documents(text: str) -> Iterator[tuple[int, str]]:
    """Yield (start_line, document_text) for each document of a YAML stream.

    A ``---`` line starts a chunk (the marker stays in it, so ``--- |`` style
    content still parses); a ``...`` line ends one and is dropped. start_line
    is 1-based and points at the chunk's first line. Chunks may be blank
    (comments only); the caller skips those.
    """
    cur, line, counted = 0, 1, 0
    for m in _MARKER.finditer(text):
        s = m.start()
        if s > cur:
            line += text.count("\n", counted, cur)
            counted = cur
            yield line, text[cur:s]
        if m.group(1) == "---":
            cur = s
        else:
            nl = text.find("\n", s)
            cur = len(text) if nl < 0 else nl + 1
    if cur < len(text):
        line += text.count("\n", counted, cur)
        yield line, text[cur:]


def _blank(chunk: str) -> bool:
    for ln in chunk.splitlines():
        s = ln.strip()
        if s.startswith("---"):
            s = s[3:].strip()
        if s and not s.startswith("#"):
            return False
    return True


# ---------------------------------------------------------------------------
# Kubernetes-like scalar resolution for PyYAML (sigs.k8s.io/yaml = go-yaml v2)
# ---------------------------------------------------------------------------


def k8s_pyyaml_loader(base: type) -> type:
    """A PyYAML loader class on `base` with the scalar rules kubeproof itself uses
    (go-yaml v2 as Kubernetes reads it): the reference every candidate is compared with."""
    from kubeproof.sources.pyyaml_loader import KubernetesLoader

    class K8sLoader(base):  # type: ignore[misc]
        pass

    K8sLoader.yaml_implicit_resolvers = KubernetesLoader.yaml_implicit_resolvers
    K8sLoader.yaml_constructors = KubernetesLoader.yaml_constructors
    return K8sLoader


# ---------------------------------------------------------------------------
# Candidates
# ---------------------------------------------------------------------------


@dataclass
class Candidate:
    name: str
    dist: str  # PyPI distribution
    module: str  # import name (for the version)
    factory: Callable[[], tuple[Loader, Loader]]  # -> (load_all(stream), load_one(doc))
    note: str = ""
    slow: bool = False  # timed once only


def _pyyaml(kind: str) -> tuple[Loader, Loader]:
    import yaml

    base = yaml.CSafeLoader if kind != "py" else yaml.SafeLoader
    loader = k8s_pyyaml_loader(base) if kind == "k8s" else base

    def load_all(t: str) -> list[Any]:
        return list(yaml.load_all(t, Loader=loader))

    def load_one(t: str) -> Any:
        return yaml.load(t, Loader=loader)

    return load_all, load_one


def _pyyaml_marks() -> tuple[Loader, Loader]:
    """PyYAML C loader through the compose API: a start line for every document."""
    import yaml

    loader_cls = k8s_pyyaml_loader(yaml.CSafeLoader)

    def load_all(t: str) -> list[Any]:
        loader = loader_cls(t)
        out = []
        try:
            while loader.check_node():
                node = loader.get_node()
                _line = node.start_mark.line + 1  # the point: it is there
                out.append(loader.construct_document(node))
        finally:
            loader.dispose()
        return out

    return load_all, lambda t: yaml.load(t, Loader=loader_cls)


def _ruamel(pure: bool) -> tuple[Loader, Loader]:
    from ruamel.yaml import YAML

    y = YAML(typ="safe", pure=pure)

    def load_all(t: str) -> list[Any]:
        return list(y.load_all(t))

    return load_all, y.load


def _ryml_walk() -> tuple[Loader, Loader]:
    import ryml

    none = ryml.NONE
    null_re = re.compile(r"^(?:~|null|Null|NULL)$")
    int_re = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
    float_re = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
    bools = {
        "true": True,
        "True": True,
        "TRUE": True,
        "false": False,
        "False": False,
        "FALSE": False,
    }

    def scalar(tree: Any, n: int) -> Any:
        if tree.val_is_null(n):
            return None
        s = str(tree.val(n), "utf8")
        if tree.is_val_quoted(n) or tree.is_val_literal(n) or tree.is_val_folded(n):
            return s
        if s in bools:
            return bools[s]
        if null_re.match(s):
            return None
        if int_re.match(s):
            return int(s)
        if float_re.match(s):
            return float(s)
        return s

    def conv(tree: Any, n: int) -> Any:
        if tree.is_map(n):
            d = {}
            ch = tree.first_child(n)
            while ch != none:
                d[str(tree.key(ch), "utf8")] = conv(tree, ch)
                ch = tree.next_sibling(ch)
            return d
        if tree.is_seq(n):
            out = []
            ch = tree.first_child(n)
            while ch != none:
                out.append(conv(tree, ch))
                ch = tree.next_sibling(ch)
            return out
        return scalar(tree, n)

    def load_all(t: str) -> list[Any]:
        tree = ryml.parse_in_arena(t.encode())
        tree.resolve()  # expand aliases and merge keys
        root = tree.root_id()
        if tree.is_stream(root):
            return [conv(tree, d) for d in ryml.children(tree, root)]
        return [conv(tree, root)]

    def load_one(t: str) -> Any:
        docs = load_all(t)
        return docs[0] if docs else None

    return load_all, load_one


def _ryml_json() -> tuple[Loader, Loader]:
    import orjson
    import ryml

    def load_all(t: str) -> list[Any]:
        tree = ryml.parse_in_arena(t.encode())
        tree.resolve()  # expand aliases and merge keys
        root = tree.root_id()
        ids = list(ryml.children(tree, root)) if tree.is_stream(root) else [root]
        return [orjson.loads(ryml.emit_json(tree, i)) for i in ids]

    def load_one(t: str) -> Any:
        docs = load_all(t)
        return docs[0] if docs else None

    return load_all, load_one


def _simple(mod: str, all_fn: str, one_fn: str, **kw: Any) -> Callable[[], tuple[Loader, Loader]]:
    def factory() -> tuple[Loader, Loader]:
        import importlib

        m = importlib.import_module(mod)
        fa = getattr(m, all_fn)
        fo = getattr(m, one_fn)
        return (lambda t: list(fa(t, **kw))), (lambda t: fo(t, **kw))

    return factory


def _yaml_rs() -> tuple[Loader, Loader]:
    import yaml_rs

    def load_all(t: str) -> list[Any]:
        # loads() returns a list for a multi-document stream, the object otherwise
        r = yaml_rs.loads(t, parse_datetime=False)
        if len(_MARKER.findall(t)) > 1 and isinstance(r, list):
            return r
        return [r]

    return load_all, lambda t: yaml_rs.loads(t, parse_datetime=False)


def _yaml12() -> tuple[Loader, Loader]:
    import yaml12

    return (lambda t: yaml12.parse_yaml(t, multi=True)), (lambda t: yaml12.parse_yaml(t))


def _libfyaml(mode: str) -> tuple[Loader, Loader]:
    import libfyaml

    def load_all(t: str) -> list[Any]:
        return [d.to_python() for d in libfyaml.loads_all(t, mode=mode)]

    def load_one(t: str) -> Any:
        return libfyaml.loads(t, mode=mode).to_python()

    return load_all, load_one


def _pyrs(schema: str) -> tuple[Loader, Loader]:
    import pyrs_yaml

    def load_all(t: str) -> list[Any]:
        return list(pyrs_yaml.safe_loads(t, schema=schema))

    def load_one(t: str) -> Any:
        return pyrs_yaml.safe_load(t, schema=schema)

    return load_all, load_one


def _yamlstar() -> tuple[Loader, Loader]:
    import yamlstar

    ys = yamlstar.YAMLStar()
    return (lambda t: list(ys.load_all(t))), ys.load


def _strip_marker(t: str) -> str:
    """Drop a leading '---' marker line (for parsers that reject markers)."""
    if t.startswith("---"):
        nl = t.find("\n")
        rest = t[3 : nl if nl >= 0 else len(t)].strip()
        if not rest or rest.startswith("#"):
            return t[nl + 1 :] if nl >= 0 else ""
    return t


def _no_stream(name: str) -> Loader:
    def load_all(t: str) -> list[Any]:
        raise NotImplementedError(f"{name} has no multi-document API")

    return load_all


def _turbo() -> tuple[Loader, Loader]:
    import turboyaml

    return _no_stream("turboyaml"), (
        lambda t: turboyaml.load(_strip_marker(t), yaml_1_1_bools=True)
    )


def _oryaml() -> tuple[Loader, Loader]:
    import oryaml

    return _no_stream("oryaml"), (lambda t: oryaml.loads(_strip_marker(t)))


class AliasBomb(ValueError):
    pass


def check_node_expansion(node: Any, limit: int = 100_000) -> None:
    """Raise AliasBomb if a PyYAML node graph expands to more than `limit` nodes.

    Aliased nodes are the same object, so this is O(unique nodes) with a memo."""
    import yaml

    memo: dict[int, int] = {}
    entered: set[int] = set()

    def size(n: Any) -> int:
        k = id(n)
        if k in memo:
            return memo[k]
        if k in entered:
            raise AliasBomb("document contains itself (recursive alias)")
        entered.add(k)
        if isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(a) + size(b) for a, b in n.value)
        elif isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(x) for x in n.value)
        else:
            total = 1
        if total > limit:
            raise AliasBomb(f"document expands to more than {limit} nodes")
        memo[k] = total
        return total

    size(node)


def _pyyaml_guarded() -> tuple[Loader, Loader]:
    """K8s-like PyYAML C loader through the compose API: start line per
    document, and an alias-expansion check when the text has a '*'."""
    import yaml

    loader_cls = k8s_pyyaml_loader(yaml.CSafeLoader)

    def load_all(t: str) -> list[Any]:
        loader = loader_cls(t)
        check = "*" in t
        out = []
        try:
            while loader.check_node():
                node = loader.get_node()
                _line = node.start_mark.line + 1
                if check:
                    check_node_expansion(node)
                out.append(loader.construct_document(node))
        finally:
            loader.dispose()
        return out

    def load_one(t: str) -> Any:
        docs = load_all(t)
        return docs[0] if docs else None

    return load_all, load_one


# Plain scalars that go-yaml v2 (Kubernetes) and a YAML 1.2 core-schema parser
# resolve differently: 1.1 bools, 0-prefixed octals, 0b binaries, underscores.
# Matches on a token boundary; false positives (inside quotes or block
# scalars) only cost a second parse.
K8S_RISKY = re.compile(
    r"(?:^|[\s\[{,])"
    r"(?:[yYnN]|yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF"
    r"|[-+]?0[0-7_]+|[-+]?0[bB][01_]+|[-+]?0[xXoO][0-9a-fA-F_]*_[0-9a-fA-F_]*"
    r"|[-+]?[0-9.][0-9_.]*_[0-9_.eE+-]*)"
    r"(?=[ \t\r]*(?:$|[,\]}#]|:(?:\s|$)))",
    re.M,
)


def _hybrid() -> tuple[Loader, Loader]:
    """fastyaml-rs for every document (it enforces the alias budget); documents
    with a token go-yaml v2 reads differently are re-parsed with the K8s-like
    PyYAML loader."""
    import fast_yaml
    import yaml

    k8s = k8s_pyyaml_loader(yaml.CSafeLoader)
    budget = 1 << 20  # alias expansion budget, bytes

    def load_one(t: str) -> Any:
        d = fast_yaml.safe_load(t, max_alias_bytes=budget)
        if K8S_RISKY.search(t):
            d = yaml.load(t, Loader=k8s)
        return d

    def load_all(t: str) -> list[Any]:
        if not K8S_RISKY.search(t):
            return list(fast_yaml.safe_load_all(t, max_alias_bytes=budget))
        return [load_one(c) for _, c in split_documents(t) if not _blank(c)]

    return load_all, load_one


# A JSON string (key or value) that a plain YAML 1.1 scalar with the same text would not
# have been: a boolean, a null or a number in any of go-yaml v2's forms. rapidyaml's JSON
# cannot say whether such a string was quoted in the YAML, so its document is re-parsed.
TYPED_JSON_STRING = re.compile(
    r'"(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF'
    r"|~|null|Null|NULL|<<"
    r"|[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
    r"|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?)"
    r'|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))"'
)


def _ryml_json_guarded() -> tuple[Loader, Loader]:
    """rapidyaml's JSON through orjson; documents whose JSON holds a typed-looking string
    re-parsed by pyrs-yaml (YAML 1.1). Still not exact (tags, lone aliases, duplicate
    keys): it measures what the cheapest guard costs."""
    import orjson
    import pyrs_yaml
    import ryml

    def load_one(t: str) -> Any:
        tree = ryml.parse_in_arena(t)
        text = ryml.emit_json(tree, tree.root_id())
        if TYPED_JSON_STRING.search(text):
            return pyrs_yaml.safe_load(t, schema="yaml1.1")
        return orjson.loads(text)

    def load_all(t: str) -> list[Any]:
        return [load_one(c) for _, c in split_documents(t) if not _blank(c)]

    return load_all, load_one


# An alias is `*name` after a space, a line start or a flow indicator. The test
# over-matches (e.g. ` */5` in a quoted cron schedule), which only costs a slower parse.
ALIAS_TOKEN = re.compile(r"(?:^|[\s\[{,:])\*[^\s,\[\]{}]", re.M)


def _pyrs_guarded() -> tuple[Loader, Loader]:
    """pyrs-yaml with the YAML 1.1 schema; text that may hold an alias goes to the
    guarded PyYAML loader instead (pyrs-yaml has no alias-expansion limit)."""
    import pyrs_yaml

    g_all, g_one = _pyyaml_guarded()

    def load_all(t: str) -> list[Any]:
        if "*" in t and ALIAS_TOKEN.search(t):
            return g_all(t)
        return list(pyrs_yaml.safe_loads(t, schema="yaml1.1"))

    def load_one(t: str) -> Any:
        if "*" in t and ALIAS_TOKEN.search(t):
            return g_one(t)
        return pyrs_yaml.safe_load(t, schema="yaml1.1")

    return load_all, load_one


def _pyyaml_nots() -> tuple[Loader, Loader]:
    import yaml

    class NoTimestamp(yaml.CSafeLoader):
        pass

    NoTimestamp.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.CSafeLoader.yaml_implicit_resolvers.items()
    }
    return (lambda t: list(yaml.load_all(t, Loader=NoTimestamp))), (
        lambda t: yaml.load(t, Loader=NoTimestamp)
    )


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in [
        Candidate(
            "pyyaml-c",
            "PyYAML",
            "yaml",
            lambda: _pyyaml("c"),
            "yaml.CSafeLoader (libyaml), YAML 1.1",
        ),
        Candidate(
            "pyyaml-c-k8s",
            "PyYAML",
            "yaml",
            lambda: _pyyaml("k8s"),
            "CSafeLoader + go-yaml-v2 resolvers (reference)",
        ),
        Candidate(
            "pyyaml-c-nots",
            "PyYAML",
            "yaml",
            _pyyaml_nots,
            "CSafeLoader minus the timestamp resolver only",
        ),
        Candidate(
            "pyyaml-c-marks",
            "PyYAML",
            "yaml",
            _pyyaml_marks,
            "CSafeLoader via compose API: node.start_mark per document",
        ),
        Candidate(
            "pyyaml-c-guarded",
            "PyYAML",
            "yaml",
            _pyyaml_guarded,
            "CSafeLoader + K8s resolvers + compose API (lines) + alias-expansion check",
        ),
        Candidate(
            "fastyaml-rs+k8s",
            "fastyaml-rs",
            "fast_yaml",
            _hybrid,
            "fastyaml-rs; docs with 1.1-only tokens re-parsed by CSafeLoader+K8s",
        ),
        Candidate(
            "pyyaml-py",
            "PyYAML",
            "yaml",
            lambda: _pyyaml("py"),
            "pure-Python SafeLoader",
            slow=True,
        ),
        Candidate(
            "ruamel-c",
            "ruamel.yaml",
            "ruamel.yaml",
            lambda: _ruamel(False),
            "YAML(typ='safe') with ruamel.yaml.clib CParser, YAML 1.2",
            slow=True,
        ),
        Candidate(
            "ruamel-pure",
            "ruamel.yaml",
            "ruamel.yaml",
            lambda: _ruamel(True),
            "YAML(typ='safe', pure=True)",
            slow=True,
        ),
        Candidate(
            "rapidyaml-walk",
            "rapidyaml",
            "ryml",
            _ryml_walk,
            "ryml tree walked from Python (SWIG calls per node)",
        ),
        Candidate(
            "rapidyaml-json",
            "rapidyaml",
            "ryml",
            _ryml_json,
            "ryml parse + emit_json + orjson.loads",
        ),
        Candidate(
            "rapidyaml-json-guarded",
            "rapidyaml",
            "ryml",
            _ryml_json_guarded,
            "ryml JSON + orjson; typed-looking strings re-parsed by pyrs-yaml yaml1.1",
        ),
        Candidate("yaml-rs", "yaml-rs", "yaml_rs", _yaml_rs, "yaml_rs.loads(parse_datetime=False)"),
        Candidate(
            "fastyaml-rs",
            "fastyaml-rs",
            "fast_yaml",
            _simple("fast_yaml", "safe_load_all", "safe_load"),
            "fast_yaml.safe_load_all",
        ),
        Candidate(
            "ryaml", "ryaml", "ryaml", _simple("ryaml", "loads_all", "loads"), "ryaml.loads_all"
        ),
        Candidate(
            "pyyaml-rs",
            "pyyaml-rs",
            "pyyaml_rs",
            _simple("pyyaml_rs", "safe_load_all", "safe_load"),
            "pyyaml_rs.safe_load_all",
        ),
        Candidate(
            "xoryaml",
            "xoryaml",
            "xoryaml",
            _simple("xoryaml", "loads_all", "loads"),
            "xoryaml.loads_all (yaml-rust2)",
        ),
        Candidate(
            "rustyyaml",
            "rustyyaml",
            "rustyyaml",
            _simple("rustyyaml", "load_all", "safe_load"),
            "rustyyaml.load_all",
        ),
        Candidate("py-yaml12", "py-yaml12", "yaml12", _yaml12, "yaml12.parse_yaml(multi=True)"),
        Candidate(
            "pyrs-yaml",
            "pyrs-yaml",
            "pyrs_yaml",
            lambda: _pyrs("core"),
            "pyrs_yaml.safe_loads(schema='core')",
        ),
        Candidate(
            "pyrs-yaml-1.1",
            "pyrs-yaml",
            "pyrs_yaml",
            lambda: _pyrs("yaml1.1"),
            "pyrs_yaml.safe_loads(schema='yaml1.1')",
        ),
        Candidate(
            "pyrs-yaml-1.1+guard",
            "pyrs-yaml",
            "pyrs_yaml",
            _pyrs_guarded,
            "schema='yaml1.1'; text with an alias token goes to pyyaml-c-guarded",
        ),
        Candidate(
            "libfyaml",
            "libfyaml",
            "libfyaml",
            lambda: _libfyaml("yaml"),
            "libfyaml.loads_all(...).to_python()",
        ),
        Candidate(
            "libfyaml-1.1",
            "libfyaml",
            "libfyaml",
            lambda: _libfyaml("yaml1.1"),
            "libfyaml.loads_all(mode='yaml1.1')",
        ),
        Candidate("oryaml", "oryaml", "oryaml", _oryaml, "oryaml.loads"),
        Candidate(
            "turboyaml", "rs-turboyaml", "turboyaml", _turbo, "turboyaml.load(yaml_1_1_bools=True)"
        ),
        Candidate("yamlstar", "yamlstar", "yamlstar", _yamlstar, "YAMLStar().load_all", slow=True),
    ]
}

# ---------------------------------------------------------------------------
# Corpus
# ---------------------------------------------------------------------------


def read_corpus(d: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    yaml_files, json_files = [], []
    for p in sorted(d.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(d))
        if p.suffix in (".yaml", ".yml"):
            yaml_files.append((rel, p.read_text(encoding="utf-8")))
        elif p.suffix == ".json":
            json_files.append((rel, p.read_text(encoding="utf-8")))
    return yaml_files, json_files


def _digest(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()[:12]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def parse_stream(load_all: Loader, files: list[tuple[str, str]]) -> list[list[Any]]:
    return [[d for d in load_all(t) if d is not None] for _, t in files]


def parse_split(load_one: Loader, files: list[tuple[str, str]]) -> list[list[Any]]:
    out = []
    for _, t in files:
        docs = []
        for _line, chunk in split_documents(t):
            if _blank(chunk):
                continue
            d = load_one(chunk)
            if d is not None:
                docs.append(d)
        out.append(docs)
    return out


# ---------------------------------------------------------------------------
# Worker tasks (run in a subprocess)
# ---------------------------------------------------------------------------

QUIRKS = """\
on_: on
y_: y
no_: NO
octal: 0777
octal12: 0o17
bin: 0b101
under: 1_000
sci: 1e3
sexa: 12:30
tilde: ~
date: 2024-01-01
tagstr: !!str 0777
base: &base {cpu: 100m, memory: 128Mi}
merged:
  <<: *base
  memory: 1Gi
dupe: 1
dupe: 2
"""
# What go-yaml v2 (sigs.k8s.io/yaml, so kubectl and the API server) makes of them.
# A duplicate key is last-wins there (an error under strict decoding).
GO_YAML_V2: dict[str, Any] = {
    "on_": True,
    "y_": True,
    "no_": False,
    "octal": 511,
    "octal12": 15,
    "bin": 5,
    "under": 1000,
    "sci": 1000.0,
    "sexa": "12:30",
    "tilde": None,
    "date": "2024-01-01",
    "tagstr": "0777",
    "merged": {"cpu": "100m", "memory": "1Gi"},
    "dupe": 2,
}
QUIRK_KEYS = list(GO_YAML_V2)


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\n"


def _expanded_size(obj: Any) -> tuple[int, int]:
    """(unique containers, nodes if fully expanded), memoised on identity."""
    memo: dict[int, int] = {}

    def size(x: Any) -> int:
        if isinstance(x, dict | list):
            k = id(x)
            if k in memo:
                return memo[k]
            vals = x.values() if isinstance(x, dict) else x
            s = 1 + sum(size(v) for v in vals)
            memo[k] = s
            return s
        return 1

    total = size(obj)
    return len(memo), total


def task_bench(c: Candidate, d: Path, repeat: int) -> dict[str, Any]:
    yaml_files, _ = read_corpus(d)
    if c.slow:  # every 8th file: MB/s is what we compare
        yaml_files = yaml_files[::8]
    nbytes = sum(len(t.encode()) for _, t in yaml_files)
    load_all, load_one = c.factory()
    res: dict[str, Any] = {"bytes": nbytes, "files": len(yaml_files), "sample": c.slow}
    gc.collect()
    res["rss_base_mib"] = rss_mib()
    for mode in ("stream", "split"):

        def fn(mode: str = mode) -> list[list[Any]]:
            if mode == "stream":
                return parse_stream(load_all, yaml_files)
            return parse_split(load_one, yaml_files)

        # 1. one pass keeping every document, garbage collector on (as a scanner runs)
        try:
            w0, c0 = time.perf_counter(), time.process_time()
            kept = fn()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        except Exception as e:
            res[mode] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
            continue
        r: dict[str, Any] = {
            "docs": sum(len(x) for x in kept),
            "retained_wall_s": wall,
            "retained_cpu_s": cpu,
            "digests": {name: _digest(x) for (name, _), x in zip(yaml_files, kept, strict=True)},
        }
        if mode == "stream":
            r["rss_peak_mib"] = rss_mib()
        del kept
        gc.collect()
        # 2. best of `repeat` passes with the collector off: the parser's own cost.
        #    CPU time, so that other load on the machine does not count.
        cpus, walls = [], []
        for _ in range(repeat):
            gc.disable()
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
            gc.enable()
            gc.collect()
        r["best_cpu_s"], r["best_wall_s"] = min(cpus), min(walls)
        res[mode] = r
    # cost of the split itself (regex + slicing), parser excluded
    c0 = time.process_time()
    n = sum(1 for _, t in yaml_files for _ in split_documents(t))
    res["split_only_cpu_s"] = time.process_time() - c0
    res["chunks"] = n
    return res


def task_quirks(c: Candidate) -> dict[str, Any]:
    _, load_one = c.factory()
    res: dict[str, Any] = {}
    doc: Any
    try:
        doc = load_one(QUIRKS)
    except Exception as e:
        # duplicate keys are an error for some: retry without them
        res["dupe_error"] = f"{type(e).__name__}: {str(e)[:160]}"
        try:
            doc = load_one(QUIRKS.replace("dupe: 2\n", ""))
            doc["dupe"] = "<error>"
        except Exception as e2:
            return {"error": f"{type(e2).__name__}: {str(e2)[:160]}"}
    res["values"] = {k: repr(doc.get(k, "<missing>")) for k in QUIRK_KEYS}
    res["match"] = [
        k
        for k in QUIRK_KEYS
        if _same(doc.get(k), GO_YAML_V2[k]) or (k == "dupe" and "dupe_error" in res)
    ]
    return res


def task_bomb(c: Candidate) -> dict[str, Any]:
    limit = 2 * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    _, load_one = c.factory()
    text = billion_laughs(9)
    t0 = time.perf_counter()
    try:
        docs = load_one(text)
    except MemoryError:
        return {"outcome": "MemoryError", "s": time.perf_counter() - t0, "rss_mib": rss_mib()}
    except Exception as e:
        return {
            "outcome": "rejected",
            "error": f"{type(e).__name__}: {str(e)[:200]}",
            "s": time.perf_counter() - t0,
            "rss_mib": rss_mib(),
        }
    s = time.perf_counter() - t0
    unique, expanded = _expanded_size(docs)
    return {
        "outcome": "loaded",
        "s": s,
        "rss_mib": rss_mib(),
        "unique_containers": unique,
        "expanded_nodes": expanded,
    }


def task_json(d: Path, repeat: int) -> dict[str, Any]:
    import orjson
    import yaml

    yaml_files, json_files = read_corpus(d)
    loader = k8s_pyyaml_loader(yaml.CSafeLoader)
    docs = [x for _, t in yaml_files for x in yaml.load_all(t, Loader=loader) if x is not None]
    corpus_json = [json.dumps(x) for x in docs]
    out: dict[str, Any] = {}
    inputs = (("json files", [t for _, t in json_files]), ("corpus as JSON", corpus_json))
    for label, texts in inputs:
        nbytes = sum(len(t.encode()) for t in texts)
        row: dict[str, Any] = {"bytes": nbytes, "docs": len(texts)}
        for lib, fn in (("json", json.loads), ("orjson", orjson.loads)):
            row[lib] = min(_timed(fn, texts) for _ in range(max(repeat, 5)))
        out[label] = row
    return out


def _timed(fn: Callable[[str], Any], texts: list[str]) -> float:
    gc.disable()
    c0 = time.process_time()
    for t in texts:
        fn(t)
    cpu = time.process_time() - c0
    gc.enable()
    return cpu


def worker(args: argparse.Namespace) -> int:
    if args.task == "json":
        print(json.dumps(task_json(Path(args.dir), args.repeat)))
        return 0
    c = CANDIDATES[args.worker]
    if args.task == "bench":
        r = task_bench(c, Path(args.dir), args.repeat)
    elif args.task == "quirks":
        r = task_quirks(c)
    else:
        r = task_bomb(c)
    print(json.dumps(r))
    return 0


# ---------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------


def run_worker(name: str, task: str, d: str, repeat: int, timeout: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--task",
        task,
        "--dir",
        d,
        "--repeat",
        str(repeat),
    ]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"outcome": "timeout", "s": time.perf_counter() - t0}
    if p.returncode != 0:
        sig = -p.returncode if p.returncode < 0 else None
        why = signal.Signals(sig).name if sig else f"exit {p.returncode}"
        tail = (p.stderr.strip().splitlines() or [""])[-1][:200]
        return {"outcome": f"killed ({why})", "stderr": tail, "s": time.perf_counter() - t0}
    try:
        return dict(json.loads(p.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError):
        return {"outcome": "no output", "stderr": p.stderr[-300:]}


def dist_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="", help="directory of manifests")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated candidate names")
    ap.add_argument("--json", default="", help="also write raw results to this file")
    ap.add_argument("--from-json", default="", help="print the tables of an earlier --json")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--task", default="bench", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker or args.task == "json":
        return worker(args)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        print_tables(saved["results"], saved["json"], saved.get("machine", ""))
        return 0
    if not args.dir:
        ap.error("--dir is required")

    names = [n for n in args.only.split(",") if n] or list(CANDIDATES)
    results: dict[str, Any] = {}
    machine = (
        f"CPython {sys.version.split()[0]}, {sys.platform}, {os.cpu_count()} CPUs, "
        f"{os.path.basename(args.dir.rstrip('/'))}"
    )
    print(machine, file=sys.stderr)
    for name in names:
        c = CANDIDATES[name]
        ver = dist_version(c.dist)
        if ver is None:
            results[name] = {"version": None}
            print(f"  {name}: not installed", file=sys.stderr)
            continue
        print(f"  {name} {ver} ...", file=sys.stderr, flush=True)
        results[name] = {
            "version": ver,
            "dist": c.dist,
            "note": c.note,
            "bench": run_worker(name, "bench", args.dir, args.repeat, 3600),
            "quirks": run_worker(name, "quirks", args.dir, 1, 60),
            "bomb": run_worker(name, "bomb", args.dir, 1, 30),
        }
    json_res = run_worker("", "json", args.dir, args.repeat, 600)
    print_tables(results, json_res, machine)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": machine, "results": results, "json": json_res}, indent=1)
        )
    return 0


def _mode_cells(b: dict[str, Any], mode: str, ref: dict[str, str] | None) -> list[str]:
    r = b.get(mode)
    if not isinstance(r, dict):
        return [b.get("outcome", "-"), "", "", ""]
    if "error" in r:
        return ["error", "", "", r["error"].split(":")[0]]
    mbs = b["bytes"] / 1e6 / r["best_cpu_s"]
    dps = r["docs"] / r["best_cpu_s"]
    if ref is None:
        ok = "?"
    else:
        common = [f for f in r["digests"] if f in ref]
        bad = sum(1 for f in common if r["digests"][f] != ref[f])
        ok = "same" if bad == 0 and common else f"{bad}/{len(common)} files differ"
    return [f"{r['best_cpu_s']:.2f}", f"{mbs:.1f}", f"{dps:,.0f}", ok]


def print_tables(results: dict[str, Any], json_res: dict[str, Any], machine: str) -> None:
    ref_b = results.get("pyyaml-c-k8s", {}).get("bench", {}).get("stream")
    ref = ref_b.get("digests") if isinstance(ref_b, dict) else None
    any_b = next(
        (
            r["bench"]
            for r in results.values()
            if r.get("version")
            and "split_only_cpu_s" in r.get("bench", {})
            and not r["bench"].get("sample")
        ),
        None,
    )
    print(f"\n{machine}")
    if any_b:
        print(
            f"corpus: {any_b['files']} YAML files, {any_b['bytes'] / 1e6:.1f} MB, "
            f"{any_b['chunks']} chunks after splitting"
        )
    print("\n## Throughput\n")
    print(
        "CPU seconds, best of --repeat with the garbage collector off; MB/s and docs/s from "
        "those.\n`kept s`: one pass keeping every document with the collector on (wall "
        "clock).\n`RSS`: peak RSS MiB after that pass (process baseline in brackets).\n"
        "`vs ref`: documents equal to pyyaml-c-k8s (go-yaml v2 scalars), file by file.\n"
        "`*`: timed on every 8th file.\n"
    )
    print(
        "| parser | version | stream s | MB/s | docs/s | split s | MB/s | docs/s "
        "| kept s | RSS | vs ref (stream / split) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        if r.get("version") is None:
            print(f"| {name} | not installed |  |  |  |  |  |  |  |  |  |")
            continue
        b = r["bench"]
        if "bytes" not in b:
            print(
                f"| {name} | {r['version']} | {b.get('outcome', '?')} |  |  |  |  |  |  |  "
                f"| {b.get('stderr', '')[:60]} |"
            )
            continue
        st = _mode_cells(b, "stream", ref)
        sp = _mode_cells(b, "split", ref)
        sr = b.get("stream") if isinstance(b.get("stream"), dict) else {}
        kept = f"{sr['retained_wall_s']:.2f}" if "retained_wall_s" in sr else ""
        rss = f"{sr['rss_peak_mib']:.0f} ({b['rss_base_mib']:.0f})" if "rss_peak_mib" in sr else ""
        ok = st[3] if st[3] == sp[3] else f"{st[3]} / {sp[3]}"
        star = "*" if b.get("sample") else ""
        print(
            f"| {name}{star} | {r['version']} | {' | '.join(st[:3])} | {' | '.join(sp[:3])} "
            f"| {kept} | {rss} | {ok} |"
        )
    if any_b:
        print(
            f"\nsplit regex alone: {any_b['split_only_cpu_s'] * 1000:.0f} ms CPU for "
            f"{any_b['chunks']} chunks ({any_b['bytes'] / 1e6:.1f} MB)"
        )

    print("\n## Scalars and keys (first row: go-yaml v2 as Kubernetes uses it)\n")
    print("| parser | as K8s | " + " | ".join(QUIRK_KEYS) + " |")
    print("|---|---|" + "---|" * len(QUIRK_KEYS))
    exp = [repr(GO_YAML_V2[k]) for k in QUIRK_KEYS]
    print(f"| go-yaml v2 | {len(QUIRK_KEYS)}/{len(QUIRK_KEYS)} | " + " | ".join(exp) + " |")
    for name, r in results.items():
        if r.get("version") is None:
            continue
        q = r["quirks"]
        if "values" in q:
            vals = [q["values"].get(k, "") for k in QUIRK_KEYS]
            score = f"{len(q['match'])}/{len(QUIRK_KEYS)}"
            print(f"| {name} | {score} | " + " | ".join(v.replace("|", "\\|") for v in vals) + " |")
        else:
            print(f"| {name} | 0 | {q.get('error', q.get('outcome', '?'))[:90]} |")

    print("\n## Billion laughs (9 levels, 2 GiB address-space limit, 30 s timeout)\n")
    print("| parser | outcome | seconds | peak RSS MiB | detail |")
    print("|---|---|---:|---:|---|")
    for name, r in results.items():
        if r.get("version") is None:
            continue
        b = r["bomb"]
        detail = b.get("error") or b.get("stderr") or ""
        if b.get("outcome") == "loaded":
            detail = (
                f"{b['unique_containers']} unique containers, "
                f"{b['expanded_nodes']:,} nodes if walked"
            )
        rss = b.get("rss_mib")
        print(
            f"| {name} | {b.get('outcome')} | {b.get('s', 0):.2f} | "
            f"{'' if rss is None else round(rss)} | {detail[:100].replace('|', '/')} |"
        )

    if json_res and "outcome" not in json_res:
        print("\n## JSON (CPU seconds, best of 5, collector off)\n")
        print("| input | MB | docs | json s | json MB/s | orjson s | orjson MB/s |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, row in json_res.items():
            mb = row["bytes"] / 1e6
            js, oj = max(row["json"], 1e-9), max(row["orjson"], 1e-9)
            print(
                f"| {label} | {mb:.2f} | {row['docs']} | {js:.3f} | {mb / js:.0f} | "
                f"{oj:.3f} | {mb / oj:.0f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
