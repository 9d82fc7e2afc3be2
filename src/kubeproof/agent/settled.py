"""Whole-cache scans on a thread of their own, so that the loop keeps recording changes.

A scan judges an immutable snapshot of the cache and records it; it can take many
seconds on a large cluster, and changes must not wait behind it. Meanwhile the loop
judges changes as before and notes which verdicts it judged again (`touched`): those are
newer than the scan's, so the scan's verdicts replace only the others. At most one scan
is in flight; a settle that comes due meanwhile starts from a newer snapshot afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kubeproof.agent.reevaluate import Verdict
from kubeproof.inventory import Inventory
from kubeproof.store.record import Recorded


@dataclass(frozen=True)
class Judged:
    """What a whole-cache scan said, and whether it was recorded (None: the store failed)."""

    verdicts: dict[str, Verdict]
    recorded: Recorded | None


@dataclass
class InFlight:
    why: str
    touched: set[str] = field(default_factory=set)  # judged again by the loop since
    judged: Judged | None = None
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    @property
    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()

    def wait(self, timeout_s: float) -> bool:
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.done


def start(why: str, snapshot: Inventory, judge: Callable[[Inventory], Judged]) -> InFlight:
    """Judge and record `snapshot` on a new thread."""
    flight = InFlight(why)

    def run() -> None:
        try:
            flight.judged = judge(snapshot)
        except BaseException as error:  # handed to the loop, which reports it
            flight.error = error

    flight._thread = threading.Thread(target=run, name=f"kubeproof-scan ({why})", daemon=True)
    flight._thread.start()
    return flight
