"""`kubeproof audit serve`'s endpoint on loopback over TLS: EventList batches through the
detector pipeline (duplicates idempotent, malformed bodies 400 and counted), Falco
alerts (not-JSON 400, duplicates once), /metrics, notifications, and the webhook config."""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from admission.webhook_tls import Tls, make_tls
from kubeproof.audit.baseline import Baseline
from kubeproof.audit.pipeline import Pipeline
from kubeproof.audit.pod_owner import PodOwners
from kubeproof.audit.receiver import Receiver
from kubeproof.audit.server import AuditServer
from kubeproof.model import Result
from kubeproof.notify import Notifier, NotifySettings, WebhookChannel
from kubeproof.notify.message import from_detection
from kubeproof.serving import CertificateReloader, start_in_thread
from notify.http_sink import http_sink


def event(audit_id: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id,
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/shop/pods/web-1/exec?command=sh&stdin=true",
        "verb": "create",
        "user": {"username": "alice", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.5"],
        "userAgent": "kubectl/v1.31.0",
        "objectRef": {
            "resource": "pods",
            "namespace": "shop",
            "name": "web-1",
            "apiVersion": "v1",
            "subresource": "exec",
        },
        "responseStatus": {"code": 101},
        "requestReceivedTimestamp": "2026-11-28T10:00:00.000000Z",
        "stageTimestamp": "2026-11-28T10:00:00.100000Z",
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }
    data.update(changes)
    return data


def event_list(*items: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}
    )


FALCO = {
    "output": "Warning Shell spawned (user=root shell=bash)",
    "priority": "Warning",
    "rule": "Terminal shell in container",
    "time": "2026-11-28T12:00:00.123456789Z",
    "output_fields": {"k8s.ns.name": "shop", "k8s.pod.name": "db-0", "container.name": "pg"},
    "tags": ["mitre_execution", "shell"],
    "hostname": "node-1",
    "source": "syscall",
}


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("receiver-tls"), "kubeproof-audit")


class Running:
    def __init__(self, server: AuditServer, tls: Tls, emitted: list[Result]) -> None:
        self.server, self.tls, self.emitted = server, tls, emitted

    def post(self, path: str, body: bytes) -> tuple[int, str]:
        context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.server.port, context=context, timeout=10
        )
        try:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def metrics(self) -> str:
        context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
        connection = http.client.HTTPSConnection("127.0.0.1", self.server.port, context=context)
        connection.request("GET", "/metrics")
        return connection.getresponse().read().decode()


@pytest.fixture
def running(tls: Tls) -> Iterator[Running]:
    emitted: list[Result] = []
    pipeline = Pipeline(Baseline(0.0))
    receiver = Receiver(pipeline, PodOwners(None), emitted.append)
    certificates = CertificateReloader(str(tls.cert), str(tls.key), interval_s=0.0)
    server = AuditServer(("127.0.0.1", 0), receiver, certificates, log=lambda line: None)
    thread = start_in_thread(server)
    yield Running(server, tls, emitted)
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_batch_runs_through_the_detectors(running: Running) -> None:
    status, text = running.post("/audit", event_list(event("exec-1")))
    assert (status, text) == (200, "1 events received\n")
    [result] = running.emitted
    assert result.check.id == "audit.pod-exec"
    assert result.extra["evidence"]["auditIDs"] == ["exec-1"]
    assert result.extra["evidence"]["logLines"] == ["webhook batch 1:1"]


def test_a_retried_batch_is_idempotent(running: Running) -> None:
    body = event_list(event("exec-1"), event("exec-2"))
    assert running.post("/audit", body)[0] == 200
    assert running.post("/audit", body)[0] == 200
    assert sorted(r.extra["key"] for r in running.emitted) == ["exec-1", "exec-2"]
    metrics = running.metrics()
    assert 'kubeproof_audit_events_total{outcome="received"} 2' in metrics
    assert 'kubeproof_audit_events_total{outcome="duplicate"} 2' in metrics
    assert 'kubeproof_detector_hits_total{detector="audit.pod-exec",severity="high"} 2' in metrics


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"kind": "EventList"}', b'{"kind": "Event"}', b"\xff\xfe", b""],
)
def test_a_malformed_body_is_refused_and_counted(running: Running, body: bytes) -> None:
    status, text = running.post("/audit", body)
    assert status == 400 and text.startswith("not an audit")
    metrics = running.metrics()
    assert 'kubeproof_receiver_bad_requests_total{endpoint="audit",reason="not-event-list"} 1' in (
        metrics
    )
    assert running.emitted == []
    assert running.post("/audit", event_list(event("after")))[0] == 200  # still serving


def test_a_bad_item_in_a_good_batch_is_skipped_and_counted(running: Running) -> None:
    status, _ = running.post("/audit", event_list(event("ok-1"), {"stage": "x"}, event("ok-2")))
    assert status == 200
    assert len(running.emitted) == 2
    assert 'kubeproof_audit_events_total{outcome="malformed"} 1' in running.metrics()


