"""What each subject (user or service account) normally does, learned from audit events
and kept as JSON: where it connects from, with which client, at which hours, and whether
it reads Secrets or requests service account tokens.

The baseline learns during its learning period (which starts at the first event it sees)
and is frozen afterwards: an unusual request is reported, not learned, so that an
intruder does not become normal by repeating himself. `--learn` extends learning to the
events given.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from kubeproof.audit.events import AuditEvent
from kubeproof.bounded import UnreadableFile, read_bounded

FORMAT_VERSION = 1
DEFAULT_LEARNING_PERIOD_S = 7 * 24 * 3600.0
# Ten years: a longer period never ends, and its end is past the last date Python has.
MAX_LEARNING_PERIOD_S = 3650 * 24 * 3600.0
# A subject seen from more places than this is not judged on novelty of that kind: its
# usual set is "anything", and the baseline must stay small.
MAX_VALUES_PER_SUBJECT = 256
# Some KiB per subject: room for a hundred thousand users and service accounts.
MAX_BASELINE_BYTES = 256 << 20
READ_VERBS = frozenset({"get", "list", "watch"})


class BaselineError(Exception):
    """A baseline file that cannot be read or written; the message names it."""


@dataclass(slots=True)
class SubjectBaseline:
    events: int = 0
    source_ips: set[str] = field(default_factory=set)
    user_agents: set[str] = field(default_factory=set)
    hours: list[int] = field(default_factory=lambda: [0] * 24)  # events per UTC hour
    secret_reads: int = 0
    token_requests: int = 0
    first_seen: float = 0.0
    last_seen: float = 0.0

    def learn(self, event: AuditEvent) -> None:
        time = event.time
        if self.events == 0 or time < self.first_seen:
            self.first_seen = time
        if time > self.last_seen:
            self.last_seen = time
        self.events += 1
        for address in event.source_ips:
            if address not in self.source_ips:
                _add_capped(self.source_ips, address)
        if event.user_agent:
            family = user_agent_family(event.user_agent)
            if family not in self.user_agents:
                _add_capped(self.user_agents, family)
        self.hours[int(time // 3600) % 24] += 1
        if event.resource == "secrets" and reads_secrets(event):
            self.secret_reads += 1
        elif event.resource == "serviceaccounts" and requests_token(event):
            self.token_requests += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "sourceIPs": sorted(self.source_ips),
            "userAgents": sorted(self.user_agents),
            "hours": self.hours,
            "secretReads": self.secret_reads,
            "tokenRequests": self.token_requests,
            "firstSeen": _iso(self.first_seen),
            "lastSeen": _iso(self.last_seen),
        }

    @classmethod
    def from_json(cls, data: Any) -> SubjectBaseline:
        if not isinstance(data, dict):
            raise ValueError("a subject entry is not an object")
        hours = data.get("hours")
        if not (
            isinstance(hours, list)
            and len(hours) == 24
            and all(type(h) is int and h >= 0 for h in hours)
        ):
            raise ValueError("hours must be 24 non-negative integers")
        return cls(
            events=_count(data.get("events")),
            source_ips=_string_set(data.get("sourceIPs")),
            user_agents=_string_set(data.get("userAgents")),
            hours=list(hours),
            secret_reads=_count(data.get("secretReads")),
            token_requests=_count(data.get("tokenRequests")),
            first_seen=_epoch(data.get("firstSeen")),
            last_seen=_epoch(data.get("lastSeen")),
        )


@dataclass(slots=True)
class Baseline:
    learning_period_s: float = DEFAULT_LEARNING_PERIOD_S
    learning_started: float | None = None
    learning_ends: float | None = None  # None: learning starts with the first event
    subjects: dict[str, SubjectBaseline] = field(default_factory=dict)

    def is_learning(self, time: float) -> bool:
        return self.learning_ends is None or time < self.learning_ends

    def start_learning(self, time: float) -> None:
        """The learning period starts with the first event, unless it already has."""
        if self.learning_ends is None:
            self.learning_ends = time + self.learning_period_s

    def learn(self, event: AuditEvent) -> None:
        if self.learning_started is None or event.time < self.learning_started:
            self.learning_started = event.time
        subject = self.subjects.get(event.user)
        if subject is None:
            subject = self.subjects[event.user] = SubjectBaseline()
        subject.learn(event)

    def learned_until(self, time: float) -> None:
        """`--learn`: everything up to `time` was learned, whatever the period says."""
        if self.learning_started is None or time < self.learning_started:
            self.learning_started = time
        self.learning_ends = time if self.learning_ends is None else max(self.learning_ends, time)

    def knows(self, user: str) -> SubjectBaseline | None:
        return self.subjects.get(user)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": "KubeproofAuditBaseline",
            "version": FORMAT_VERSION,
            "learningPeriodSeconds": self.learning_period_s,
            "learningStarted": _optional_iso(self.learning_started),
            "learningEnds": _optional_iso(self.learning_ends),
            "subjects": {name: s.as_json() for name, s in sorted(self.subjects.items())},
        }

    @classmethod
    def from_json(cls, data: Any) -> Baseline:
        if not isinstance(data, dict) or data.get("kind") != "KubeproofAuditBaseline":
            raise ValueError("not a kubeproof audit baseline")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"format version {data.get('version')!r} is not {FORMAT_VERSION}")
        period = data.get("learningPeriodSeconds")
        if (
            not isinstance(period, int | float)
            or isinstance(period, bool)
            or not 0 <= period <= MAX_LEARNING_PERIOD_S
        ):
            raise ValueError(
                f"learningPeriodSeconds must be a number from 0 to {MAX_LEARNING_PERIOD_S:.0f}"
            )
        started, ends = data.get("learningStarted"), data.get("learningEnds")
        subjects = data.get("subjects")
        if not isinstance(subjects, dict):
            raise ValueError("subjects must be an object")
        baseline = cls(
            float(period),
            None if started is None else _epoch(started),
            None if ends is None else _epoch(ends),
        )
        for name, entry in subjects.items():
            try:
                baseline.subjects[str(name)] = SubjectBaseline.from_json(entry)
            except ValueError as error:
                raise ValueError(f"subject {name!r}: {error}") from None
        return baseline


def load_baseline(path: Path, learning_period_s: float | None = None) -> Baseline:
    """The baseline in `path`, or a new one when there is no such file."""
    if not os.path.lexists(path):  # a dangling link or a loop is an error, not a fresh start
        period = DEFAULT_LEARNING_PERIOD_S if learning_period_s is None else learning_period_s
        return Baseline(period)
    try:
        text = read_bounded(path, MAX_BASELINE_BYTES, f"baseline {path}")
    except UnreadableFile as refused:
        raise BaselineError(str(refused)) from None
    try:
        baseline = Baseline.from_json(json.loads(text))
    except (ValueError, UnicodeDecodeError) as error:
        raise BaselineError(f"baseline {path}: {error}") from None
    except RecursionError:
        raise BaselineError(f"baseline {path}: nested too deeply") from None
    if learning_period_s is not None:
        baseline.learning_period_s = learning_period_s
    return baseline


def save_baseline(baseline: Baseline, path: Path) -> None:
    """Written to a temporary file and renamed, so a crash never leaves half a baseline."""
    text = json.dumps(baseline.as_json(), indent=1, sort_keys=True) + "\n"
    directory = path.parent if str(path.parent) else Path(".")
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError as error:
        raise BaselineError(f"baseline {path}: cannot be written ({error.strerror})") from None


# --- what counts as what -------------------------------------------------------------------


def reads_secrets(event: AuditEvent) -> bool:
    return (
        event.resource == "secrets"
        and not event.api_group
        and not event.subresource
        and event.verb in READ_VERBS
    )


def requests_token(event: AuditEvent) -> bool:
    return (
        event.resource == "serviceaccounts"
        and event.subresource == "token"
        and event.verb == "create"
    )


@lru_cache(maxsize=4096)
def user_agent_family(user_agent: str) -> str:
    """The client program without its version: `kubectl/v1.31.0 (linux/amd64) kubernetes/x`
    is `kubectl`, so upgrading a client is not a new client."""
    program = user_agent.split("/", 1)[0].split(" ", 1)[0][:128]
    return _VERSION_SUFFIX.sub("", program)


# `kube-apiserver-v1.36.3`: the version is part of some component names.
_VERSION_SUFFIX = re.compile(r"-v?\d+(?:\.\d+)+$")


def hour_of(time: float) -> int:
    return int(time // 3600) % 24


def _add_capped(values: set[str], value: str) -> None:
    if len(values) < MAX_VALUES_PER_SUBJECT or value in values:
        values.add(value)


def saturated(values: set[str]) -> bool:
    return len(values) >= MAX_VALUES_PER_SUBJECT


def _iso(time: float) -> str:
    return datetime.fromtimestamp(time, UTC).isoformat().replace("+00:00", "Z")


def _optional_iso(time: float | None) -> str | None:
    return None if time is None else _iso(time)


def _epoch(value: Any) -> float:
    if not isinstance(value, str):
        raise ValueError(f"timestamp {value!r} is not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"timestamp {value!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return moment.timestamp()


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"count {value!r} is not a non-negative integer")
    return value


def _string_set(value: Any) -> set[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return set(value[:MAX_VALUES_PER_SUBJECT])
