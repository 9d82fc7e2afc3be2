"""`kubeproof scan --cluster` through the public CLI against an API that misbehaves in ways
a real kube-apiserver cannot be made to on demand (tests/fault_api.py): throttling and
transient errors are retried; a hang, a malformed, cut-short or endless body costs only its own
kind, which is recorded as an error and never judged; a scan that read nothing exits 2."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from fault_api import HANG, HUGE, HUGE_SENT_BYTES, MALFORMED, OK, RESET, TRUNCATED, FaultApi, Status
from kubeproof.cli.main import main
from kubeproof.sources import cluster
from kubeproof.sources.cluster import MAX_ATTEMPTS, SCANNED_KINDS

NAMESPACE = {"metadata": {"name": "app", "uid": "ns-1"}}
POD = {
    "metadata": {"name": "web", "namespace": "app", "uid": "pod-1"},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
}


def scan(
    capsys: pytest.CaptureFixture[str], kubeconfig: Path, timeout: str = "1"
) -> tuple[int, dict[str, Any], str]:
    capsys.readouterr()
    code = main(["scan", "--cluster", "--kubeconfig", str(kubeconfig), "-o", "json",
                 "--fail-on", "none", "--request-timeout", timeout])  # fmt: skip
    captured = capsys.readouterr()
    report = json.loads(captured.out) if captured.out.strip() else {}
    return code, report, captured.err


def coverage_of(report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["kind"]: (c["state"], c.get("detail") or "") for c in report["scan"]["coverage"]}


def test_faults_cost_only_their_own_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faults = {
        "pods": [Status(429, retry_after="1"), OK],
        "deployments": [Status(503), Status(503), OK],
        "roles": [RESET, OK],
        "configmaps": [HANG],
        "services": [MALFORMED],
        "networkpolicies": [TRUNCATED],
    }
    items = {"namespaces": [NAMESPACE], "pods": [POD]}
    started = time.monotonic()
    with FaultApi(faults, items) as api:
        code, report, err = scan(capsys, api.write_kubeconfig(tmp_path / "kubeconfig"))
        pod_times = api.requests["/api/v1/pods"]
        counts = {
            name: api.count(path)
            for name, path in [
                ("pods", "/api/v1/pods"),
                ("deployments", "/apis/apps/v1/deployments"),
                ("roles", "/apis/rbac.authorization.k8s.io/v1/roles"),
                ("configmaps", "/api/v1/configmaps"),
                ("services", "/api/v1/services"),
                ("networkpolicies", "/apis/networking.k8s.io/v1/networkpolicies"),
            ]
        }
    elapsed = time.monotonic() - started

    assert code == 0, err
    assert "Traceback" not in err
    assert (
        "kubeproof: warning: not read from the cluster: "
        "ConfigMap (error), NetworkPolicy (error), Service (error)"
    ) in err
    coverage = coverage_of(report)
    # Retried until they answered.
    for kind in ("Pod", "Deployment", "Role", "Namespace", "Secret"):
        assert coverage[kind][0] == "listed", (kind, coverage[kind])
    assert counts["pods"] == 2 and counts["deployments"] == 3 and counts["roles"] == 2
    assert pod_times[1] - pod_times[0] >= 0.95  # Retry-After: 1 was honoured
    # A hang is not retried: it already cost a whole timeout.
    assert coverage["ConfigMap"] == ("error", "GET /api/v1/configmaps: timed out after 1 s")
    assert counts["configmaps"] == 1
    assert coverage["Service"] == ("error", "GET /api/v1/services: the response is not JSON")
    assert counts["services"] == 1
    state, detail = coverage["NetworkPolicy"]
    assert state == "error"
    assert detail.startswith(
        "GET /apis/networking.k8s.io/v1/networkpolicies: the response was cut short; "
        f"gave up after {MAX_ATTEMPTS} attempts in "
    )
    assert counts["networkpolicies"] == MAX_ATTEMPTS
    assert elapsed < 15

    # What was read is judged; what needs a kind that was not read is not evaluated.
    results = report["results"]
    privileged = [r for r in results if r["check"] == "pss.privileged"]
    assert [(r["status"], r["subject"]["name"]) for r in privileged] == [("pass", "web")]
    no_policy = [r for r in results if r["check"] == "network.namespace-without-network-policy"
                 and r["subject"]["name"] == "app"]  # fmt: skip
    assert [r["status"] for r in no_policy] == ["not_evaluated"]
    assert "NetworkPolicy error" in no_policy[0]["reason"]
    assert "cut short" in no_policy[0]["reason"]
    assert not [r for r in results if r["status"] == "pass" and "Service" in str(r["subject"])]


def test_an_endless_answer_costs_only_its_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "MAX_RESPONSE_BYTES", HUGE_SENT_BYTES // 2)
    with FaultApi({"services": [HUGE]}, {"namespaces": [NAMESPACE], "pods": [POD]}) as api:
        code, report, err = scan(capsys, api.write_kubeconfig(tmp_path / "kubeconfig"))
    assert code == 0, err
    assert "Traceback" not in err
    state, detail = coverage_of(report)["Service"]
    assert state == "error" and "the response is larger than 2 MiB" in detail
    assert coverage_of(report)["Pod"][0] == "listed"


def test_a_scan_that_read_nothing_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Retry-After: 0 keeps the retries quick; every one of them fails.
    with FaultApi(list_fault=[Status(503, retry_after="0")]) as api:
        code, report, err = scan(capsys, api.write_kubeconfig(tmp_path / "kubeconfig"))
        pod_requests = api.count("/api/v1/pods")
    assert code == 2
    assert report == {}
    assert "Traceback" not in err
    assert err.startswith(
        f"kubeproof: error: could not list any of the {len(SCANNED_KINDS)} kinds "
        "kubeproof reads from http://127.0.0.1:"
    )
    assert "(error); for example Namespace: GET /api/v1/namespaces: HTTP 503 " in err
    assert f"gave up after {MAX_ATTEMPTS} attempts" in err
    assert "RBAC" not in err  # nothing was forbidden: the hint would mislead
    assert pod_requests == MAX_ATTEMPTS


def test_request_timeout_must_be_a_positive_number(capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("0", "-1", "soon", "nan"):
        with pytest.raises(SystemExit) as exit_:
            main(["scan", "--cluster", "--request-timeout", value])
        assert exit_.value.code == 2
        assert "--request-timeout" in capsys.readouterr().err
    assert main(["scan", "examples", "--request-timeout", "5"]) == 2
    assert "--request-timeout only applies with --cluster" in capsys.readouterr().err