def test_falco_alerts_become_results_once(running: Running) -> None:
    body = orjson.dumps(FALCO)
    assert running.post("/falco", body) == (200, "1 alerts received\n")
    assert running.post("/falco", body)[0] == 200  # Falco retried: the same alert
    [result] = running.emitted
    assert result.check.id == "falco.terminal-shell-in-container"
    assert (result.subject.kind, result.subject.name, result.subject.container) == (
        "StatefulSet",
        "db",
        "pg",
    )
    metrics = running.metrics()
    assert 'kubeproof_falco_alerts_total{priority="warning",outcome="accepted"} 1' in metrics
    assert 'kubeproof_falco_alerts_total{priority="warning",outcome="duplicate"} 1' in metrics


def test_a_falco_payload_that_is_not_json_is_refused_and_counted(running: Running) -> None:
    status, text = running.post("/falco", b"12:00:00 Warning Shell spawned")
    assert status == 400 and "not JSON" in text
    status, text = running.post("/falco", b'{"rule": "x"}')
    assert status == 400 and "field priority" in text
    metrics = running.metrics()
    assert 'reason="not-falco-json"} 1' in metrics and 'reason="not-falco-alert"} 1' in metrics
    assert running.emitted == []


def test_unknown_paths_and_oversized_bodies(running: Running) -> None:
    assert running.post("/validate", b"{}")[0] == 404
    running.server.max_body_bytes = 100
    assert running.post("/audit", b" " * 200)[0] == 413
    assert 'endpoint="http",reason="too-large"} 1' in running.metrics()


def test_detections_reach_a_notification_receiver(tls: Tls) -> None:
    with http_sink([500]) as sink:
        settings = NotifySettings(initial_backoff_s=0.05)
        notifier = Notifier([WebhookChannel("siem", sink.url)], settings)
        pipeline = Pipeline(Baseline(0.0))
        receiver = Receiver(pipeline, PodOwners(None), lambda r: notifier.submit(from_detection(r)))
        receiver.audit_batch(event_list(event("exec-9")))
        receiver.audit_batch(event_list(event("exec-9")))  # a duplicate: not notified again
        notifier.close(timeout_s=5)
    [body] = sink.bodies(200)
    document = json.loads(body)
    assert document["check"] == "audit.pod-exec" and document["details"]["auditIDs"] == ["exec-9"]
    assert [status for _p, _b, status in sink.received] == [500, 200]


def test_webhook_config_is_a_kubeconfig_for_the_api_server(tls: Tls, tmp_path: Path) -> None:
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubeproof",
            "audit",
            "webhook-config",
            "--url",
            "https://127.0.0.1:8444/audit",
            "--ca-file",
            str(tls.ca_cert),
            "--client-cert",
            "/etc/k/client.crt",
            "--client-key",
            "/etc/k/client.key",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    config = yaml.safe_load(printed)
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == "https://127.0.0.1:8444/audit"
    assert cluster["cluster"]["certificate-authority-data"]
    assert config["users"][0]["user"] == {
        "client-certificate": "/etc/k/client.crt",
        "client-key": "/etc/k/client.key",
    }
    refused = subprocess.run(
        [sys.executable, "-m", "kubeproof", "audit", "webhook-config", "--url", "http://x/audit"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "must be https://" in refused.stderr


@settings(max_examples=150, deadline=None)
@given(
    st.binary(max_size=500)
    | st.builds(
        lambda items: orjson.dumps({"kind": "EventList", "items": items}),
        st.lists(st.dictionaries(st.sampled_from(sorted(event("x"))), st.text()), max_size=3),
    )
)
def test_any_body_is_answered_200_or_400(body: bytes) -> None:
    receiver = Receiver(Pipeline(Baseline(0.0)), PodOwners(None), lambda result: None)
    assert receiver.audit_batch(body).status in (200, 400)
    assert receiver.falco_body(body).status in (200, 400)


def test_the_serve_command_prints_notifies_and_saves_its_baseline(tls: Tls, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    with http_sink() as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubeproof",
                "audit",
                "serve",
                "--port",
                "0",
                "--tls-cert",
                str(tls.cert),
                "--tls-key",
                str(tls.key),
                "--baseline",
                str(baseline),
                "--notify-webhook",
                sink.url,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None and process.stdout is not None
        port = int(process.stderr.readline().split("127.0.0.1:")[1].split()[0])
        context = ssl.create_default_context(cafile=str(tls.ca_cert))
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        connection.request("POST", "/audit", event_list(event("cli-1")))
        assert connection.getresponse().status == 200
        connection.close()
        detection = json.loads(process.stdout.readline())
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert detection["check"] == "audit.pod-exec" and detection["key"] == "cli-1"
    assert json.loads(baseline.read_text())["kind"] == "KubeproofAuditBaseline"
    [body] = sink.bodies()
    assert json.loads(body)["details"]["auditIDs"] == ["cli-1"]
    assert "T000-secret-path" not in process.stderr.read()
