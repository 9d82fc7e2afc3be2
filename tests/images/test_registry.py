"""The registry client against a real OCI distribution registry on 127.0.0.1: images pushed
by tag and read back by tag and digest, a multi-arch index, distroless status.d, basic
authentication from a docker config.json, clear errors, and — through a small proxy that
injects faults a real registry does not produce — retries and digest verification."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from images.builders import Blobs, file, layer_tar, symlink
from images.registry_server import REGISTRY_BINARY, Registry, running_registry
from kubeproof.images.errors import ImageError
from kubeproof.images.manifest import Platform
from kubeproof.images.reader import read_image
from kubeproof.images.registry import RegistryClient, RegistryError

pytestmark = pytest.mark.integration
SITE = "usr/lib/python3/dist-packages"


@pytest.fixture(scope="module")
def pushed(
    registry: Registry, dpkg_status: bytes, os_release: bytes, python_metadata: tuple[str, bytes]
) -> dict[str, str]:
    """Pushes the test images once; returns their manifest digests by name."""
    dist_info, metadata = python_metadata
    blobs = Blobs()
    base = layer_tar(
        symlink("etc/os-release", "../usr/lib/os-release"),
        file("usr/lib/os-release", os_release),
        file("var/lib/dpkg/status", dpkg_status),
        file(f"{SITE}/{dist_info}/METADATA", metadata),
        file(f"{SITE}/gone-1.0.dist-info/METADATA", "Name: gone\nVersion: 1.0\n"),
    )
    upper = layer_tar(file(f"{SITE}/.wh.gone-1.0.dist-info", b""))
    debian = blobs.image([base, upper], docker=True)  # Docker v2 schema 2
    registry.push("kp/debian", blobs, "12", debian)

    blobs = Blobs()
    amd = blobs.image(
        [
            layer_tar(
                file("etc/alpine-release", "3.19.1\n"),
                file("lib/apk/db/installed", "P:musl\nV:1.2.4-r2\no:musl\n"),
            )
        ]
    )
    arm = blobs.image(
        [
            layer_tar(
                file("etc/alpine-release", "3.19.1\n"),
                file("lib/apk/db/installed", "P:musl\nV:1.2.4-r3\no:musl\n"),
            )
        ],
        platform=("linux", "arm64"),
    )
    index = blobs.index([(amd, ("linux", "amd64", None)), (arm, ("linux", "arm64", "v8"))])
    registry.push("kp/multi", blobs, "latest", index)

    blobs = Blobs()
    distroless = blobs.image(
        [
            layer_tar(
                file("etc/os-release", 'ID=debian\nVERSION_ID="12"\n'),
                file(
                    "var/lib/dpkg/status.d/libssl3",
                    "Package: libssl3\nVersion: 3.0.11-1~deb12u2\n"
                    "Source: openssl\nArchitecture: amd64\n",
                ),
            )
        ],
        compression="zstd",
    )
    registry.push("kp/distroless", blobs, "nonroot", distroless)
    return {
        "debian": debian["digest"],
        "multi": index["digest"],
        "amd": amd["digest"],
        "arm": arm["digest"],
        "distroless": distroless["digest"],
    }


def test_reads_pushed_debian_image_by_tag_and_digest(
    registry: Registry,
    pushed: dict[str, str],
    dpkg_installed: set[tuple[str, str, str, str]],
    python_metadata: tuple[str, bytes],
) -> None:
    by_tag = read_image(f"{registry.host}/kp/debian:12")
    by_digest = read_image(f"{registry.host}/kp/debian@{pushed['debian']}")
    assert by_tag.digest == by_digest.digest == pushed["debian"]
    assert {
        (p.name, p.version, p.advisory_name, p.advisory_version)
        for p in by_tag.packages
        if p.type == "deb"
    } == dpkg_installed
    assert [p.name for p in by_tag.packages if p.type == "pypi"] == ["pytest"]  # gone: whiteout
    assert by_tag.packages == by_digest.packages


def test_multi_arch_index_and_distroless(registry: Registry, pushed: dict[str, str]) -> None:
    amd = read_image(f"{registry.host}/kp/multi")
    arm = read_image(f"{registry.host}/kp/multi:latest", Platform.parse("linux/arm64/v8"))
    assert (amd.digest, [p.version for p in amd.packages]) == (pushed["amd"], ["1.2.4-r2"])
    assert (arm.digest, [p.version for p in arm.packages]) == (pushed["arm"], ["1.2.4-r3"])
    distroless = read_image(f"{registry.host}/kp/distroless:nonroot")
    assert [(p.name, p.advisory_name) for p in distroless.packages] == [("libssl3", "openssl")]


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("kp/debian:13", "404 manifest kp/debian:13 not found"),
        ("kp/nothing:1", "404 manifest kp/nothing:1 not found"),
        ("kp/debian@sha256:" + "0" * 64, "404 manifest kp/debian@sha256:0+ not found"),
    ],
)
def test_not_found_is_clear(
    registry: Registry, pushed: dict[str, str], reference: str, message: str
) -> None:
    with pytest.raises(RegistryError, match=message):
        read_image(f"{registry.host}/{reference}")


def test_unreachable_registry_is_clear() -> None:
    from images.registry_server import free_port

    client = RegistryClient(f"127.0.0.1:{free_port()}", retries=2, backoff=0.01, timeout=2)
    with pytest.raises(RegistryError, match="cannot reach it"):
        client.get_manifest("a/b", "1")


def _write_docker_config(directory: Path, host: str, user: str, password: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return directory / "config.json"


def test_basic_auth_with_htpasswd_and_docker_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python_metadata: tuple[str, bytes]
) -> None:
    bcrypt = pytest.importorskip("bcrypt")
    if not Path(REGISTRY_BINARY).exists():
        pytest.skip("docker-registry is not installed (scripts/registry.sh)")
    password = "s3cret-Pa55word"
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_bytes(b"pusher:" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)) + b"\n")
    with running_registry(tmp_path, htpasswd) as server:
        server.authorization = "Basic " + base64.b64encode(f"pusher:{password}".encode()).decode()
        blobs = Blobs()
        dist_info, metadata = python_metadata
        top = blobs.image([layer_tar(file(f"{SITE}/{dist_info}/METADATA", metadata))])
        server.push("private/app", blobs, "v1", top)
        reference = f"{server.host}/private/app:v1"

        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "empty"))
        with pytest.raises(RegistryError, match="needs credentials and none are configured"):
            read_image(reference)

        wrong = _write_docker_config(tmp_path / "wrong", server.host, "pusher", "nope")
        with pytest.raises(RegistryError, match="401 unauthorized") as error:
            read_image(reference, registry_config=wrong)
        assert "nope" not in str(error.value)

        good = _write_docker_config(tmp_path / "good", server.host, "pusher", password)
        assert read_image(reference, registry_config=good).digest == top["digest"]
        monkeypatch.setenv("DOCKER_CONFIG", str(good.parent))
        image = read_image(reference)
        assert [p.name for p in image.packages] == ["pytest"]
        assert password not in repr(image)

        # The docker credential helper protocol: credHelpers per registry, credsStore for all.
        bin_directory = tmp_path / "bin"
        bin_directory.mkdir()
        helper = bin_directory / "docker-credential-kptest"
        helper.write_text(
            "#!/bin/sh\nread server\n"
            f'if [ "$server" = "{server.host}" ]; then\n'
            f'  printf \'{{"Username": "pusher", "Secret": "{password}"}}\'\n'
            "else echo 'credentials not found in native keychain'; exit 1; fi\n"
        )
        helper.chmod(0o755)
        failing = bin_directory / "docker-credential-broken"
        failing.write_text(f"#!/bin/sh\necho 'leaked {password}' >&2\nexit 3\n")
        failing.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_directory}:/usr/bin:/bin")
        helpers = tmp_path / "helpers" / "config.json"
        helpers.parent.mkdir()
        helpers.write_text(json.dumps({"credHelpers": {server.host: "kptest"}}))
        assert read_image(reference, registry_config=helpers).digest == top["digest"]
        helpers.write_text(json.dumps({"credsStore": "broken"}))
        with pytest.raises(ImageError, match="docker-credential-broken failed") as error:
            read_image(reference, registry_config=helpers)
        assert password not in str(error.value)


class _FaultProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to the real registry, after answering `failures` requests with 503 (with
    Retry-After 0) and flipping a byte of blob bodies when `tamper` is set."""

    upstream = ""
    failures = 0
    tamper = False
    seen: list[int] = []

    def do_GET(self) -> None:
        cls = type(self)
        if cls.failures > 0:
            cls.failures -= 1
            cls.seen.append(503)
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        request = urllib.request.Request(
            cls.upstream + self.path, headers={"Accept": self.headers.get("Accept", "*/*")}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, headers, body = error.code, error.headers, error.read()
        if cls.tamper and "/blobs/" in self.path and body:
            body = body[:-1] + bytes([body[-1] ^ 1])
        cls.seen.append(status)
        self.send_response(status)
        for name in ("Content-Type", "Docker-Content-Digest"):
            if headers.get(name):
                self.send_header(name, headers[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fault_proxy(registry: Registry) -> Iterator[type[_FaultProxy]]:
    handler = type("Proxy", (_FaultProxy,), {"upstream": f"http://{registry.host}", "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.address = f"127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_retries_503_with_backoff_then_succeeds(
    fault_proxy: type[_FaultProxy], pushed: dict[str, str]
) -> None:
    fault_proxy.failures = 2
    address = fault_proxy.address  # type: ignore[attr-defined]
    image = read_image(f"{address}/kp/multi:latest")
    assert image.digest == pushed["amd"]
    assert fault_proxy.seen[:3] == [503, 503, 200]
    fault_proxy.failures = 10
    client = RegistryClient(address, retries=3, backoff=0.01)
    with pytest.raises(RegistryError, match="HTTP 503"):
        client.get_manifest("kp/multi", "latest")


def test_tampered_blob_from_registry_is_rejected(
    fault_proxy: type[_FaultProxy], pushed: dict[str, str]
) -> None:
    fault_proxy.tamper = True
    with pytest.raises(ImageError, match="digest mismatch"):
        read_image(f"{fault_proxy.address}/kp/distroless:nonroot")  # type: ignore[attr-defined]


class _SlowProxy(_FaultProxy):
    """Answers its first request only after the client's timeout has passed."""

    delays = 1

    def do_GET(self) -> None:
        cls = type(self)
        if cls.delays > 0:
            cls.delays -= 1
            time.sleep(1.0)
        super().do_GET()


def test_timeout_is_retried(registry: Registry, pushed: dict[str, str]) -> None:
    handler = type("Slow", (_SlowProxy,), {"upstream": f"http://{registry.host}", "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = RegistryClient(f"127.0.0.1:{server.server_address[1]}", timeout=0.3, backoff=0.01)
        _, _, digest = client.get_manifest("kp/multi", "latest")
        assert digest == pushed["multi"]
        handler.delays = 5
        client = RegistryClient(
            f"127.0.0.1:{server.server_address[1]}", timeout=0.2, retries=2, backoff=0.01
        )
        with pytest.raises(RegistryError, match="cannot reach it"):
            client.get_manifest("kp/multi", "latest")
    finally:
        server.shutdown()
        server.server_close()
