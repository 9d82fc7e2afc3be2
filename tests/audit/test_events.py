"""Parsing audit events: Event lines and EventList documents, counted stages, duplicates,
malformed and hostile input, and bodies that never survive parsing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.auditlog import binding, event, line, pod, secret_write, write_log
from kubeproof.audit.events import (
    AuditEvent,
    ParseStats,
    SeenAuditIds,
    counted_events,
    events_from_lines,
    parse_event,
)
from kubeproof.audit.source import events_in_file


def parse_lines(*raw: bytes, max_line_bytes: int = 1 << 20) -> tuple[list[AuditEvent], ParseStats]:
    stats = ParseStats()
    numbered = list(enumerate(raw, start=1))
    parsed = list(events_from_lines(numbered, "log", stats, max_line_bytes=max_line_bytes))
    return list(counted_events(parsed, stats, SeenAuditIds())), stats


def test_an_event_line_is_read_into_its_fields() -> None:
    data = event(
        verb="create",
        resource="pods",
        subresource="exec",
        name="web-1",
        code=400,
        uri="/api/v1/namespaces/shop/pods/web-1/exec?command=%2Fbin%2Fsh&container=app",
    )
    [parsed], stats = parse_lines(line(data))
    assert (parsed.verb, parsed.resource, parsed.subresource) == ("create", "pods", "exec")
    assert (parsed.namespace, parsed.name, parsed.user) == ("shop", "web-1", "alice")
    assert parsed.source_ips == ("10.0.0.5",)
    assert parsed.code == 400 and parsed.decision == "allow" and parsed.allowed
    assert parsed.path == "/api/v1/namespaces/shop/pods/web-1/exec"
    assert parsed.exec_command == "/bin/sh"
    assert parsed.object_ref() == "pods/shop/web-1/exec"
    assert parsed.time == pytest.approx(1772445600.0)
    assert stats.events == 1 and stats.malformed == 0


def test_an_event_list_from_the_webhook_backend_yields_every_item() -> None:
    items = [event(name=f"web-{i}") for i in range(3)]
    document = {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": items}
    parsed, stats = parse_lines(orjson.dumps(document))
    assert [e.name for e in parsed] == ["web-0", "web-1", "web-2"]
    assert stats.events == 3


def test_only_finished_requests_count_and_each_audit_id_once() -> None:
    started = event(stage="ResponseStarted", audit_id="a", verb="watch")
    received = event(stage="RequestReceived", audit_id="a", verb="watch")
    complete = event(stage="ResponseComplete", audit_id="a", verb="watch")
    panic = event(stage="Panic", audit_id="b")
    parsed, stats = parse_lines(*(line(e) for e in (received, started, complete, complete, panic)))
    assert [(e.audit_id, e.stage) for e in parsed] == [("a", "ResponseComplete"), ("b", "Panic")]
    assert (stats.events, stats.other_stages, stats.duplicates) == (2, 2, 1)


def test_impersonation_acts_as_the_impersonated_user() -> None:
    [parsed], _ = parse_lines(line(event(user="admin", impersonate="mallory", code=403)))
    assert parsed.user == "mallory" and parsed.authenticated_user == "admin"
    assert not parsed.allowed or parsed.decision == "allow"


def test_a_forbidden_decision_is_not_allowed_and_a_missing_one_falls_back_to_the_code() -> None:
    [forbid], _ = parse_lines(line(event(decision="forbid", code=403)))
    [absent], _ = parse_lines(line(event(decision=None, code=403)))
    [served], _ = parse_lines(line(event(decision=None, code=200)))
    assert not forbid.allowed and not absent.allowed and served.allowed


def test_bodies_are_distilled_and_dropped() -> None:
    secret = "s3cr3t-Value-Never-Shown-9f8e7d"
    privileged = pod(
        containers=[{"name": "app", "securityContext": {"privileged": True}}],
        hostNetwork=True,
        volumes=[{"name": "root", "hostPath": {"path": "/"}}],
    )
    lines = [
        line(secret_write(secret)),
        line(event(verb="create", name=None, code=201, level="Request", request_object=privileged)),
        line(
            event(
                verb="create",
                resource="clusterrolebindings",
                api_group="rbac.authorization.k8s.io",
                namespace=None,
                name=None,
                code=201,
                level="Request",
                response_object=binding(),
            )
        ),
    ]
    parsed, _ = parse_lines(*lines)
    assert secret not in repr(parsed)
    assert all(not hasattr(e, "__dict__") for e in parsed)  # slots: nothing else was kept
    assert parsed[0].has_body and parsed[0].body is None
    assert parsed[1].body is not None and parsed[1].name == "web-1"
    assert parsed[1].body.pod_risks == (
        "hostNetwork",
        "volume root: hostPath /",
        "container app: privileged",
    )
    assert parsed[2].body is not None and parsed[2].body.role_ref == (
        "ClusterRole",
        "cluster-admin",
    )
    assert parsed[2].name == "grant"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json at all\n", "not JSON"),
        (b"[1, 2]\n", "a JSON list"),
        (b'"text"\n', "a JSON str"),
        (b'{"kind": "Event"}\n', "no auditID"),
        (b'{"auditID": "x", "stage": "Finished"}\n', "no known stage"),
        (
            b'{"auditID": "x", "stage": "Panic", "requestReceivedTimestamp": "yesterday"}\n',
            "no valid requestReceivedTimestamp",
        ),
        (
            b'{"auditID": "x", "stage": "Panic", "stageTimestamp": "2026-01-01T00:00:00"}\n',
            "no valid",
        ),  # no time zone: ambiguous
        (b'{"kind": "EventList", "items": 3}\n', "without an items list"),
        (b"\xff\xfe\x00garbage\x00\n", "not JSON"),
        (
            b'{"auditID": "x", "stage": "Panic", "requestReceivedTimestamp": "2026-01-01T00:00:0',
            "not JSON",
        ),
    ],
)
def test_malformed_lines_are_counted_with_their_line_number(raw: bytes, reason: str) -> None:
    good = line(event())
    parsed, stats = parse_lines(good, raw, good.replace(b"00000000", b"11111111"))
    assert len(parsed) == 2
    assert stats.malformed == 1
    [problem] = stats.problems
    assert problem.line == 2 and reason in problem.reason
    assert b"garbage" not in problem.reason.encode()  # the content is never quoted


def test_a_bad_item_in_an_event_list_is_named_by_its_index() -> None:
    document = {"kind": "EventList", "items": [event(), "oops", {"auditID": 5}]}
    parsed, stats = parse_lines(orjson.dumps(document))
    assert len(parsed) == 1
    assert [p.reason for p in stats.problems] == ["item 1: no auditID", "item 2: no auditID"]


def test_fields_of_the_wrong_type_do_not_crash() -> None:
    data = event()
    data.update(
        user="root",
        sourceIPs="1.2.3.4",
        objectRef=[1],
        responseStatus={"code": "200"},
        annotations=["allow"],
        impersonatedUser=7,
        requestObject=[1],
        verb=3,
    )
    [parsed], stats = parse_lines(line(data))
    assert parsed.user == "" and parsed.source_ips == () and parsed.resource == ""
    assert parsed.code is None and parsed.decision is None and parsed.verb == ""
    assert stats.malformed == 0


def test_an_oversized_line_is_skipped_and_counted(tmp_path: Path) -> None:
    huge = event(level="Request", verb="create", request_object={"data": "x" * 5000})
    path = tmp_path / "audit.log"
    path.write_bytes(line(event()) + line(huge) + line(event()))
    stats = ParseStats()
    parsed = list(events_in_file(path, stats, max_line_bytes=2048))
    assert len(parsed) == 2
    assert stats.malformed == 1 and stats.problems[0].line == 2
    assert "exceeds the cap" in stats.problems[0].reason
    assert [e.line for e in parsed] == [1, 3]


def test_an_oversized_first_line_is_skipped_too(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_bytes(b"x" * 5000 + b"\n" + line(event()))
    stats = ParseStats()
    parsed = list(events_in_file(path, stats, max_line_bytes=2048))
    assert [e.line for e in parsed] == [2] and stats.problems[0].line == 1


def test_gzip_rotated_files_are_read_by_content(tmp_path: Path) -> None:
    path = tmp_path / "audit-2026-03-02T10-00-00.000.log"  # compressed under a plain name
    path.write_bytes(gzip.compress(line(event()) + line(event())))
    stats = ParseStats()
    assert len(list(events_in_file(path, stats))) == 2


def test_a_truncated_gzip_file_yields_what_it_holds_and_a_problem(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(line(event(name=f"p{i}")) for i in range(200)))
    path = tmp_path / "audit.log.gz"
    path.write_bytes(data[: len(data) // 2])
    stats = ParseStats()
    parsed = list(events_in_file(path, stats))
    assert 0 < len(parsed) < 200
    assert stats.malformed >= 1 and "cut short or corrupt" in stats.problems[-1].reason


def test_a_truncated_plain_file_loses_only_its_last_line(tmp_path: Path) -> None:
    text = line(event()) + line(event())
    path = write_log(tmp_path / "audit.log", [])
    path.write_bytes(text[:-20])
    stats = ParseStats()
    assert len(list(events_in_file(path, stats))) == 1
    assert stats.problems[0].line == 2


def test_a_pretty_printed_event_list_document_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "webhook-body.json"
    path.write_text(json.dumps({"kind": "EventList", "items": [event(), event()]}, indent=2))
    stats = ParseStats()
    assert len(list(events_in_file(path, stats))) == 2 and stats.malformed == 0


# --- properties -----------------------------------------------------------------------


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_no_bytes_crash_the_parser(raw_lines: list[bytes]) -> None:
    parsed, stats = parse_lines(*raw_lines)
    assert stats.events == len(parsed)
    assert stats.malformed <= len(raw_lines)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_field_names = st.sampled_from(
    [
        "auditID",
        "stage",
        "verb",
        "user",
        "impersonatedUser",
        "objectRef",
        "sourceIPs",
        "responseStatus",
        "annotations",
        "requestObject",
        "responseObject",
        "requestURI",
        "requestReceivedTimestamp",
        "stageTimestamp",
        "userAgent",
        "level",
        "kind",
        "items",
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_field_names, _json, max_size=8))
def test_any_json_object_parses_or_is_counted_as_malformed(overrides: dict[str, object]) -> None:
    data = {**event(), **overrides}
    parsed, stats = parse_lines(json.dumps(data).encode())
    assert (
        len(parsed) + stats.malformed + stats.other_stages >= 1 or data.get("kind") == "EventList"
    )


@settings(max_examples=200)
@given(
    user=st.text(min_size=1, max_size=30),
    verb=st.sampled_from(["get", "list", "create", "delete", "watch"]),
    namespace=st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    at=st.floats(min_value=0, max_value=1e7),
)
def test_generated_events_keep_their_fields(
    user: str, verb: str, namespace: str, at: float
) -> None:
    [parsed], _ = parse_lines(line(event(user=user, verb=verb, namespace=namespace, at=at)))
    assert (parsed.user, parsed.verb, parsed.namespace) == (user, verb, namespace)
    assert parsed.time == pytest.approx(1772445600.0 + at, abs=1e-5)


def test_parse_event_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="no auditID"):
        parse_event({"stage": "Panic"})
