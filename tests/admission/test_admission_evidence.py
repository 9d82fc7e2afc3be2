"""Admission decisions recorded as evidence: the webhook served over HTTPS writes every
decision to a real store (SQLite and PostgreSQL) in batches chained in the ledger, and
`kubeproof evidence verify` catches edits and deletions made behind its back."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import postgres
from admission.conftest import POLICY, client_context
from admission.reviews import pod_spec, privileged_pod_spec, review, workload
from admission.webhook_tls import Tls
from databases import Database
from kubeproof.admission.decide import Decider
from kubeproof.admission.evidence import DecisionRecorder, StoreExceptions
from kubeproof.admission.policy import parse_policy
from kubeproof.admission.server import AdmissionServer, CertificateReloader, start_in_thread
from kubeproof.cli.main import main
from kubeproof.store.db import Store, open_store, parse_url
from kubeproof.store.decisions import record_batch
from kubeproof.store.exceptions import NewException, add_exception, revoke_exception
from waiting import wait_until

SECRET = "s3cr3t-Value-4f1c0e9b"
DIGEST = "sha256:" + "ab" * 32


def sql(url: str, *statements: str) -> Sequence[Any]:
    """Plain SQL against the database, as someone editing it behind kubeproof's back; the
    rows of the last statement."""
    engine = create_engine(parse_url(url))
    rows: Sequence[Any] = []
    try:
        with engine.begin() as connection:
            for statement in statements:
                result = connection.execute(text(statement))
                rows = list(result) if result.returns_rows else []
        return rows
    finally:
        engine.dispose()


@contextmanager
def webhook(
    tls: Tls, store: Store, policy: dict[str, Any] = POLICY, **recorder_options: Any
) -> Iterator[tuple[AdmissionServer, DecisionRecorder, list[str]]]:
    lines: list[str] = []
    recorder = DecisionRecorder(
        store, cluster="prod", webhook="test-host", log=lines.append, **recorder_options
    )
    exceptions = StoreExceptions(store, interval_s=3600, log=lines.append).start()
    server = AdmissionServer(
        ("127.0.0.1", 0),
        Decider(parse_policy(policy), exceptions=exceptions),
        CertificateReloader(str(tls.cert), str(tls.key)),
        log=lines.append,
        evidence=recorder.start(),
    )
    thread = start_in_thread(server)
    try:
        yield server, recorder, lines
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        exceptions.close()


def get(server: AdmissionServer, tls: Tls, method: str, path: str, body: Any = None) -> Any:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", server.port, context=client_context(tls.ca_cert), timeout=10
    )
    try:
        payload = json.dumps(body).encode() if body is not None else None
        connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        return response.status, (json.loads(data) if method == "POST" else data.decode())
    finally:
        connection.close()


def post(server: AdmissionServer, tls: Tls, document: dict[str, Any]) -> dict[str, Any]:
    status, body = get(server, tls, "POST", "/validate", document)
    assert status == 200, body
    response: dict[str, Any] = body["response"]
    return response


def decisions(url: str) -> dict[str, dict[str, Any]]:
    rows = sql(
        url,
        "SELECT uid, username, groups, operation, api_group, kind, namespace, name, owner_kind, "
        "owner_name, images, rules, decision, allowed, mode, dry_run, policy_digest, reason, "
        "batch_id FROM admission_decisions",
    )
    found = {}
    for row in rows:
        values = dict(row._mapping)
        for key in ("groups", "images", "rules"):
            if isinstance(values[key], str):  # SQLite's JSON comes back as text through raw SQL
                values[key] = json.loads(values[key])
        found[values["uid"]] = values
    return found


def verify(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["evidence", "verify", "--db", url])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def owned_pod(spec: dict[str, Any]) -> dict[str, Any]:
    """A pod as a Deployment's ReplicaSet creates it."""
    obj = workload("Pod", "web-7d9f8b6c5d-x2x7q", spec, namespace="shop")
    obj["metadata"]["labels"] = {"app": "web", "pod-template-hash": "7d9f8b6c5d"}
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f8b6c5d", "uid": "u"}
        | {"controller": True}
    ]
    return obj


