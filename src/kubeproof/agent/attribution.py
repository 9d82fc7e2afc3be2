"""Who made a change: the audit event that wrote the object whose change the agent saw.

The agent follows the API server's audit log (`--audit-log FILE`, rotation and truncation
followed as `kubeproof audit follow` does) and remembers, per object, the recent
successful writes (create, update, patch, delete; not dry runs, not subresources such as
status). A change is matched to the write whose objectRef names the same object and
whose resourceVersion is the version the change started from or produced when the log
has it, else to the newest write received before the change was observed, within a
window. The audit line can reach the file after the watch event reaches the agent, so a
transition waits briefly (`--audit-wait`) for its event before it is recorded without.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kubeproof.agent.state import Change, resource_version
from kubeproof.audit.events import (
    AuditEvent,
    ParseStats,
    SeenAuditIds,
    counted_events,
    events_from_lines,
)
from kubeproof.audit.source import LogFollower
from kubeproof.redaction import redact

WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})
WINDOW_S = 120.0  # a write older than this before the change does not explain it
CLOCK_SLACK_S = 2.0  # the API server's clock may run a little ahead of the agent's
MAX_WRITES_PER_OBJECT = 16
ObjectRef = tuple[str, str, str, str]  # api group, resource (plural), namespace, name


@dataclass(frozen=True, slots=True)
class Actor:
    user: str
    verb: str
    time: datetime
    source_ip: str
    audit_id: str

    def columns(self) -> dict[str, Any]:
        return {
            "actor_user": redact(self.user),
            "actor_verb": self.verb,
            "actor_time": self.time,
            "actor_source_ip": self.source_ip[:64],
            "actor_audit_id": self.audit_id[:64],
        }

    def __str__(self) -> str:
        where = f" from {self.source_ip}" if self.source_ip else ""
        return f"{redact(self.user)} ({self.verb}{where} at {self.time:%H:%M:%S} UTC)"


NO_ACTOR: dict[str, Any] = {
    "actor_user": None,
    "actor_verb": None,
    "actor_time": None,
    "actor_source_ip": None,
    "actor_audit_id": None,
}


class AuditAttribution:
    def __init__(self, path: Path, resources: dict[str, tuple[str, str]]) -> None:
        """`resources` maps a kind to its (api group, plural resource)."""
        self.path = path
        self.stats = ParseStats()
        self._resources = resources
        self._follower = LogFollower(path)
        self._seen = SeenAuditIds(capacity=200_000)
        self._writes: dict[ObjectRef, deque[AuditEvent]] = {}
        self._arrivals: deque[tuple[float, ObjectRef]] = deque()  # to forget old writes
        self.newest_time = 0.0  # request time of the newest event read

    def close(self) -> None:
        self._follower.close()

    def poll(self) -> None:
        """Read what the log gained since the last poll; never blocks."""
        lines = self._follower.poll()
        if not lines:
            return
        events = events_from_lines(lines, str(self.path), self.stats)
        for event in counted_events(events, self.stats, self._seen):
            self.newest_time = max(self.newest_time, event.time)
            if (
                event.verb in WRITE_VERBS
                and not event.subresource
                and event.name
                and event.succeeded
                and not event.dry_run
            ):
                self._remember(event)
        self._forget_before(self.newest_time - WINDOW_S - CLOCK_SLACK_S)

    def _remember(self, event: AuditEvent) -> None:
        key = (event.api_group, event.resource, event.namespace, event.name)
        writes = self._writes.get(key)
        if writes is None:
            writes = self._writes[key] = deque(maxlen=MAX_WRITES_PER_OBJECT)
        writes.append(event)
        self._arrivals.append((event.time, key))

    def _forget_before(self, oldest: float) -> None:
        """Memory stays bounded by the writes of the last window, however long the agent
        runs: older ones can no longer explain a change."""
        arrivals = self._arrivals
        while arrivals and arrivals[0][0] < oldest:
            _, key = arrivals.popleft()
            writes = self._writes.get(key)
            while writes and writes[0].time < oldest:
                writes.popleft()
            if writes is not None and not writes:
                del self._writes[key]

    def actor_of(self, change: Change, observed_at: datetime) -> Actor | None:
        obj = change.current
        resource = self._resources.get(obj.kind)
        if resource is None:
            return None
        group, plural = resource
        writes = self._writes.get((group, plural, obj.namespace or "", obj.name))
        if not writes:
            return None
        versions = {resource_version(o) for o in (change.before, change.after) if o is not None} - {
            ""
        }
        for event in reversed(writes):
            if event.resource_version and event.resource_version in versions:
                return _actor(event)
        verbs = {"delete"} if change.after is None else {"create", "update", "patch"}
        observed = observed_at.timestamp()
        for event in reversed(writes):
            if (
                event.verb in verbs
                and observed - WINDOW_S <= event.time <= observed + CLOCK_SLACK_S
            ):
                return _actor(event)
        return None

    def caught_up(self, observed_at: datetime) -> bool:
        """The log already holds requests received after the change was observed: an
        event for the change would have been read by now."""
        return self.newest_time > observed_at.timestamp() + CLOCK_SLACK_S


def _actor(event: AuditEvent) -> Actor:
    return Actor(
        user=event.user,
        verb=event.verb,
        time=datetime.fromtimestamp(event.time, UTC),
        source_ip=event.source_ips[0] if event.source_ips else "",
        audit_id=event.audit_id,
    )
