"""One background writer for evidence that arrives faster than it should be written one
row at a time (admission decisions, audit detections): a bounded buffer filled under a
lock from any thread, written from one thread every `flush_interval_s` or `batch_size`
items, one transaction and one ledger entry per batch.

While the store cannot be written the items stay buffered and are retried with back-off,
said in a log line at every failure and in the metrics. Only a full buffer loses items,
and each loss is counted and logged. On close the buffer is flushed.

A subclass says how a batch is written (`_write`) and words its own log lines.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Self, TypeVar

from kubeproof.prometheus import family
from kubeproof.store.db import Store

RETRY_MAX_S = 30.0

Item = TypeVar("Item")


@dataclass
class WriterState:
    """What the writer has done, for metrics, readiness and the shutdown line."""

    recorded: int = 0
    duplicates: int = 0  # items the store already held (only where the store says so)
    batches: int = 0
    failures: int = 0
    dropped: int = 0
    failing_since: float | None = None  # wall-clock time of the first failure in a row
    last_error: str | None = None


class BatchWriter(Generic[Item]):
    """The buffer, the writing thread, the back-off and the bookkeeping. `what` begins
    every log line ("admission evidence"); `items` names what is buffered ("decisions")."""

    what: str
    items: str

    def __init__(
        self,
        store: Store,
        *,
        thread_name: str,
        log: Callable[[str], None],
        flush_interval_s: float,
        batch_size: int,
        max_buffered: int,
    ) -> None:
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.max_buffered = max_buffered
        self._log = log
        self._buffer: deque[Item] = deque()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one flush at a time (thread, close, caller)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._retry_s = 0.0
        self._retry_at = 0.0  # monotonic time of the next attempt after a failure
        self.state = WriterState()
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    # -- what a subclass says ----------------------------------------------------------

    def _write(self, batch: Sequence[Item]) -> int:
        """Write `batch`; how many of its first items are done with (written, or lost and
        counted). Fewer than all of them means the store failed (`_failed` was called)."""
        raise NotImplementedError

    def _dropped_line(self, dropped: int) -> str:
        """The log line for an item lost because the buffer was full."""
        raise NotImplementedError

    def _shutdown_line(self, left: int) -> str:
        """The log line for the items still buffered when close gives up."""
        raise NotImplementedError

    def _buffered(self) -> str:
        """What waits for the store, for the failure line."""
        return f"{self.pending} {self.items}"

    def _unwritten(self) -> bool:
        """Whether something besides the buffer waits to be written."""
        return False

    def _wait_s(self) -> float:
        return max(self.flush_interval_s, self._retry_s)

    def _tick(self) -> None:
        """Called on the writing thread at every wake-up, before the flush."""

    def _closing(self) -> None:
        """Called once the writing thread has stopped, before the last flush."""

    # -- the receiving side ------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        return self

    def _append(self, item: Item) -> None:
        """Buffer `item` (the subclass's `add` says what an item is made from)."""
        with self._lock:
            if len(self._buffer) >= self.max_buffered:
                self.state.dropped += 1
                dropped = self.state.dropped
                full = False
            else:
                self._buffer.append(item)
                dropped = 0
                full = len(self._buffer) >= self.batch_size
        # Loud, but not a line per item: the first, then every thousandth.
        if dropped and (dropped == 1 or dropped % 1000 == 0):
            self._log(self._dropped_line(dropped))
        elif full:
            self._wake.set()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def not_ready(self) -> str | None:
        since = self.state.failing_since
        if since is None:
            return None
        return (
            f"evidence store {self.store.url} cannot be written since "
            f"{datetime.fromtimestamp(since, UTC).isoformat(timespec='seconds')}: "
            f"{self.pending} {self.items} buffered"
        )

    # -- the writing side --------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._wait_s())
            self._wake.clear()
            if self._stopping.is_set():
                break
            self._tick()
            # A full buffer or a heartbeat may wake the thread early: a failing store still
            # gets its back-off.
            if self.state.failing_since is None or time.monotonic() >= self._retry_at:
                self.flush()

    def flush(self) -> bool:
        """Write what was buffered when called, batch by batch; False when the store failed
        (what was not written stays buffered). Items arriving meanwhile wait for the next
        flush: a slow store must not turn into a stream of tiny ledger entries."""
        with self._write_lock:
            with self._lock:
                remaining = len(self._buffer)
            while remaining or self._unwritten():
                with self._lock:
                    batch = [self._buffer[i] for i in range(min(self.batch_size, remaining))]
                done = self._write(batch)
                with self._lock:
                    for _ in range(done):
                        self._buffer.popleft()  # only flush removes, under _write_lock
                if done < len(batch) or (not batch and self._unwritten()):
                    return False
                remaining -= done
            return True

    def _succeeded(self) -> None:
        """After a batch was written: says so if the store had been failing."""
        state = self.state
        if state.failing_since is not None:
            self._log(
                f"{self.what}: store {self.store.url} written again after {state.failures} failures"
            )
        state.failing_since, state.last_error, self._retry_s = None, None, 0.0

    def _failed(self, text: str) -> None:
        """After the store failed with `text` (already free of secrets): back off."""
        state = self.state
        state.failures += 1
        if state.failing_since is None:
            state.failing_since = time.time()
        state.last_error = text
        self._retry_s = min(RETRY_MAX_S, max(1.0, self._retry_s * 2))
        self._retry_at = time.monotonic() + self._retry_s
        self._log(
            f"{self.what} NOT RECORDED YET: cannot write to {self.store.url}: {text}; "
            f"{self._buffered()} buffered, retrying in {self._retry_s:.0f} s"
        )

    def close(self, timeout_s: float = 30.0) -> int:
        """Stop the thread and flush what is left, retrying until `timeout_s`; returns how
        many items could not be recorded (0 when everything landed)."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._closing()
        deadline = time.monotonic() + timeout_s
        while True:
            written = self.flush()
            if (written and not self.pending) or time.monotonic() >= deadline:
                break
            if not written:  # the store is down: retry until the deadline
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        left = self.pending
        if left:
            self._log(self._shutdown_line(left))
        return left

    def _metric_lines(
        self, prefix: str, pending_help: str, counters: Sequence[tuple[str, str, int]]
    ) -> list[str]:
        """`{prefix}_pending`, `{prefix}_store_up` and one `{prefix}_{name}_total` a counter."""
        lines = family(f"{prefix}_pending", "gauge", pending_help, [({}, self.pending)])
        lines += family(
            f"{prefix}_store_up",
            "gauge",
            "1 when the last write to the evidence store succeeded, 0 while it fails.",
            [({}, 0 if self.state.failing_since is not None else 1)],
        )
        for name, text, value in counters:
            lines += family(f"{prefix}_{name}_total", "counter", text, [({}, value)])
        return lines
