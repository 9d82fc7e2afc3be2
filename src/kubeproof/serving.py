"""The HTTP(S) server kubeproof's long-running endpoints share (the admission webhook, the
audit and Falco receiver, the agent's metrics): stdlib http.server + ssl, one thread per
connection.

Connections are kept alive (the API server reuses them), the TLS handshake runs in the
connection's own thread so a slow client cannot stall accept(), and the serving
certificate is re-read when its files change, without a restart. A subclass says which
POST paths it answers (`answer_post`) and what its `/metrics` shows.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubeproof.bounded import UnreadableFile, read_bounded, read_ca_bundle

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_PEM_FILE_BYTES = 1 << 20  # a certificate chain or a key is a few KiB
HANDSHAKE_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 90.0  # the API server keeps idle connections for 90 s
CERT_CHECK_INTERVAL_S = 1.0
# One thread per open connection: an API server keeps a handful per replica, so many more
# than this is a client holding connections open, and new ones are refused instead.
MAX_CONNECTIONS = 256
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"

# (HTTP status, body, content type)
Answer = tuple[int, bytes, str]


class TlsError(Exception):
    """The serving certificate or key cannot be loaded; names the files."""


def _reason(error: Exception) -> str:
    # OpenSSL's reason ("PEM_LIB", "KEY_VALUES_MISMATCH"), never the file's content.
    return str(getattr(error, "reason", None) or error.__class__.__name__)


def tls_context(cert_file: str, key_file: str, client_ca_file: str | None = None) -> ssl.SSLContext:
    """A server context; with `client_ca_file`, clients must present a certificate it
    signed (mutual TLS)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # OpenSSL reads the files by name: each is first checked to be a regular file of
        # a sane size, so that a missing, piped or endless one is named and refused.
        read_bounded(cert_file, MAX_PEM_FILE_BYTES, f"TLS certificate {cert_file}")
        read_bounded(key_file, MAX_PEM_FILE_BYTES, f"TLS key {key_file}")
        client_ca = (
            None
            if client_ca_file is None
            else read_ca_bundle(client_ca_file, f"client CA {client_ca_file}")
        )
    except UnreadableFile as refused:
        raise TlsError(str(refused)) from None
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as error:
        raise TlsError(
            f"TLS certificate {cert_file} / key {key_file} cannot be used: {_reason(error)}"
        ) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cadata=client_ca.decode("ascii", "replace"))
        except (ssl.SSLError, OSError) as error:
            raise TlsError(f"client CA {client_ca_file} cannot be used: {_reason(error)}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class CertificateReloader:
    """The current SSLContext; a new one is built when either file's mtime changes. A
    broken replacement (half-written by a rotation) keeps the old one until it is whole."""

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        interval_s: float = CERT_CHECK_INTERVAL_S,
        log: Callable[[str], None] | None = None,
        client_ca_file: str | None = None,
    ) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.client_ca_file = client_ca_file
        self._interval_s = interval_s
        self._log = log or log_line
        self._stamp = self._mtimes()
        self._context = tls_context(cert_file, key_file, client_ca_file)
        self._checked_at = time.monotonic()
        self.reloads = 0

    def _mtimes(self) -> tuple[int, int]:
        try:
            return (os.stat(self.cert_file).st_mtime_ns, os.stat(self.key_file).st_mtime_ns)
        except OSError:
            return (-1, -1)

    def context(self) -> ssl.SSLContext:
        now = time.monotonic()
        if now - self._checked_at >= self._interval_s:
            self._checked_at = now
            stamp = self._mtimes()
            if stamp != self._stamp and stamp != (-1, -1):
                try:
                    self._context = tls_context(self.cert_file, self.key_file, self.client_ca_file)
                    self._stamp = stamp
                    self.reloads += 1
                    self._log(f"reloaded TLS certificate {self.cert_file}")
                except TlsError as error:
                    self._log(f"keeping the previous TLS certificate: {error}")
        return self._context


