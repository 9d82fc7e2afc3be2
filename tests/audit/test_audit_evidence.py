"""`kubeproof audit serve|follow --db`: detections and Falco alerts recorded off the
receiving path, with heartbeats; buffered and retried loudly while the store is down
(a real PostgreSQL server stopped and started again), flushed on shutdown."""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import postgres
from admission.webhook_tls import Tls, make_tls
from audit.test_receiver_server import FALCO, event, event_list
from databases import query as rows
from kubeproof.audit.evidence import DetectionRecorder, detection_row, new_run_id
from kubeproof.cli.main import main
from kubeproof.store.db import open_store
from kubeproof.store.schema import FINGERPRINT, NAME
from waiting import wait_until


def verify(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["evidence", "verify", "--db", url])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("evidence-tls"), "kubeproof-audit")


def post(port: int, tls: Tls, path: str, body: bytes) -> int:
    context = ssl.create_default_context(cafile=str(tls.ca_cert))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        return connection.getresponse().status
    finally:
        connection.close()


def get(port: int, tls: Tls, path: str) -> str:
    context = ssl.create_default_context(cafile=str(tls.ca_cert))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().read().decode()
    finally:
        connection.close()


def test_serve_records_detections_and_falco_alerts_with_heartbeats(
    tls: Tls, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    process = subprocess.Popen(
        [sys.executable, "-m", "kubeproof", "audit", "serve", "--port", "0",
         "--tls-cert", str(tls.cert), "--tls-key", str(tls.key), "--cluster-name", "prod",
         "--heartbeat-interval", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_environment(), "KUBEPROOF_DB": url},  # the store from the environment
    )  # fmt: skip
    assert process.stderr is not None and process.stdout is not None
    port = int(process.stderr.readline().split("127.0.0.1:")[1].split()[0])
    assert "recording detections of prod" in process.stderr.readline()
    batch = event_list(event("serve-1"), event("serve-2", requestURI="/api/v1/x"))
    assert post(port, tls, "/audit", batch) == 200
    assert post(port, tls, "/audit", batch) == 200  # the API server retrying: idempotent
    assert post(port, tls, "/falco", orjson.dumps(FALCO)) == 200
    printed = [json.loads(process.stdout.readline()) for _ in range(3)]
    wait_until(
        lambda: "kubeproof_audit_evidence_recorded_total 3" in get(port, tls, "/metrics"),
        "the detections to be recorded",
    )
    time.sleep(1.5)  # at least one `alive` heartbeat
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    said = process.stderr.read()
    assert "3 detections recorded" in said, said
    stored = rows(
        url,
        "SELECT source, detector_id, kind, namespace, name, container, evidence_key, cluster, "
        "evidence FROM detections ORDER BY id",
    )
    assert [r[:8] for r in stored] == [
        ("audit", "audit.pod-exec", "User", "", "alice", "", "serve-1", "prod"),
        ("audit", "audit.pod-exec", "User", "", "alice", "", "serve-2", "prod"),
        ("falco", "falco.terminal-shell-in-container", "StatefulSet", "shop", "db", "pg",
         printed[2]["key"], "prod"),
    ]  # fmt: skip
    # Stored exactly as printed.
    assert [json.loads(r[8]) for r in stored] == [p["evidence"] for p in printed]
    beats = rows(url, "SELECT component, state, counters FROM agent_heartbeats ORDER BY id")
    states = [state for _, state, _ in beats]
    assert {c for c, _, _ in beats} == {"audit"}
    assert states[0] == "started" and states[-1] == "stopped" and "alive" in states
    last = json.loads(beats[-1][2])
    assert (last["events"], last["duplicates"], last["falco_alerts"]) == (2, 2, 1)
    assert verify(url, capsys)[0] == 0


def _environment() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "KUBEPROOF_DB"}


def test_follow_records_what_it_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    log = tmp_path / "audit.log"
    log.write_text(json.dumps(event("follow-1")) + "\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "kubeproof", "audit", "follow", str(log), "--from-start",
         "--db", url, "--poll-interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    assert json.loads(process.stdout.readline())["key"] == "follow-1"
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0, process.stderr.read()
    assert [r[0] for r in rows(url, "SELECT evidence_key FROM detections")] == ["follow-1"]
    states = [r[0] for r in rows(url, "SELECT state FROM agent_heartbeats ORDER BY id")]
    assert states == ["started", "stopped"]
    assert verify(url, capsys)[0] == 0


def test_a_bad_store_stops_the_receiver_before_it_listens(tls: Tls, tmp_path: Path) -> None:
    code = main(
        ["audit", "serve", "--port", "0", "--tls-cert", str(tls.cert), "--tls-key",
         str(tls.key), "--db", "postgresql://kp:s3cret-pw@127.0.0.1:1/nothing"]
    )  # fmt: skip
    assert code == 2


def printed_line(audit_id: str) -> bytes:
    detection = {
        "check": "audit.pod-exec",
        "severity": "high",
        "criteria": {"CC7.2": "..."},
        "subject": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "User",
                    "namespace": None, "name": "alice"},
        "message": "alice opened pods/exec",
        "fingerprint": "a" * 32,
        "evidence": {"auditIDs": [audit_id], "firstTime": "2026-03-02T10:00:00.000000Z"},
        "key": audit_id,
    }  # fmt: skip
    return orjson.dumps(detection)


