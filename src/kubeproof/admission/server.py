"""The webhook's HTTPS server: stdlib http.server + ssl, one thread per connection.

Connections are kept alive (the API server reuses them), the TLS handshake runs in the
connection's own thread so a slow client cannot stall accept(), and the serving
certificate is re-read when its files change, without a restart.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from kubeproof.admission.decide import Decider, Decision
from kubeproof.admission.metrics import Metrics
from kubeproof.admission.review import AdmissionRequest, ReviewError, answer, parse_review

# An AdmissionReview carries the object and, on UPDATE, the old one; etcd caps each at
# 1.5 MiB, so anything much larger is not from an API server.
MAX_BODY_BYTES = 4 * 1024 * 1024
HANDSHAKE_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 90.0  # the API server keeps idle connections for 90 s
CERT_CHECK_INTERVAL_S = 1.0
# One thread per open connection: an API server keeps a handful per replica, so many more
# than this is a client holding connections open, and new ones are refused instead.
MAX_CONNECTIONS = 256
VALIDATE_PATH = "/validate"


class TlsError(Exception):
    """The serving certificate or key cannot be loaded; names the files."""


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as error:
        raise TlsError(f"TLS certificate or key: no such file: {error.filename}") from None
    except (ssl.SSLError, OSError) as error:
        raise TlsError(
            f"TLS certificate {cert_file} / key {key_file} cannot be used: "
            f"{getattr(error, 'reason', None) or error.__class__.__name__}"
        ) from None
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
    ) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self._interval_s = interval_s
        self._log = log or _log_line
        self._stamp = self._mtimes()
        self._context = tls_context(cert_file, key_file)
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
                    self._context = tls_context(self.cert_file, self.key_file)
                    self._stamp = stamp
                    self.reloads += 1
                    self._log(f"reloaded TLS certificate {self.cert_file}")
                except TlsError as error:
                    self._log(f"keeping the previous TLS certificate: {error}")
        return self._context


class AdmissionServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        decider: Decider,
        certificates: CertificateReloader,
        metrics: Metrics | None = None,
        log: Callable[[str], None] | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.decider = decider
        self.certificates = certificates
        self.metrics = metrics or Metrics()
        self.log = log or _log_line
        self.ready = threading.Event()
        self.max_connections = max_connections
        self._connection_slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        sock, address = self.socket.accept()
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
        try:
            request.settimeout(HANDSHAKE_TIMEOUT_S)
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return  # not TLS, or gone: nothing to answer
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError, ssl.SSLError, socket.timeout)):
            return  # a client that went away is not news
        self.log(f"connection error from {client_address[0]}: {type(error).__name__}")

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self.ready.set()
        super().serve_forever(poll_interval)

    def answer_review(self, body: bytes) -> tuple[int, bytes]:
        """HTTP status and body for one POST /validate."""
        started = time.perf_counter()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.metrics.record_bad_request("not-json")
            return 400, b"the body is not JSON\n"
        try:
            request = parse_review(data)
        except ReviewError as error:
            return self._bad_review(error, started)
        try:
            decision = self.decider.decide(request)
        except Exception as error:  # a decision must never crash the server
            self.log(f"decision error for request {request.uid}: {type(error).__name__}")
            decision = self.decider.unjudgeable(f"internal error {type(error).__name__}")
        reply = decision.review_answer(request.uid)
        self.metrics.record_decision(
            decision.mode, decision.outcome, decision.rules, time.perf_counter() - started
        )
        if decision.outcome not in ("allowed", "skipped"):
            self.log(_decision_record(request, decision))
        return 200, orjson.dumps(reply)

    def _bad_review(self, error: ReviewError, started: float) -> tuple[int, bytes]:
        if error.uid is None:
            self.metrics.record_bad_request("not-admission-review")
            return 400, f"not an AdmissionReview: {error}\n".encode()
        # Readable enough to answer: the policy says whether to fail open or closed.
        fail_closed = self.decider.policy.fail_closed
        outcome = "unjudgeable"
        self.metrics.record_decision("-", outcome, (), time.perf_counter() - started)
        message = f"kubeproof cannot judge this request: {error}"
        reply = answer(error.uid, not fail_closed, message=message, code=400)
        return 200, orjson.dumps(reply)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    # Answers are small writes: with Nagle on, the client's delayed ACK could hold one for
    # tens of milliseconds.
    disable_nagle_algorithm = True
    server: AdmissionServer
    server_version = "kubeproof-webhook"
    sys_version = ""

    def do_GET(self) -> None:  # http.server dispatches by this name
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, b"ok\n", "text/plain")
        elif path == "/readyz":
            ready = self.server.ready.is_set()
            self._send(200 if ready else 503, b"ok\n" if ready else b"starting\n", "text/plain")
        elif path == "/metrics":
            body = self.server.metrics.render().encode()
            self._send(200, body, "text/plain; version=0.0.4")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != VALIDATE_PATH:
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
        if length < 0 or length > MAX_BODY_BYTES:
            self.server.metrics.record_bad_request("too-large")
            self._refuse(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return
        status, reply = self.server.answer_review(body)
        content_type = "application/json" if status == 200 else "text/plain"
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
        pass  # one line per request would cost more than the decision; decisions are logged


def _decision_record(request: AdmissionRequest, decision: Decision) -> str:
    return json.dumps(
        {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": "admission-decision",
            "uid": request.uid,
            "operation": request.operation,
            "kind": request.kind,
            "namespace": request.namespace,
            "name": request.name,
            "user": request.username,
            "dryRun": request.dry_run,
            "mode": decision.mode,
            "decision": decision.outcome,
            "allowed": decision.allowed,
            "rules": list(decision.rules),
            "reason": decision.reason,
        },
        separators=(",", ":"),
    )


_log_lock = threading.Lock()


def _log_line(line: str) -> None:
    with _log_lock:
        print(line, file=sys.stderr, flush=True)


def start_in_thread(server: AdmissionServer) -> threading.Thread:
    """Serve on a daemon thread (tests, benchmarks); returns once the server is ready."""
    thread = threading.Thread(target=server.serve_forever, name="kubeproof-webhook", daemon=True)
    thread.start()
    server.ready.wait(5)
    return thread
