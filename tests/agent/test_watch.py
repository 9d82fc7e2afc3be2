"""Watch streams: well-formed events reach the agent in order, malformed lines are skipped
and counted, a 410 Gone relists, and a stream the server ends is reopened from the last
resourceVersion. A local HTTP server plays the API server here because a real one
cannot be made to send malformed watch lines."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from kubeproof.agent.watch import Counters, Event, KindWatcher, Listed, Message, parse_event
from kubeproof.sources.cluster import ApiClient, KindSpec, Resource
from kubeproof.sources.kubeconfig import ClusterConnection


def _config_map(name: str, version: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "resourceVersion": version,
            "managedFields": [{"manager": "kubectl"}],
        },
        "data": {"a": "b"},
        "status": {"never": "judged"},
    }


def _line(event_type: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"


FIRST_WATCH = [
    b"this is not json\n",
    b'{"type": "ADDED"}\n',
    b'["a list"]\n',
    b'{"type": "SURPRISE", "object": {"metadata": {}}}\n',
    _line("ADDED", _config_map("one", "11")),
    _line("BOOKMARK", {"kind": "ConfigMap", "metadata": {"resourceVersion": "12"}}),
    _line("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"}),
]
SECOND_WATCH = [
    _line("MODIFIED", _config_map("two", "21")),
    _line("DELETED", _config_map("one", "22")),
]


class FakeWatchApi:
    """Lists ConfigMaps and serves a scripted watch stream per request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, list[str]]] = []
        self.lists = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                api.requests.append(query)
                if "watch" not in query:
                    api.lists += 1
                    version = "10" if api.lists == 1 else "20"
                    items = [_config_map("one", "9")] if api.lists == 1 else [
                        _config_map("one", "19"), _config_map("two", "20")]  # fmt: skip
                    body = {"kind": "ConfigMapList", "apiVersion": "v1",
                            "metadata": {"resourceVersion": version}, "items": items}  # fmt: skip
                    payload = json.dumps(body).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                watches = sum(1 for r in api.requests if "watch" in r)
                lines = {1: FIRST_WATCH, 2: SECOND_WATCH}.get(watches, [])
                payload = b"".join(lines)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"


@pytest.fixture
def fake_api() -> Iterator[FakeWatchApi]:
    api = FakeWatchApi()
    api.thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()


def _messages(out: queue.Queue[Message], count: int) -> list[Message]:
    return [out.get(timeout=10) for _ in range(count)]


def test_watch_skips_malformed_relists_on_gone_and_resumes(fake_api: FakeWatchApi) -> None:
    connection = ClusterConnection(fake_api.url, "fake", None, "test")
    resource = Resource(KindSpec("ConfigMap", ""), "v1", "configmaps")
    out: queue.Queue[Message] = queue.Queue()
    stop = threading.Event()
    counters = Counters()
    watcher = KindWatcher(ApiClient(connection), resource, out, stop, counters, watch_timeout_s=5)
    watcher.start()
    try:
        first, added, relisted, modified, deleted = _messages(out, 5)
    finally:
        stop.set()
        watcher.close()
        watcher.join(timeout=10)
    assert isinstance(first, Listed) and [o.name for o in first.objects] == ["one"]
    assert "managedFields" not in first.objects[0].metadata
    assert isinstance(added, Event) and (added.type, added.obj.name) == ("ADDED", "one")
    assert isinstance(relisted, Listed) and [o.name for o in relisted.objects] == ["one", "two"]
    # Listed or watched, objects arrive compact: no status, equal parts held once.
    assert all("status" not in obj.raw for obj in (*first.objects, *relisted.objects, added.obj))
    assert relisted.objects[1].raw["data"] is first.objects[0].raw["data"] is added.obj.raw["data"]
    assert isinstance(modified, Event) and modified.type == "MODIFIED"
    assert isinstance(deleted, Event) and (deleted.type, deleted.obj.name) == ("DELETED", "one")
    counts = counters.snapshot()
    assert counts["malformed_events"] == 4
    assert counts["relists"] == 1 and counts["bookmarks"] == 1
    watches = [r for r in fake_api.requests if "watch" in r]
    assert watches[0]["resourceVersion"] == ["10"] and watches[0]["allowWatchBookmarks"] == ["true"]
    assert watches[1]["resourceVersion"] == ["20"]  # after the relist, from the new list
    if len(watches) > 2:
        assert watches[2]["resourceVersion"] == ["22"]  # resumed where the stream ended


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"{",
        b"null",
        b'{"type": 1, "object": {}}',
        b'{"type": "ADDED", "object": {"metadata": 3}}',
    ],
)
def test_parse_event_rejects_malformed_lines(line: bytes) -> None:
    assert parse_event(line) is None


def test_parse_event_accepts_events_and_bookmarks() -> None:
    assert parse_event(_line("ADDED", _config_map("a", "1"))) is not None
    assert parse_event(b'{"type": "BOOKMARK", "object": {"metadata": {}}}') is not None


def test_a_forbidden_kind_is_asked_again_rarely_or_on_a_full_rescan() -> None:
    """Hammering a kind the identity may not read fills the audit log with 403s (and looks
    like reconnaissance): a forbidden list is retried after minutes, or on a relist."""
    lists: list[str] = []

    class Forbidden(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            lists.append(self.path)
            payload = b'{"kind": "Status", "apiVersion": "v1", "code": 403, "message": "no"}'
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forbidden)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    connection = ClusterConnection(f"http://{host!s}:{port}", "fake", None, "test")
    resource = Resource(KindSpec("Secret", ""), "v1", "secrets")
    out: queue.Queue[Message] = queue.Queue()
    stop = threading.Event()
    watcher = KindWatcher(ApiClient(connection), resource, out, stop, Counters())
    watcher.start()
    try:
        first = out.get(timeout=10)
        assert isinstance(first, Listed) and first.state == "forbidden"
        time.sleep(4)  # the exponential backoff alone would have asked twice more by now
        assert len(lists) == 1
        watcher.request_relist()
        again = out.get(timeout=10)
        assert isinstance(again, Listed) and again.state == "forbidden"
        assert len(lists) == 2
    finally:
        stop.set()
        watcher.close()
        watcher.join(timeout=10)
        server.shutdown()
        server.server_close()
