"""A real Go binary for the tests: `go build` of a tiny module that requires
golang.org/x/text v0.3.7, replaced by a local directory so no network is needed."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

# Captured at import, before fixtures point XDG_CACHE_HOME at a temporary directory: the
# go build cache stays warm (a cold one compiles the standard library for a minute).
_ENVIRONMENT = dict(os.environ)

_FILES = {
    "lib/go.mod": "module golang.org/x/text\n\ngo 1.21\n",
    "lib/text.go": 'package text\n\nfunc Hello() string { return "hello" }\n',
    "app/go.mod": (
        "module example.com/app\n\ngo 1.21\n\nrequire golang.org/x/text v0.3.7\n\n"
        "replace golang.org/x/text => ../lib\n"
    ),
    "app/main.go": (
        'package main\n\nimport (\n\t"fmt"\n\n\ttext "golang.org/x/text"\n)\n\n'
        "func main() { fmt.Println(text.Hello()) }\n"
    ),
}


@dataclass(frozen=True)
class GoBinary:
    data: bytes
    go_version: str  # go1.26.8, as `go env GOVERSION` says


def _go(arguments: list[str], directory: Path) -> str:
    environment = {
        **_ENVIRONMENT,
        "CGO_ENABLED": "0",
        "GOOS": "linux",
        "GOARCH": "amd64",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOWORK": "off",
        "GOFLAGS": "-mod=mod",
    }
    return subprocess.run(
        ["go", *arguments],
        cwd=directory,
        env=environment,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout


@functools.cache
def go_binary() -> GoBinary:
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain on this machine")
    with tempfile.TemporaryDirectory(prefix="kubeproof-go-") as directory:
        root = Path(directory)
        for name, text in _FILES.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        _go(["build", "-o", "app", "."], root / "app")
        version = _go(["env", "GOVERSION"], root / "app").strip()
        return GoBinary((root / "app" / "app").read_bytes(), version)
