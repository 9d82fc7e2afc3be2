"""What continuous monitoring reports beyond the store, against the real control plane:
Falco alerts attached to a pod's top owner read from the cluster, and `kubeproof agent`
with `--metrics-port` and `--notify-webhook` (a loopback receiver that fails once)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controlplane import ControlPlane, wait_for

from kubeproof.audit.falco import parse_alert
from kubeproof.audit.pod_owner import PodOwners
from kubeproof.audit.receiver import falco_result
from kubeproof.sources.cluster import ApiClient
from kubeproof.sources.kubeconfig import load_connection
from notify.http_sink import Sink, http_sink

pytestmark = pytest.mark.integration

SRC = Path(__file__).resolve().parents[2] / "src"


def deployment(name: str, privileged: bool) -> dict[str, Any]:
    labels = {"app": name}
    container = {
        "name": "app",
        "image": "registry.example/app:1",
        "securityContext": {"privileged": privileged},
    }
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


@pytest.fixture(scope="module")
def namespace(control_plane: ControlPlane) -> str:
    name = f"kp-monitoring-{uuid.uuid4().hex[:8]}"
    control_plane.create("/api/v1/namespaces", {"metadata": {"name": name}})
    return name


def test_a_falco_alert_attaches_to_the_deployment_read_from_the_cluster(
    control_plane: ControlPlane, namespace: str
) -> None:
    control_plane.create(
        f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment("shop", False)
    )
    # The controller-manager makes the ReplicaSet and its pod (which stays Pending).
    pods = f"/api/v1/namespaces/{namespace}/pods"
    pod = wait_for(
        lambda: next(iter(control_plane.get(pods).json()["items"]), None), "the pod", 60
    )["metadata"]["name"]
    owners = PodOwners(ApiClient(load_connection(str(control_plane.scanner_kubeconfig), None)))
    alert = parse_alert(
        {
            "rule": "Terminal shell in container",
            "priority": "Critical",
            "time": "2026-11-28T12:00:00.000000001Z",
            "output": "shell spawned",
            "output_fields": {"k8s.ns.name": namespace, "k8s.pod.name": pod},
            "tags": ["mitre_privilege_escalation"],
        }
    )
    result = falco_result(alert, owners)
    assert (result.subject.kind, result.subject.name) == ("Deployment", "shop")
    assert result.extra["evidence"]["workloadInferred"] is False
    assert set(result.check.criteria) == {"CC7.2", "CC6.1", "CC6.3"}

    gone = owners.workload(namespace, "shop-5d4f8c7b9-k2v7x")  # no such pod (any more)
    assert gone.inferred and gone.subject.kind == "Deployment"
    assert "pod not found in the cluster (404)" in gone.note


@pytest.fixture
def agent(
    control_plane: ControlPlane, tmp_path: Path
) -> Iterator[tuple[Path, Sink, subprocess.Popen[bytes]]]:
    log = tmp_path / "agent.log"
    with http_sink([500]) as sink, log.open("w") as output:
        command = [
            sys.executable,
            "-m",
            "kubeproof",
            "agent",
            "--db",
            str(tmp_path / "evidence.db"),
            "--kubeconfig",
            str(control_plane.scanner_kubeconfig),
            "--settle-interval",
            "1s",
            "--metrics-port",
            "0",
            "--notify-webhook",
            sink.url,
        ]
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )
        try:
            wait_for(lambda: "recorded scan #1" in log.read_text() or None, "the first scan", 90)
            yield log, sink, process
        finally:
            process.terminate()
            process.wait(30)


def scrape(log: Path) -> str:
    found = re.search(r"metrics on (http://127\.0\.0\.1:\d+/metrics)", log.read_text())
    assert found, log.read_text()[-2000:]
    with urllib.request.urlopen(found.group(1), timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return str(response.read().decode())


def test_the_agent_notifies_transitions_and_serves_metrics(
    control_plane: ControlPlane,
    namespace: str,
    agent: tuple[Path, Sink, subprocess.Popen[bytes]],
) -> None:
    log, sink, _process = agent
    before = scrape(log)
    assert "kubeproof_agent_last_full_scan_timestamp_seconds " in before
    assert re.search(
        r'kubeproof_agent_results\{criterion="CC6\.8",severity="\w+",status="pass"\}', before
    )
    control_plane.create(
        f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment("risky", True)
    )

    def notified() -> list[dict[str, Any]]:
        documents = [json.loads(body) for body in sink.bodies(200)]
        return [
            d
            for d in documents
            if d["check"] == "pss.privileged" and f"{namespace}/risky" in d["subject"]
        ]

    sent = wait_for(lambda: notified() or None, "the failing transition's notification", 30)[0]
    assert sent["event"] == "transition" and sent["details"]["transition"] == "failing"
    assert 500 in [status for _p, _b, status in sink.received]  # retried after the 500
    assert "T000-secret-path" not in log.read_text()

    def settled() -> str | None:
        text = scrape(log)
        return text if 'kubeproof_agent_open_findings{severity="' in text else None

    metrics = wait_for(settled, "open findings in the metrics", 30)
    assert re.search(
        r'kubeproof_agent_transitions_total\{transition="failing",check="pss\.privileged",'
        r'severity="\w+"\} [1-9]',
        metrics,
    )
    assert re.search(
        r'kubeproof_agent_results\{criterion="[^"]+",severity="\w+",status="fail"\} [1-9]', metrics
    )
    assert re.search(
        r'kubeproof_notifications_total\{channel="webhook-1",outcome="sent"\} [1-9]', metrics
    )
    assert re.search(r"kubeproof_agent_watch_lag_seconds \d", metrics)
    assert re.search(r'kubeproof_agent_watch_events_total\{what="events"\} [1-9]', metrics)