def test_a_store_outage_keeps_detections_buffered_says_so_and_recovers(
    own_postgres: postgres.PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = own_postgres.url(own_postgres.create_database())
    store = open_store(url)
    lines: list[str] = []
    recorder = DetectionRecorder(
        store,
        cluster="prod",
        run_id=new_run_id(),
        log=lines.append,
        counters=lambda: {"events": 1},
        flush_interval_s=0.2,
    ).start()
    recorder.add(printed_line("before"))
    wait_until(lambda: recorder.state.recorded == 1, "the first detection to be written")
    own_postgres.take_down()
    recorder.add(printed_line("during-1"))
    recorder.add(printed_line("during-2"))
    wait_until(  # a write may fail between the two additions; its retry names both
        lambda: any("NOT RECORDED YET" in line and "2 detections" in line for line in lines),
        "a failed write naming both buffered detections",
    )
    failure = next(line for line in lines if "NOT RECORDED YET" in line and "2 detections" in line)
    assert "retrying" in failure and "postgresql" in failure
    metrics = "\n".join(recorder.metrics_lines())
    assert "kubeproof_audit_evidence_store_up 0" in metrics
    assert "kubeproof_audit_evidence_pending 2" in metrics
    own_postgres.bring_up()
    wait_until(lambda: recorder.pending == 0, "the buffered detections to be written", 60)
    assert any("written again" in line for line in lines)
    assert recorder.close() == 0
    store.close()
    keys = {r[0] for r in rows(url, "SELECT evidence_key FROM detections")}
    assert keys == {"before", "during-1", "during-2"}
    # The heartbeat written during the outage says so.
    counters = [r[0] for r in rows(url, "SELECT counters FROM agent_heartbeats ORDER BY id")]
    assert counters[-1]["store_failures"] >= 1
    code, output = verify(url, capsys)
    assert code == 0, output


def test_a_full_buffer_counts_and_logs_every_lost_detection(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "evidence.db"))
    lines: list[str] = []
    # Not started: nothing drains the buffer, as while the store is down.
    recorder = DetectionRecorder(
        store, cluster="prod", run_id="r", log=lines.append, max_buffered=2
    )
    for key in ("a", "b", "c", "d"):
        recorder.add(printed_line(key))
    assert (recorder.pending, recorder.state.dropped) == (2, 2)
    assert len(lines) == 1 and "audit evidence LOST" in lines[0] and "1 detections" in lines[0]
    assert "kubeproof_audit_evidence_dropped_total 2" in recorder.metrics_lines()
    assert recorder.close() == 0  # the two it kept are written at shutdown
    assert len(rows(str(tmp_path / "evidence.db"), "SELECT id FROM detections")) == 2


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)


_TEXT = st.text(max_size=400)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["check", "severity", "criteria", "subject", "message", "fingerprint", "evidence",
             "key"]
        ),
        _JSON,
    )
)  # fmt: skip
def test_any_printed_detection_becomes_a_row_that_fits_its_columns(printed: dict[str, Any]) -> None:
    row = detection_row(printed, cluster="prod", run_id="r", received_at=datetime.now(UTC))
    limits = {"detector_id": 100, "severity": 10, "fingerprint": FINGERPRINT}
    for name in ("cluster", "api_version", "kind", "namespace", "name", "container",
                 "evidence_key", "detector_id", "severity", "fingerprint"):  # fmt: skip
        assert isinstance(row[name], str) and len(row[name]) <= limits.get(name, NAME)
        assert "\x00" not in row[name]
    assert not any("\x00" in text for text in _strings(row["evidence"]))
    json.dumps(row["evidence"])  # the database's JSON serializer takes it
    assert row["observed_at"].tzinfo is not None


def test_a_bad_signing_key_or_cluster_name_records_nothing(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(json.dumps(event("scan-1")) + "\n")
    url = f"sqlite:///{tmp_path / 'evidence.db'}"
    scan = ["audit", "scan", str(log), "--learning-period", "0s", "--db", url]
    assert main([*scan, "--signing-key", str(tmp_path / "missing.key")]) == 2
    assert main([*scan, "--cluster-name", " "]) == 2
    assert not (tmp_path / "evidence.db").exists()
    assert main(scan) == 1
    assert [r[0] for r in rows(url, "SELECT evidence_key FROM detections")] == ["scan-1"]