def test_every_decision_is_recorded_with_its_identities_and_chained(
    database: Database, tls: Tls, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(database.url)
    denied = review(owned_pod(privileged_pod_spec()), uid="uid-denied", username="bob")
    denied["request"]["object"]["spec"]["containers"][0]["env"] = [
        {"name": "PASSWORD", "value": SECRET}
    ]
    denied["request"]["object"]["spec"]["containers"][0]["image"] = (
        f"registry.example.com/team/app@{DIGEST}"
    )
    allowed = review(workload("Deployment", "api", pod_spec(), "shop"), uid="uid-allowed")
    warned = review(workload("Pod", "tool", privileged_pod_spec(), "dev-1"), uid="uid-warned")
    with webhook(tls, store, flush_interval_s=3600) as (server, recorder, _):
        assert post(server, tls, denied)["allowed"] is False
        assert post(server, tls, allowed)["allowed"] is True
        assert post(server, tls, warned)["allowed"] is True
        unreadable = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
        assert post(server, tls, unreadable | {"request": {"uid": "uid-bad"}})["allowed"] is False
        assert recorder.pending == 4  # nothing written on the request path
        _, metrics = get(server, tls, "GET", "/metrics")
        assert "kubeproof_admission_evidence_pending 4" in metrics
    assert recorder.close() == 0  # shutdown flushes the buffer
    store.close()

    found = decisions(database.url)
    assert set(found) == {"uid-denied", "uid-allowed", "uid-warned", "uid-bad"}
    assert (found["uid-bad"]["decision"], found["uid-bad"]["kind"]) == ("unjudgeable", "")
    row = found["uid-denied"]
    assert (row["username"], row["groups"], row["operation"]) == (
        "bob",
        ["system:authenticated"],
        "CREATE",
    )
    assert (row["kind"], row["namespace"], row["name"]) == ("Pod", "shop", "web-7d9f8b6c5d-x2x7q")
    assert (row["owner_kind"], row["owner_name"]) == ("Deployment", "web")
    assert row["images"] == [
        {"container": "app", "image": f"registry.example.com/team/app@{DIGEST}", "digest": DIGEST}
    ]
    outcomes = {rule["check"]: rule["outcome"] for rule in row["rules"]}
    assert outcomes["pss.privileged"] == "fail"
    assert outcomes["images.allowed-source"] == "pass"
    assert (row["decision"], bool(row["allowed"]), row["mode"]) == ("denied", False, "enforce")
    assert row["policy_digest"] == parse_policy(POLICY).digest
    assert found["uid-allowed"]["decision"] == "allowed"
    assert found["uid-allowed"]["images"][0]["digest"] is None  # a tag: no digest to record
    assert all(r["outcome"] == "pass" for r in found["uid-allowed"]["rules"])
    assert (found["uid-warned"]["decision"], found["uid-warned"]["mode"]) == ("warned", "warn")
    # One batch, one ledger entry, and the chain verifies.
    assert {r["batch_id"] for r in found.values()} == {1}
    assert sql(database.url, "SELECT entry_type FROM ledger") == [("admission",)]
    code, output = verify(database.url, capsys)
    assert code == 0, output
    # Identities and digests only: the object's body never reaches the database.
    stored = database.stored_text()
    assert "uid-denied" in stored
    assert SECRET not in stored
    assert "PASSWORD" not in stored


def _record(store: Store, uids: Sequence[str], at: datetime) -> None:
    record_batch(store, _rows(uids, at), cluster="prod", webhook="test-host", recorded_at=at)


def _rows(uids: Sequence[str], at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "uid": uid,
            "decided_at": at,
            "username": "alice",
            "groups": ["system:authenticated"],
            "operation": "CREATE",
            "api_group": "",
            "kind": "Pod",
            "namespace": "shop",
            "name": uid,
            "owner_kind": "",
            "owner_name": "",
            "images": [{"container": "app", "image": "nginx", "digest": None}],
            "rules": [{"check": "pss.privileged", "outcome": "fail"}],
            "decision": "denied",
            "allowed": False,
            "mode": "enforce",
            "dry_run": False,
            "policy_digest": "0" * 64,
            "reason": "breaks pss.privileged",
        }
        for uid in uids
    ]


