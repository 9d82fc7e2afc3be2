"""Matching a change to the audit event that made it, from a real log file that grows,
is rotated and holds writes by several users to several objects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent_objects import deployment

from kubeproof.agent.attribution import AuditAttribution
from kubeproof.agent.state import Change

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
RESOURCES = {"Deployment": ("apps", "deployments")}


def _event(
    audit_id: str,
    user: str,
    verb: str,
    at: datetime,
    *,
    name: str = "web",
    code: int = 200,
    version: str = "",
    subresource: str = "",
) -> str:
    ref: dict[str, Any] = {
        "resource": "deployments",
        "apiGroup": "apps",
        "namespace": "shop",
        "name": name,
    }
    if version:
        ref["resourceVersion"] = version
    if subresource:
        ref["subresource"] = subresource
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return (
        json.dumps(
            {
                "kind": "Event",
                "apiVersion": "audit.k8s.io/v1",
                "level": "Metadata",
                "auditID": audit_id,
                "stage": "ResponseComplete",
                "verb": verb,
                "user": {"username": user},
                "sourceIPs": ["10.0.0.7", "10.0.0.1"],
                "objectRef": ref,
                "responseStatus": {"code": code},
                "requestReceivedTimestamp": stamp,
                "stageTimestamp": stamp,
            }
        )
        + "\n"
    )


def _attribution(log: Path) -> AuditAttribution:
    log.write_text(_event("before-start", "mallory", "patch", T0))  # before following began
    attribution = AuditAttribution(log, RESOURCES)
    attribution.poll()  # positions at the end, as the agent does at start
    return attribution


def test_the_newest_successful_write_of_the_object_made_the_change(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    attribution = _attribution(log)
    change = Change("Deployment", deployment(version="1"), deployment(version="2"))
    with log.open("a") as out:
        out.write(_event("a1", "alice", "patch", T0 + timedelta(seconds=1)))
        out.write(_event("other", "carol", "patch", T0 + timedelta(seconds=2), name="api"))
        out.write(_event("denied", "eve", "patch", T0 + timedelta(seconds=2), code=403))
        out.write(
            _event(
                "status", "controller", "update", T0 + timedelta(seconds=2), subresource="status"
            )
        )
        out.write('{"not an event"\n')
    attribution.poll()
    actor = attribution.actor_of(change, T0 + timedelta(seconds=2))
    assert actor is not None
    assert (actor.user, actor.verb, actor.source_ip, actor.audit_id) == (
        "alice",
        "patch",
        "10.0.0.7",
        "a1",
    )
    assert actor.time == T0 + timedelta(seconds=1)
    assert attribution.stats.malformed == 1
    # Nothing matches a change observed long after, or before, every write.
    assert attribution.actor_of(change, T0 + timedelta(hours=1)) is None
    assert attribution.actor_of(change, T0 - timedelta(minutes=1)) is None
    # A deletion is explained by a delete, not by the patch before it.
    gone = Change("Deployment", deployment(version="2"), None)
    assert attribution.actor_of(gone, T0 + timedelta(seconds=2)) is None


def test_a_matching_resource_version_wins_and_rotation_is_followed(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    attribution = _attribution(log)
    with log.open("a") as out:
        out.write(_event("u1", "bob", "update", T0 + timedelta(seconds=1), version="41"))
    log.rename(tmp_path / "audit-1.log")  # rotated: the API server starts a new file
    log.write_text(_event("p2", "dave", "patch", T0 + timedelta(seconds=2)))
    attribution.poll()
    attribution.poll()
    by_version = Change("Deployment", deployment(version="41"), deployment(version="42"))
    actor = attribution.actor_of(by_version, T0 + timedelta(seconds=3))
    assert actor is not None and actor.user == "bob"
    by_time = Change("Deployment", deployment(version="50"), deployment(version="51"))
    actor = attribution.actor_of(by_time, T0 + timedelta(seconds=3))
    assert actor is not None and actor.user == "dave"
    assert attribution.caught_up(T0 - timedelta(seconds=5))
    assert not attribution.caught_up(T0 + timedelta(seconds=3))


def test_writes_older_than_the_window_are_forgotten(tmp_path: Path) -> None:
    """Memory stays bounded in a long run: once the log is an hour further, an old write
    can no longer be matched (and is no longer held)."""
    log = tmp_path / "audit.log"
    attribution = _attribution(log)
    change = Change("Deployment", deployment(version="1"), deployment(version="2"))
    with log.open("a") as out:
        out.write(_event("old", "alice", "patch", T0 + timedelta(seconds=1)))
    attribution.poll()
    assert attribution.actor_of(change, T0 + timedelta(seconds=2)) is not None
    with log.open("a") as out:
        out.write(_event("later", "bob", "patch", T0 + timedelta(hours=1), name="api"))
    attribution.poll()
    assert attribution.actor_of(change, T0 + timedelta(seconds=2)) is None