class Server(ThreadingHTTPServer):
    """HTTPS with `certificates`, plain HTTP without (a loopback metrics port). Answers
    GET /healthz, /readyz and /metrics; POSTs to `post_paths` go to `answer_post`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    post_paths: frozenset[str] = frozenset()
    max_body_bytes = DEFAULT_MAX_BODY_BYTES

    def __init__(
        self,
        address: tuple[str, int],
        certificates: CertificateReloader | None,
        log: Callable[[str], None] | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.certificates = certificates
        self.log = log or log_line
        self.ready = threading.Event()
        self.max_connections = max_connections
        self._connection_slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    # -- what a subclass answers -------------------------------------------------------

    def answer_post(self, path: str, body: bytes) -> Answer:
        return 404, b"not found\n", "text/plain"

    def render_metrics(self) -> str:
        return ""

    def count_bad_request(self, reason: str) -> None:
        """A request refused before `answer_post` saw it (too large)."""

    def not_ready(self) -> str | None:
        """Why the server should take no traffic now (a dependency down), or None."""
        return None

    # -- connections -------------------------------------------------------------------

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
        if self.certificates is None:
            return sock, address
        wrapped = self.certificates.context().wrap_socket(
            sock, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._connection_slots.acquire(blocking=False):
            self.log(f"refusing a connection from {client_address[0]}: {self.max_connections} open")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connection_slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_slots.release()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's thread: the handshake cannot stall the accept loop.
        if self.certificates is not None:
            try:
                request.settimeout(HANDSHAKE_TIMEOUT_S)
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return  # not TLS, no client certificate, or gone: nothing to answer
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError, socket.timeout)):
            return  # a client that went away is not news
        self.log(f"connection error from {client_address[0]}: {type(error).__name__}")

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self.ready.set()
        super().serve_forever(poll_interval)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    # Answers are small writes: with Nagle on, the client's delayed ACK could hold one for
    # tens of milliseconds.
    disable_nagle_algorithm = True
    server: Server
    server_version = "kubeproof"
    sys_version = ""

    def do_GET(self) -> None:  # http.server dispatches by this name
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif path == "/readyz":
            reason = "starting" if not self.server.ready.is_set() else self.server.not_ready()
            body = f"{reason or 'ok'}\n".encode()
            self._send(503 if reason else 200, body, "text/plain")
        elif path == "/metrics":
            self._send(200, self.server.render_metrics().encode(), METRICS_CONTENT_TYPE)
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in self.server.post_paths:
            self._refuse(404, "not found")
            return
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411, "send Content-Length, not a chunked body")
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._refuse(411, "Content-Length is missing or not a number")
            return
        limit = self.server.max_body_bytes
        if length < 0 or length > limit:
            self.server.count_bad_request("too-large")
            self._refuse(413, f"the body is larger than {limit} bytes")
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return
        status, reply, content_type = self.server.answer_post(path, body)
        self._send(status, reply, content_type)

    def _refuse(self, status: int, message: str) -> None:
        # The unread body would be taken for the next request: close the connection.
        self.close_connection = True
        self._send(status, f"{message}\n".encode(), "text/plain", close=True)

    def _send(self, status: int, body: bytes, content_type: str, close: bool = False) -> None:
        # One write for status line, headers and body: one TLS record, no Nagle stall.
        reason = self.responses.get(status, ("",))[0]
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}"]
        head.append(f"Content-Length: {len(body)}")
        if close:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would cost more than answering it; answers are logged


_log_lock = threading.Lock()


def log_line(line: str) -> None:
    with _log_lock:
        print(line, file=sys.stderr, flush=True)


def start_in_thread(server: Server, name: str = "kubeproof-server") -> threading.Thread:
    """Serve on a daemon thread (tests, benchmarks, the agent's metrics); returns once the
    server is ready."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    server.ready.wait(5)
    return thread
