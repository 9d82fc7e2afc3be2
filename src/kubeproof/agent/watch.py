"""LIST then WATCH, one thread per kind.

Each watcher lists its kind (recording coverage like a scan does), then watches from the
list's resourceVersion with bookmarks, so that a reconnect resumes where it left off.
A stream that ends (the server's timeoutSeconds, a dropped connection, a restarted API
server) is reopened after a backoff; a 410 Gone (the version is too old to resume from)
relists the kind, and the cache replaces what it held, so nothing between the two is
lost. Lines that are not a well-formed watch event are skipped and counted.

Secrets are metadata only, as in a scan: their watch asks for PartialObjectMetadata, and
any Secret event relists the metadata (which also learns the service-account-token type
from a field selector, never from data).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubeproof.agent.state import cached_object, compact, prepared
from kubeproof.bounded import byte_size
from kubeproof.inventory import K8sObject
from kubeproof.inventory.objects import as_dict, as_str
from kubeproof.sources.cluster import (
    METADATA_ONLY,
    SERVICE_ACCOUNT_TOKEN_TYPE,
    ApiClient,
    ApiError,
    ClusterError,
    Resource,
    list_all,
)

WATCH_TIMEOUT_S = 300  # the server ends each watch after this; the watcher reopens it
METADATA_ONLY_WATCH = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
BACKOFF_FIRST_S = 0.5
BACKOFF_CAP_S = 30.0
# Permissions rarely change: asking again for a forbidden kind every few seconds would only
# fill the audit log with 403s (and look like reconnaissance to audit.forbidden-burst).
FORBIDDEN_RETRY_S = 300.0
EVENT_TYPES = frozenset({"ADDED", "MODIFIED", "DELETED"})
# A bookmark or event can be late; a silent socket longer than this is a dead one.
READ_SLACK_S = 30.0
# One watch event is one object (etcd keeps at most 1.5 MiB) in a JSON envelope.
MAX_EVENT_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Listed:
    """A fresh LIST of one kind (or why it could not be read)."""

    kind: str
    objects: list[K8sObject]
    state: str  # listed | forbidden | not_served | error, as in a scan's coverage
    detail: str = ""
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: K8sObject
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


Message = Listed | Event


class Counters:
    """Thread-safe counts of what the watchers saw: events, malformed lines, reconnects,
    relists after 410 Gone, stream errors."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class Gone(Exception):
    """The watch's resourceVersion is too old (410): relist."""


def parse_event(line: bytes) -> tuple[str, dict[str, Any]] | None:
    """(type, object) of one watch line, or None when it is not a well-formed event."""
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict):
        return None
    kind = event.get("type")
    obj = event.get("object")
    if not isinstance(kind, str) or not isinstance(obj, dict):
        return None
    if kind in EVENT_TYPES and not isinstance(obj.get("metadata"), dict):
        return None
    if kind not in EVENT_TYPES | {"BOOKMARK", "ERROR"}:
        return None
    return kind, obj


def backoff(failures: int) -> float:
    """The wait before reconnecting after `failures` failures in a row, with jitter."""
    return min(BACKOFF_FIRST_S * 2.0 ** max(failures - 1, 0), BACKOFF_CAP_S) * random.uniform(
        0.5, 1.0
    )


