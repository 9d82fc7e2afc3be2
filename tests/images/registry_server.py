"""A real OCI distribution registry (Debian's docker-registry) on 127.0.0.1 for tests, and
a minimal push client (OCI distribution push: POST upload, PUT blob, PUT manifest)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from images.builders import Blobs

REGISTRY_BINARY = "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    authorization: str | None = None  # for pushes

    def request(
        self,
        method: str,
        url: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        if not url.startswith("http"):
            url = f"http://{self.host}{url}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, dict(error.headers), error.read()

    def push_blob(self, repository: str, data: bytes, digest: str) -> None:
        status, headers, body = self.request("POST", f"/v2/{repository}/blobs/uploads/")
        assert status == 202, (status, body)
        location = headers["Location"]
        separator = "&" if "?" in location else "?"
        status, _, body = self.request(
            "PUT",
            f"{location}{separator}digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        assert status == 201, (status, body)

    def push(self, repository: str, blobs: Blobs, tag: str, top: dict[str, Any]) -> None:
        """Push every blob, then manifests (children before the index that names them)."""
        documents = {d: data for d, data in blobs.blobs.items() if _is_manifest(data)}
        for digest, data in blobs.blobs.items():
            if digest not in documents:
                self.push_blob(repository, data, digest)
        for digest, data in sorted(documents.items(), key=lambda item: _is_index(item[1])):
            reference = tag if digest == top["digest"] else digest
            media_type = json.loads(data)["mediaType"]
            status, _, body = self.request(
                "PUT", f"/v2/{repository}/manifests/{reference}", data, {"Content-Type": media_type}
            )
            assert status == 201, (status, body)


def _is_manifest(data: bytes) -> bool:
    try:
        document = json.loads(data)
    except ValueError:
        return False
    return isinstance(document, dict) and document.get("schemaVersion") == 2


def _is_index(data: bytes) -> bool:
    return "manifests" in json.loads(data)


@contextmanager
def running_registry(
    directory: Path, htpasswd: Path | None = None, token_auth: str = ""
) -> Iterator[Registry]:
    """A registry on a free loopback port; `token_auth` is an `auth:` YAML block."""
    if shutil.which(REGISTRY_BINARY) is None:
        raise RuntimeError(f"{REGISTRY_BINARY} is missing: run scripts/registry.sh")
    port = free_port()
    auth = (
        f"auth:\n  htpasswd:\n    realm: kubeproof-test\n    path: {htpasswd}\n"
        if htpasswd
        else token_auth
    )
    config = directory / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: test-only-secret\n{auth}"
    )
    log = (directory / "registry.log").open("wb")
    process = subprocess.Popen(
        [REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "registry did not start: "
                        + (directory / "registry.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.05)
        yield Registry(f"127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
