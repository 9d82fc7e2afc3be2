"""A real HTTP server on 127.0.0.1 that records what is posted to it and answers with
scripted statuses (500 first, then 200 ...), for notification tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Sink:
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    received: list[tuple[str, bytes, int]] = field(default_factory=list)  # path, body, status
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, status: int = 200) -> list[bytes]:
        with self.lock:
            return [body for _path, body, answered in self.received if answered == status]


@contextmanager
def http_sink(statuses: list[int] | None = None, path: str = "/hook") -> Iterator[Sink]:
    sink = Sink(list(statuses or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with sink.lock:
                status = sink.statuses.pop(0) if sink.statuses else 200
                sink.received.append((self.path, body, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}{path}/T000-secret-path"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
