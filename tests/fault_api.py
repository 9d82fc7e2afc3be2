"""A small Kubernetes-like API server on 127.0.0.1 (plain HTTP) that injects the faults a
real kube-apiserver cannot be made to produce on demand: throttling, transient 5xx, a
hang, a malformed, cut-short or endless body, a reset connection.

It serves discovery for every kind kubeproof reads and a list for each; `faults` maps a
resource's plural (networkpolicies, ingresses, pods ...) to a script of
steps, one per request, the last one repeating::

    with FaultApi({"pods": [Status(429, retry_after="1"), OK]}) as api:
        api.write_kubeconfig(tmp_path / "kubeconfig")
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubeproof.sources.cluster import METADATA_ONLY, SCANNED_KINDS

HANG_LIMIT_S = 30.0  # a hung request is released at the latest then, or when the server stops
HUGE_SENT_BYTES = 4 << 20


@dataclass(frozen=True)
class Status:
    """Answer with this HTTP status (and Retry-After, when given) and a Status body."""

    code: int
    retry_after: str | None = None


@dataclass(frozen=True)
class Step:
    name: str  # ok | hang | malformed | truncated | reset


OK = Step("ok")
HANG = Step("hang")
MALFORMED = Step("malformed")
TRUNCATED = Step("truncated")
RESET = Step("reset")
HUGE = Step("huge")  # announces 5 GB, sends HUGE_SENT_BYTES of it
Fault = Status | Step


def plural(kind: str) -> str:
    name = kind.lower()
    if name.endswith("y"):
        return f"{name[:-1]}ies"
    return f"{name}es" if name.endswith("s") else f"{name}s"


def _discovery() -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
    """/apis, the resource list of each group version, and plural -> (kind, apiVersion)."""
    lists: dict[str, dict[str, Any]] = {}
    served: dict[str, tuple[str, str]] = {}
    for spec in SCANNED_KINDS:
        api_version = f"{spec.group}/v1" if spec.group else "v1"
        path = f"/apis/{api_version}" if spec.group else "/api/v1"
        listing = lists.setdefault(path, {"kind": "APIResourceList", "resources": []})
        listing["resources"].append(
            {"name": plural(spec.kind), "kind": spec.kind, "verbs": ["get", "list", "watch"]}
        )
        served[plural(spec.kind)] = (spec.kind, api_version)
    groups = sorted({s.group for s in SCANNED_KINDS if s.group})
    apis = {
        "kind": "APIGroupList",
        "groups": [
            {"name": g, "preferredVersion": {"version": "v1"}, "versions": [{"version": "v1"}]}
            for g in groups
        ],
    }
    return apis, lists, served


class FaultApi:
    def __init__(
        self,
        faults: dict[str, list[Fault]] | None = None,
        items: dict[str, list[dict[str, Any]]] | None = None,
        list_fault: list[Fault] | None = None,
    ) -> None:
        """`faults` per plural; `list_fault` for every list without its own script."""
        self.faults = faults or {}
        self.items = items or {}
        self.list_fault = list_fault
        self.requests: dict[str, list[float]] = defaultdict(list)  # path -> monotonic times
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._apis, self._lists, self._served = _discovery()
        if unknown := (set(self.faults) | set(self.items)) - set(self._served):
            raise ValueError(f"not served here: {sorted(unknown)}")  # a typo must not pass
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll keeps shutdown() quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FaultApi:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def write_kubeconfig(self, path: Path) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "faulty", "cluster": {"server": self.url}}],
            "users": [{"name": "u", "user": {"token": "fault-api-token"}}],
            "contexts": [{"name": "faulty", "context": {"cluster": "faulty", "user": "u"}}],
            "current-context": "faulty",
        }
        path.write_text(json.dumps(config), encoding="utf-8")
        return path

    def count(self, path: str) -> int:
        with self._lock:
            return len(self.requests[path])

    def _step(self, resource: str, path: str) -> Fault:
        with self._lock:
            self.requests[path].append(time.monotonic())
            seen = len(self.requests[path])
        script = self.faults.get(resource) or self.list_fault or [OK]
        return script[min(seen, len(script)) - 1]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def do_GET(self) -> None:
                api._answer(self)

        return Handler

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        path = url.path
        if path == "/apis":
            self._send_json(handler, self._apis)
            return
        if path in self._lists:
            self._send_json(handler, self._lists[path])
            return
        resource = path.rsplit("/", 1)[-1]
        if resource not in self._served:
            self._send_status(handler, Status(404))
            return
        step = self._step(resource, path)
        if isinstance(step, Status):
            self._send_status(handler, step)
        elif step is HANG:
            self._release.wait(HANG_LIMIT_S)
            handler.close_connection = True
        elif step is RESET:
            # SO_LINGER 0: closing sends a TCP reset instead of an orderly end.
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            handler.close_connection = True
        elif step is MALFORMED:
            self._send_body(handler, b'{"kind": "List", "items": [{"metadata": ')
        elif step is HUGE:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(5 << 30))
            handler.end_headers()
            handler.wfile.write(b'{"kind": "List", "items": [' + b" " * HUGE_SENT_BYTES)
            handler.close_connection = True
        elif step is TRUNCATED:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", "4096")
            handler.end_headers()
            handler.wfile.write(b'{"kind": "List", "apiVersion": "v1", "items": [')
            handler.close_connection = True
        else:
            self._send_list(handler, resource, parse_qs(url.query))

    def _send_list(
        self, handler: BaseHTTPRequestHandler, resource: str, query: dict[str, list[str]]
    ) -> None:
        kind, api_version = self._served[resource]
        metadata_only = handler.headers.get("Accept") == METADATA_ONLY
        items = [] if query.get("fieldSelector") else self.items.get(resource, [])
        body = {
            "kind": "PartialObjectMetadataList" if metadata_only else f"{kind}List",
            "apiVersion": "meta.k8s.io/v1" if metadata_only else api_version,
            "metadata": {"resourceVersion": "1"},
            "items": items,
        }
        self._send_json(handler, body)

    def _send_status(self, handler: BaseHTTPRequestHandler, status: Status) -> None:
        body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "code": status.code}).encode()  # fmt: skip
        handler.send_response(status.code)
        if status.retry_after is not None:
            handler.send_header("Retry-After", status.retry_after)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _send_json(self, handler: BaseHTTPRequestHandler, data: Any) -> None:
        self._send_body(handler, json.dumps(data).encode())

    @staticmethod
    def _send_body(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
