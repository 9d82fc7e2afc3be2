"""A "registry" on 127.0.0.1 that answers with malformed HTTP (no status line, too many
headers, a header line too long, a broken chunk) or JSON nested too deeply: each is a
RegistryError naming the registry and the URL, which `kubeproof scan --images` reports as
an image not evaluated, never an http.client traceback."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator

import pytest

from kubeproof.images.assess import PullOptions, _pulled
from kubeproof.images.registry import RegistryClient, RegistryError
from kubeproof.images.running import RunningImage

DEEP = b"[" * 100_000 + b"]" * 100_000
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ\r\n"


def answer(status: str, body: bytes = b"", *headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers, "", ""]
    return "\r\n".join(lines).encode() + body


class _Canned(socketserver.BaseRequestHandler):
    """Answers each request with the bytes `answers` holds for its path (the 401 that sends
    clients to /token names this server as the realm)."""

    answers: dict[str, bytes] = {}

    def handle(self) -> None:
        request = b""
        while b"\r\n\r\n" not in request and (chunk := self.request.recv(4096)):
            request += chunk
        path = request.split(b" ")[1].decode().split("?")[0] if request else ""
        self.request.sendall(type(self).answers.get(path, answer("404 Not Found")))


@pytest.fixture
def canned() -> Iterator[tuple[str, dict[str, bytes]]]:
    answers: dict[str, bytes] = {}
    handler = type("Canned", (_Canned,), {"answers": answers})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield f"127.0.0.1:{server.server_address[1]}", answers
        finally:
            server.shutdown()


MANIFEST = "/v2/a/b/manifests/1"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"HELLO\r\n\r\n", r"malformed HTTP answer to {url} \(BadStatusLine: 'HELLO\\r\\n'\)"),
        (
            b"HTTP/1.1 200 OK\r\n" + b"X: a\r\n" * 101 + b"\r\n",
            r"malformed HTTP answer to {url} \(HTTPException: 'got more than 100 headers'\)",
        ),
        (
            b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n",
            r"malformed HTTP answer to {url} \(LineTooLong",
        ),
        (CHUNKED, r"reading {url} failed \(IncompleteRead"),
    ],
)
def test_malformed_http_is_a_registry_error(
    canned: tuple[str, dict[str, bytes]], reply: bytes, message: str
) -> None:
    host, answers = canned
    answers[MANIFEST] = reply
    client = RegistryClient(host, retries=1, timeout=5)
    url = f"http://{host}{MANIFEST}".replace(".", r"\.")
    with pytest.raises(RegistryError, match=f"^registry {host}: " + message.format(url=url)):
        client.get_manifest("a/b", "1")


def test_broken_blob_stream_is_a_registry_error(canned: tuple[str, dict[str, bytes]]) -> None:
    host, answers = canned
    digest = "sha256:" + "0" * 64
    answers[f"/v2/a/b/blobs/{digest}"] = CHUNKED
    stream = RegistryClient(host, retries=1, timeout=5).open_blob("a/b", digest)
    with stream, pytest.raises(RegistryError, match=f"reading http://{host}/v2/a/b/blobs/"):
        stream.read()


def test_token_nested_too_deeply_is_a_registry_error(
    canned: tuple[str, dict[str, bytes]],
) -> None:
    host, answers = canned
    challenge = f'WWW-Authenticate: Bearer realm="http://{host}/token",service="x"'
    answers[MANIFEST] = answer("401 Unauthorized", b"", challenge)
    answers["/token"] = answer("200 OK", b'{"token": ' + DEEP + b"}")
    with pytest.raises(RegistryError, match=f"registry {host}: token service answer is not JSON"):
        RegistryClient(host, retries=1, timeout=5).get_manifest("a/b", "1")


def test_manifest_nested_too_deeply_is_an_image_error(
    canned: tuple[str, dict[str, bytes]],
) -> None:
    host, answers = canned
    answers[MANIFEST] = answer("200 OK", DEEP)
    image = RunningImage(f"{host}/a/b:1")
    scanned, _, error = _pulled(image, PullOptions(timeout=5, use_cache=False), [])
    assert scanned is None
    assert error is not None and error.endswith("JSON nested too deeply")


def test_scan_images_reports_a_malformed_registry_as_not_read(
    canned: tuple[str, dict[str, bytes]],
) -> None:
    host, answers = canned
    answers[MANIFEST] = b"HELLO\r\n\r\n"
    image = RunningImage(f"{host}/a/b:1")
    scanned, _, error = _pulled(image, PullOptions(timeout=5, use_cache=False), [])
    assert scanned is None
    assert error is not None and f"registry {host}: malformed HTTP answer" in error