EDITS: dict[str, tuple[Callable[[str], None], str]] = {
    "a decision's answer changed": (
        lambda url: sql(url, "UPDATE admission_decisions SET decision = 'allowed' WHERE uid = 'b'"),
        "ledger entry #2 (admission",
    ),
    "a decision deleted": (
        lambda url: sql(url, "DELETE FROM admission_decisions WHERE uid = 'c'"),
        "admission decisions of its batch were edited, added or deleted",
    ),
    "a decision moved to another batch": (
        lambda url: sql(url, "UPDATE admission_decisions SET batch_id = 1 WHERE uid = 'c'"),
        "ledger entry #1",  # the first batch, now one decision larger, breaks first
    ),
    "a batch and its decisions deleted": (
        lambda url: sql(
            url,
            "DELETE FROM admission_decisions WHERE batch_id = 2",
            "DELETE FROM admission_batches WHERE id = 2",
        ),
        "its batch of admission decisions was deleted",
    ),
    "a batch's count edited": (
        lambda url: sql(url, "UPDATE admission_batches SET decisions = 1 WHERE id = 2"),
        "ledger entry #2",
    ),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_edited_or_deleted_decisions_fail_verification(
    database: Database, edit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(database.url)
    at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    _record(store, ["a"], at)
    _record(store, ["b", "c"], at + timedelta(seconds=2))
    store.close()
    assert verify(database.url, capsys)[0] == 0
    change, expected = EDITS[edit]
    change(database.url)
    code, output = verify(database.url, capsys)
    assert code == 1, output
    assert expected in output


def exception(checks: list[str], subjects: list[str], namespaces: list[str]) -> NewException:
    expires = (datetime.now(UTC) + timedelta(days=30)).date()
    return NewException(
        checks=checks, owner="platform", reason="vendor agent needs it", expires=expires,
        subjects=subjects, namespaces=namespaces, ticket="T-1", approver="ciso",
    )  # fmt: skip


def test_a_batch_without_an_admission_entry_fails_verification(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(database.url)
    _record(store, ["a"], datetime(2026, 3, 2, 10, tzinfo=UTC))
    added = add_exception(
        store, exception(["pss.privileged"], [], ["shop"]), now=datetime.now(UTC), max_days=90
    )
    store.close()
    assert verify(database.url, capsys)[0] == 0
    # A forged batch can only claim an entry no other batch holds: the exception's.
    sql(
        database.url,
        "INSERT INTO admission_batches (ledger_seq, cluster, webhook, recorded_at, "
        "first_decided_at, last_decided_at, decisions) VALUES "
        f"({added.ledger_seq}, 'prod', 'x', '2026-03-02 12:00:00', '2026-03-02 12:00:00', "
        "'2026-03-02 12:00:00', 0)",
    )
    code, output = verify(database.url, capsys)
    assert code == 1, output
    assert "admission batch #2 has no ledger entry of its own" in output


def test_an_exception_from_the_store_keeps_a_rule_from_denying(
    database: Database, tls: Tls
) -> None:
    store = open_store(database.url)
    now = datetime.now(UTC)
    added = add_exception(
        store, exception(["pss.*"], ["Deployment/shop/web"], []), now=now, max_days=90
    )
    excepted = review(owned_pod(privileged_pod_spec()), uid="uid-excepted")
    other = workload("Pod", "other", privileged_pod_spec(), "shop")
    with webhook(tls, store, flush_interval_s=3600) as (server, recorder, _):
        # The pod belongs to the excepted Deployment (through its ReplicaSet): admitted,
        # and the API server's audit log will name the exception.
        answer = post(server, tls, excepted)
        assert answer["allowed"] is True
        assert answer["auditAnnotations"]["exceptions"] == f"EXC-{added.id}"
        # Another pod in the same namespace is not covered.
        assert post(server, tls, review(other, uid="uid-other"))["allowed"] is False
    recorder.close()
    found = decisions(database.url)
    rules = {rule["check"]: rule for rule in found["uid-excepted"]["rules"]}
    assert rules["pss.privileged"] == {
        "check": "pss.privileged",
        "outcome": "excepted",
        "exception": f"EXC-{added.id}",
    }
    assert found["uid-excepted"]["decision"] == "allowed"
    assert found["uid-other"]["decision"] == "denied"

    # Revoked, and re-read from the store: the same pod is denied again.
    revoke_exception(store, added.id, by="ciso", reason="fixed", now=datetime.now(UTC))
    with webhook(tls, store, flush_interval_s=3600) as (server, recorder, _):
        assert post(server, tls, review(owned_pod(privileged_pod_spec())))["allowed"] is False
    recorder.close()
    store.close()


def test_a_store_outage_keeps_decisions_buffered_says_so_and_recovers(
    own_postgres: postgres.PostgresServer, tls: Tls, capsys: pytest.CaptureFixture[str]
) -> None:
    url = own_postgres.url(own_postgres.create_database())
    store = open_store(url)
    privileged = workload("Pod", "bad", privileged_pod_spec(), "shop")
    with webhook(tls, store, flush_interval_s=0.2) as (server, recorder, lines):
        post(server, tls, review(privileged, uid="before"))
        wait_until(lambda: recorder.state.recorded == 1, "the first decision to be written")
        own_postgres.take_down()
        for uid in ("during-1", "during-2"):
            assert post(server, tls, review(privileged, uid=uid))["allowed"] is False
        # Loud on every channel: a log line, the metrics, and readiness. A write may fail
        # between the two requests, with one decision buffered; the retry names both.
        wait_until(
            lambda: any(
                "NOT RECORDED YET" in line and "2 decisions buffered" in line for line in lines
            ),
            "a failed write naming both buffered decisions",
        )
        status, body = get(server, tls, "GET", "/readyz")
        assert status == 503 and "cannot be written" in body and "2 decisions buffered" in body
        _, metrics = get(server, tls, "GET", "/metrics")
        assert "kubeproof_admission_evidence_store_up 0" in metrics
        assert "kubeproof_admission_evidence_pending 2" in metrics
        assert "postgresql" in body and "password" not in body
        own_postgres.bring_up()
        wait_until(lambda: recorder.pending == 0, "the buffered decisions to be written", 60)
        assert get(server, tls, "GET", "/readyz") == (200, "ok\n")
        assert any("written again" in line for line in lines)
    assert recorder.close() == 0
    store.close()
    assert set(decisions(url)) == {"before", "during-1", "during-2"}
    code, output = verify(url, capsys)
    assert code == 0, output


def test_a_full_buffer_counts_and_logs_every_lost_decision(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "evidence.db"))
    lines: list[str] = []
    # Not started: nothing drains the buffer, as while the store is down.
    recorder = DecisionRecorder(
        store, cluster="prod", webhook="h", max_buffered=2, log=lines.append
    )
    for uid in ("a", "b", "c", "d"):
        recorder.add({"uid": uid})
    assert (recorder.pending, recorder.state.dropped) == (2, 2)
    assert lines == [
        "admission evidence LOST: the buffer holds 2 decisions the store has not taken; "
        "1 decisions dropped so far"
    ]
    assert "kubeproof_admission_evidence_dropped_total 2" in recorder.render_metrics()
    store.close()


def test_a_selector_exception_matches_the_labels_of_the_admitted_pod(
    database: Database, tls: Tls
) -> None:
    store = open_store(database.url)
    scoped = exception(["pss.*"], [], [])
    added = add_exception(
        store,
        NewException(**{**scoped.__dict__, "selector": {"matchLabels": {"app": "web"}}}),
        now=datetime.now(UTC),
        max_days=90,
    )
    unlabelled = owned_pod(privileged_pod_spec())
    unlabelled["metadata"]["labels"] = {"app": "other", "pod-template-hash": "7d9f8b6c5d"}
    with webhook(tls, store, flush_interval_s=3600) as (server, recorder, _):
        assert post(server, tls, review(owned_pod(privileged_pod_spec())))["allowed"] is True
        assert post(server, tls, review(unlabelled))["allowed"] is False
    recorder.close()
    store.close()
    answers = sorted(
        (row["decision"], tuple(sorted({r.get("exception", "") for r in row["rules"]})))
        for row in decisions(database.url).values()
    )
    assert answers == [("allowed", ("", f"EXC-{added.id}")), ("denied", ("",))]


def test_a_flush_writes_what_is_buffered_in_batches_of_at_most_n(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    store = open_store(url)
    lines: list[str] = []
    # Not started: this test decides when to flush.
    recorder = DecisionRecorder(store, cluster="prod", webhook="h", batch_size=2, log=lines.append)
    for row in _rows(["a", "b", "c", "d", "e"], datetime(2026, 3, 2, tzinfo=UTC)):
        recorder.add(row)
    assert recorder.flush() and recorder.pending == 0
    assert (recorder.state.recorded, recorder.state.batches) == (5, 3)
    assert sql(url, "SELECT decisions FROM admission_batches ORDER BY id") == [(2,), (2,), (1,)]
    assert recorder.close() == 0 and lines == []
    store.close()
    assert verify(url, capsys)[0] == 0


def test_hostile_request_fields_are_stored_cut_and_clean(
    database: Database, tls: Tls, capsys: pytest.CaptureFixture[str]
) -> None:
    store = open_store(database.url)
    document = review(workload("Pod", "web", privileged_pod_spec(), "shop"))
    request = document["request"]
    request["uid"] = "u\x00" + "x" * 1000
    request["name"] = "we\x00b"
    request["userInfo"] = {"username": "mallory\x00", "groups": ["g\x00", "ok"]}
    request["object"]["spec"]["containers"][0]["name"] = "a\x00pp"
    with webhook(tls, store, flush_interval_s=3600) as (server, recorder, lines):
        assert post(server, tls, document)["allowed"] is False
    assert recorder.close() == 0
    assert recorder.state.dropped == 0, lines
    store.close()
    [row] = decisions(database.url).values()
    assert row["uid"] == "u" + "x" * 252  # cut to the column's 253 characters
    assert (row["name"], row["username"], row["groups"]) == ("web", "mallory", ["g", "ok"])
    assert row["images"][0]["container"] == "app"
    assert verify(database.url, capsys)[0] == 0


def test_a_decision_the_store_refuses_is_lost_loudly_without_holding_back_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    store = open_store(url)
    lines: list[str] = []
    recorder = DecisionRecorder(store, cluster="prod", webhook="h", log=lines.append)
    good = _rows(["a", "c"], datetime(2026, 3, 2, tzinfo=UTC))
    # Not JSON: no database takes it, however often it is retried.
    poison = {**good[0], "uid": "b", "images": [{"container": "app", "digest": object()}]}
    for row in (good[0], poison, good[1]):
        recorder.add(row)
    assert recorder.flush() and recorder.pending == 0
    assert (recorder.state.recorded, recorder.state.dropped) == (2, 1)
    assert any("LOST: the store refused a decision" in line for line in lines)
    assert "kubeproof_admission_evidence_dropped_total 1" in recorder.render_metrics()
    recorder.close()
    store.close()
    assert sorted(uid for (uid,) in sql(url, "SELECT uid FROM admission_decisions")) == ["a", "c"]
    assert verify(url, capsys)[0] == 0