class KindWatcher(threading.Thread):
    """Lists one kind, then watches it until `stop` is set; sends Listed and Event
    messages to `out`."""

    def __init__(
        self,
        client: ApiClient,
        resource: Resource,
        out: queue.Queue[Message],
        stop: threading.Event,
        counters: Counters,
        *,
        watch_timeout_s: int = WATCH_TIMEOUT_S,
    ) -> None:
        super().__init__(name=f"kubeproof-watch-{resource.spec.kind}", daemon=True)
        self.resource = resource
        self._client = client
        self._out = out
        self._stop_event = stop
        self._counters = counters
        self._timeout_s = watch_timeout_s
        self._version = ""
        self._relist_requested = threading.Event()
        self._forbidden = False
        self._response: http.client.HTTPResponse | None = None
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        return self.resource.spec.kind

    def run(self) -> None:
        failures = 0
        while not self._stop_event.is_set():
            if self._relist_requested.is_set():
                self._relist_requested.clear()
                self._version = ""
            try:
                if not self._version:
                    self._relist()
                if not self._version:  # the kind could not be read: try again later
                    failures += 1
                    wait = backoff(failures) * 4
                    if self._forbidden:
                        wait = FORBIDDEN_RETRY_S * random.uniform(0.9, 1.1)
                    self._wait_or_relist(wait)
                    continue
                if self._watch():
                    failures = 0
                else:  # ended before saying anything: do not hammer the server
                    failures += 1
                    self._stop_event.wait(backoff(failures))
                self._counters.add("reconnects")
            except Gone:
                self._counters.add("relists")
                self._version = ""
            except (ValueError, AttributeError):
                # The stream was closed under the read (a relist was asked for, or shutdown).
                self._counters.add("reconnects")
            except (ApiError, ClusterError, OSError, http.client.HTTPException) as error:
                failures += 1
                self._counters.add("stream_errors")
                self._counters.add("reconnects")
                if isinstance(error, ApiError) and error.status == 410:
                    self._counters.add("relists")
                    self._version = ""
                self._stop_event.wait(backoff(failures))

    def _wait_or_relist(self, seconds: float) -> None:
        # A full rescan asks every kind again, a forbidden one included, without waiting.
        deadline = time.monotonic() + seconds
        while not self._stop_event.is_set() and not self._relist_requested.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stop_event.wait(min(remaining, 1.0))

    def request_relist(self) -> None:
        """List the kind again (a full rescan), then watch from that list."""
        self._relist_requested.set()
        self.close()

    def close(self) -> None:
        """Unblock a read in progress (shutdown, relist)."""
        with self._lock:
            response = self._response
        if response is not None:
            _interrupt(response)

    def _relist(self) -> None:
        try:
            if self.resource.spec.metadata_only:
                objects, version = self._list_metadata_only()
                detail = "metadata only"
            else:
                kind, api_version = self.kind, self.resource.api_version
                # Compact page by page: a large list is never held whole as parsed.
                listed = list_all(
                    self._client,
                    self.resource.path,
                    each=lambda item: compact(item, kind, api_version),
                )
                objects = [cached_object(item) for item in listed.items]
                version, detail = listed.resource_version, ""
        except ApiError as error:
            state = {403: "forbidden", 404: "not_served"}.get(error.status, "error")
            self._forbidden = state == "forbidden"
            self._out.put(Listed(self.kind, [], state, error.detail))
            return
        self._forbidden = False
        self._version = version
        self._out.put(Listed(self.kind, objects, "listed", detail))

    def _list_metadata_only(self) -> tuple[list[K8sObject], str]:
        path = self.resource.path
        listed = list_all(self._client, path, accept=METADATA_ONLY)
        tokens = list_all(
            self._client,
            path,
            accept=METADATA_ONLY,
            params={"fieldSelector": f"type={SERVICE_ACCOUNT_TOKEN_TYPE}"},
        )
        for response in (listed, tokens):
            if response.list_kind != "PartialObjectMetadataList":
                raise ApiError(0, "the server does not serve metadata-only lists; not read")
        token_uids = {as_str(as_dict(item.get("metadata")).get("uid")) for item in tokens.items}
        objects = []
        for item in listed.items:
            metadata = as_dict(item.get("metadata"))
            raw: dict[str, Any] = {"metadata": metadata}
            if as_str(metadata.get("uid")) in token_uids:
                raw["type"] = SERVICE_ACCOUNT_TOKEN_TYPE
            obj = prepared(raw, self.kind, self.resource.api_version)
            obj.extra["metadata_only"] = True
            objects.append(obj)
        return objects, listed.resource_version

    def _watch(self) -> bool:
        """Read one watch stream to its end; True when it carried at least one line."""
        params = {
            "watch": "1",
            "resourceVersion": self._version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self._timeout_s),
        }
        metadata_only = self.resource.spec.metadata_only
        accept = METADATA_ONLY_WATCH if metadata_only else ""
        response = self._client.open_stream(
            self.resource.path, params, accept, timeout_s=self._timeout_s + READ_SLACK_S
        )
        with self._lock:
            self._response = response
        lines = 0
        try:
            while not self._stop_event.is_set():
                line = response.readline(MAX_EVENT_BYTES + 1)
                if not line:
                    break  # the server ended the watch: resume from the last version
                if len(line) > MAX_EVENT_BYTES:
                    limit = byte_size(MAX_EVENT_BYTES)
                    raise ApiError(0, f"watch {self.kind}: an event is larger than {limit}")
                lines += 1
                if line.strip() and self._handle(line, metadata_only):
                    break  # relisted: reopen the watch from the list's version
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._response = None
            response.close()
        return lines > 0

    def _handle(self, line: bytes, metadata_only: bool) -> bool:
        """Apply one watch line; True when the kind was relisted instead."""
        parsed = parse_event(line)
        if parsed is None:
            self._counters.add("malformed_events")
            return False
        event_type, raw = parsed
        if event_type == "ERROR":
            if raw.get("code") == 410:
                raise Gone()
            raise ApiError(int(raw.get("code") or 0), f"watch {self.kind}: {raw.get('message')}")
        version = as_str(as_dict(raw.get("metadata")).get("resourceVersion"))
        if event_type == "BOOKMARK":
            self._counters.add("bookmarks")
            if version:
                self._version = version
            return False
        self._counters.add("events")
        if metadata_only:
            # Learn the new state from a metadata-only relist, which also knows token type.
            self._relist()
            return True
        obj = prepared(raw, self.kind, self.resource.api_version)
        self._out.put(Event(self.kind, event_type, obj))
        if version:
            self._version = version
        return False


def _interrupt(response: http.client.HTTPResponse) -> None:
    """Make a read blocked on `response` in another thread return. Closing the response
    (or the TLS layer) under a reader can hang; shutting the plain socket down cannot."""
    raw = getattr(getattr(response, "fp", None), "raw", None)
    sock = getattr(raw, "_sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def start_watchers(
    client: ApiClient,
    resources: list[Resource],
    out: queue.Queue[Message],
    stop: threading.Event,
    counters: Counters,
    *,
    watch_timeout_s: int = WATCH_TIMEOUT_S,
) -> list[KindWatcher]:
    watchers = [
        KindWatcher(client, resource, out, stop, counters, watch_timeout_s=watch_timeout_s)
        for resource in resources
    ]
    for watcher in watchers:
        watcher.start()
    return watchers


def wait_for_lists(
    out: queue.Queue[Message], kinds: set[str], stop: threading.Event, timeout_s: float
) -> list[Message]:
    """Messages until every kind has sent its first Listed (or the time is up)."""
    pending = set(kinds)
    received: list[Message] = []
    deadline = time.monotonic() + timeout_s
    while pending and not stop.is_set() and time.monotonic() < deadline:
        try:
            message = out.get(timeout=0.2)
        except queue.Empty:
            continue
        received.append(message)
        if isinstance(message, Listed):
            pending.discard(message.kind)
    return received
