"""An OSV mirror on 127.0.0.1 serving <ecosystem>/all.zip archives built by the tests."""

from __future__ import annotations

import functools
import http.server
import json
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vulndb.advisories import ALPINE, DEBIAN, GO, NPM, PYPI


def write_archive(
    path: Path, records: list[dict[str, Any]], extra: dict[str, bytes] | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
        for name, data in (extra or {}).items():
            archive.writestr(name, data)


@pytest.fixture
def osv_root(tmp_path: Path) -> Path:
    root = tmp_path / "osv"
    write_archive(root / "Debian" / "all.zip", DEBIAN)
    write_archive(root / "Alpine" / "all.zip", ALPINE)
    write_archive(root / "PyPI" / "all.zip", PYPI)
    write_archive(root / "Go" / "all.zip", GO)
    write_archive(root / "npm" / "all.zip", NPM)
    return root


@pytest.fixture
def osv_server(osv_root: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(osv_root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KUBEPROOF_VULNDB", raising=False)
