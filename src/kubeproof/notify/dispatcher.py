"""Sending notifications without slowing down what raised them.

`Notifier.submit` never blocks: it drops a notification whose key was sent within the
deduplication window, then puts it on each channel's bounded queue (counted as dropped
when the queue is full). One thread per channel sends, at most `rate_per_minute` (a token
bucket with `burst` tokens), and retries a 429, a 5xx or a connection failure with
exponential backoff (honouring Retry-After). Nothing is logged with a channel's URL.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kubeproof.model import Severity
from kubeproof.notify.channels import Channel
from kubeproof.notify.message import Notification
from kubeproof.prometheus import family

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0
_STOP = object()


@dataclass(frozen=True)
class NotifySettings:
    dedup_window_s: float = 600.0
    rate_per_minute: float = 30.0
    burst: int = 10
    max_attempts: int = 5
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    queue_size: int = 1000
    timeout_s: float = 10.0
    min_severity: Severity = Severity.LOW


class TokenBucket:
    def __init__(self, per_minute: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate_s = per_minute / 60.0
        self._capacity = float(max(burst, 1))
        self._tokens = self._capacity
        self._clock = clock
        self._updated = clock()

    def wait_time(self) -> float:
        """0 and a token taken, or the seconds until one is available."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate_s)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate_s if self._rate_s > 0 else float("inf")


class _Sender:
    """One channel's queue and thread."""

    def __init__(self, channel: Channel, notifier: Notifier) -> None:
        self.channel = channel
        self._notifier = notifier
        settings = notifier.settings
        self.queue: queue.Queue[object] = queue.Queue(maxsize=settings.queue_size)
        self._bucket = TokenBucket(settings.rate_per_minute, settings.burst, time.monotonic)
        self.thread = threading.Thread(
            target=self._run, name=f"kubeproof-notify-{channel.name}", daemon=True
        )
        self.thread.start()

    def _run(self) -> None:
        abandon = self._notifier.abandon
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Notification)
            wait = self._bucket.wait_time()
            while wait > 0:
                if abandon.wait(min(wait, 1.0)):
                    self._notifier.count(self.channel, "dropped")
                    break
                wait = self._bucket.wait_time()
            else:
                self._deliver(item)

    def _deliver(self, notification: Notification) -> None:
        settings = self._notifier.settings
        body = self.channel.body(notification)
        backoff = settings.initial_backoff_s
        for attempt in range(1, settings.max_attempts + 1):
            status, retry_after = self._post(body)
            if status is not None and 200 <= status < 300:
                self._notifier.count(self.channel, "sent")
                return
            what = f"HTTP {status}" if status is not None else "no connection"
            if status is not None and status not in RETRYABLE:
                self._notifier.failed(self.channel, notification, f"{what}; not retried")
                return
            if attempt == settings.max_attempts:
                break
            self._notifier.count(self.channel, "retried")
            delay = min(retry_after if retry_after is not None else backoff, MAX_RETRY_AFTER_S)
            backoff = min(backoff * 2, settings.max_backoff_s)
            if self._notifier.abandon.wait(delay):
                break
        self._notifier.failed(
            self.channel, notification, f"gave up after {settings.max_attempts} attempts"
        )

    def _post(self, body: bytes) -> tuple[int | None, float | None]:
        request = urllib.request.Request(self.channel.url, data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("User-Agent", "kubeproof-notify")
        try:
            with urllib.request.urlopen(request, timeout=self._notifier.settings.timeout_s) as r:
                r.read()
                return r.status, None
        except urllib.error.HTTPError as error:
            error.read()
            return error.code, _retry_after(error.headers.get("Retry-After"))
        except (urllib.error.URLError, OSError, ValueError):
            return None, None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


class Notifier:
    def __init__(
        self,
        channels: Sequence[Channel],
        settings: NotifySettings | None = None,
        *,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or NotifySettings()
        self.stopping = threading.Event()
        self.abandon = threading.Event()  # stop waiting: drop what is left
        self._log = log or (lambda line: None)
        self._clock = clock
        self._lock = threading.Lock()
        self._sent_keys: dict[str, float] = {}
        self.counts: Counter[tuple[str, str]] = Counter()  # (channel, outcome)
        self._senders = [_Sender(channel, self) for channel in channels]

    @property
    def channels(self) -> list[Channel]:
        return [sender.channel for sender in self._senders]

    def submit(self, notification: Notification) -> bool:
        """Queue it for every channel; False when it was deduplicated or below the
        minimum severity. Never blocks."""
        if notification.severity.rank < self.settings.min_severity.rank:
            return False
        now = self._clock()
        with self._lock:
            sent_at = self._sent_keys.get(notification.key)
            if sent_at is not None and now - sent_at < self.settings.dedup_window_s:
                for sender in self._senders:
                    self.counts[(sender.channel.name, "deduplicated")] += 1
                return False
            self._sent_keys[notification.key] = now
            if len(self._sent_keys) > 100_000:
                self._forget_expired(now)
        for sender in self._senders:
            try:
                sender.queue.put_nowait(notification)
            except queue.Full:
                self.count(sender.channel, "dropped")
                self._log(
                    f"kubeproof notify: {sender.channel.display}: queue full "
                    f"({self.settings.queue_size}); dropped a notification of {notification.check}"
                )
        return True

    def _forget_expired(self, now: float) -> None:
        window = self.settings.dedup_window_s
        self._sent_keys = {k: t for k, t in self._sent_keys.items() if now - t < window}

    def count(self, channel: Channel, outcome: str) -> None:
        with self._lock:
            self.counts[(channel.name, outcome)] += 1

    def failed(self, channel: Channel, notification: Notification, why: str) -> None:
        self.count(channel, "failed")
        self._log(f"kubeproof notify: {channel.display}: {notification.check}: {why}")

    def metrics_lines(self) -> list[str]:
        with self._lock:
            counts = sorted(self.counts.items())
        return family(
            "kubeproof_notifications_total",
            "counter",
            "Notifications by channel name and outcome (sent, retried, failed, deduplicated, "
            "dropped).",
            (({"channel": c, "outcome": o}, n) for (c, o), n in counts),
        )

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued for up to `timeout_s`, then drop the rest."""
        self.stopping.set()
        for sender in self._senders:
            with contextlib.suppress(queue.Full):
                sender.queue.put(_STOP, timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        for sender in self._senders:
            sender.thread.join(max(deadline - time.monotonic(), 0.0))
        self.abandon.set()
        for sender in self._senders:
            sender.thread.join(1.0)
