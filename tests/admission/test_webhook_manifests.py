"""`kubeproof webhook manifests`: ready to apply, and clean under its own rules."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from admission.reviews import review
from kubeproof import frameworks
from kubeproof.admission.decide import Decider
from kubeproof.admission.manifests import DEFAULT_POLICY
from kubeproof.admission.policy import load_policy, parse_policy
from kubeproof.admission.review import parse_review
from kubeproof.cli.main import main
from kubeproof.inventory import Inventory
from kubeproof.inventory.workloads import POD_SPEC_PATHS
from kubeproof.model import Status
from kubeproof.scan import scan_inventory
from kubeproof.sources.files import RenderOptions, load_paths
from paths import ROOT


def manifests(capsys: pytest.CaptureFixture[str], *arguments: str) -> list[dict[str, Any]]:
    assert main(["webhook", "manifests", *arguments]) == 0
    return list(yaml.safe_load_all(capsys.readouterr().out))


def by_kind(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in documents if d["kind"] == kind]
    return found


def test_output_passes_scan_under_pss_restricted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["webhook", "manifests", "--namespace", "kubeproof"]) == 0
    output = tmp_path / "webhook.yaml"
    output.write_text(capsys.readouterr().out)
    loaded = load_paths([str(output)], RenderOptions())
    assert not loaded.errors
    report = scan_inventory(Inventory(loaded.objects), frameworks.load("pss-restricted"))
    statuses = {r.status for r in report.results}
    assert report.results and statuses == {Status.PASS}, [
        (r.check.id, r.message) for r in report.results if r.status is not Status.PASS
    ]


def test_the_deployment_is_admitted_by_the_default_policy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    deployment = by_kind(manifests(capsys), "Deployment")
    decider = Decider(parse_policy(yaml.safe_load(DEFAULT_POLICY)))
    assert decider.decide(parse_review(review(deployment))).outcome == "allowed"


def test_webhook_configuration_is_ready_to_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    documents = manifests(capsys, "--namespace", "guard", "--ca-bundle", str(ca))
    (webhook,) = by_kind(documents, "ValidatingWebhookConfiguration")["webhooks"]
    assert webhook["sideEffects"] == "None"
    assert webhook["failurePolicy"] == "Fail"
    assert 1 <= webhook["timeoutSeconds"] <= 30
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == ca.read_bytes()
    assert webhook["clientConfig"]["service"]["namespace"] == "guard"
    (expression,) = webhook["namespaceSelector"]["matchExpressions"]
    assert expression["operator"] == "NotIn"
    assert set(expression["values"]) == {"kube-system", "guard"}
    assert webhook["matchConditions"]
    resources = {r for rule in webhook["rules"] for r in rule["resources"]}
    plural = {
        "Pod": "pods",
        "Deployment": "deployments",
        "ReplicaSet": "replicasets",
        "StatefulSet": "statefulsets",
        "DaemonSet": "daemonsets",
        "Job": "jobs",
        "CronJob": "cronjobs",
        "ReplicationController": "replicationcontrollers",
        "PodTemplate": "podtemplates",
    }
    assert {plural[kind] for kind in POD_SPEC_PATHS} | {"pods/ephemeralcontainers"} == resources
    kinds = {d["kind"] for d in documents}
    assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment"} <= kinds
    assert all(d["metadata"].get("namespace") in (None, "guard") for d in documents)


def test_a_given_policy_is_validated_and_shipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY.replace("enforce\n", "warn\n"))
    config_map = by_kind(manifests(capsys, "--policy", str(policy)), "ConfigMap")
    assert "defaultMode: warn" in config_map["data"]["policy.yaml"]
    policy.write_text(DEFAULT_POLICY.replace("failClosed: true", "failClosed: 1"))
    assert main(["webhook", "manifests", "--policy", str(policy)]) == 2
    assert "failClosed" in capsys.readouterr().err


def test_a_ca_bundle_that_is_not_pem_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_pem = tmp_path / "ca.der"
    not_pem.write_bytes(b"\x30\x82")
    assert main(["webhook", "manifests", "--ca-bundle", str(not_pem)]) == 2
    assert "not a PEM certificate" in capsys.readouterr().err
    assert main(["webhook", "manifests", "--ca-bundle", str(tmp_path / "none")]) == 2


def test_shipped_manifests_match_the_generator(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["webhook", "manifests"]) == 0
    shipped = ROOT / "deploy" / "webhook" / "kubeproof-webhook.yaml"
    assert shipped.read_text() == capsys.readouterr().out, (
        "regenerate: kubeproof webhook manifests > deploy/webhook/kubeproof-webhook.yaml"
    )


def test_example_policy_is_valid_and_uses_every_section() -> None:
    policy = load_policy(ROOT / "deploy" / "webhook" / "policy.example.yaml")
    assert policy.checks and policy.namespaces and policy.images.restricts_sources
    assert policy.exemptions.namespaces and policy.uses_namespace_labels
    assert policy.images.signatures


def test_recording_takes_the_store_url_from_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ("--db-secret", "kubeproof-evidence-db", "--cluster-name", "prod")
    container = by_kind(manifests(capsys, *arguments), "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["env"] == [
        {
            "name": "KUBEPROOF_DB",
            "valueFrom": {"secretKeyRef": {"name": "kubeproof-evidence-db", "key": "url"}},
        }
    ]
    assert container["args"][-1] == "--cluster-name=prod"
    assert (
        "env"
        not in by_kind(manifests(capsys), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    )
    assert main(["webhook", "manifests", "--cluster-name", "prod"]) == 2
    assert "--cluster-name needs --db-secret" in capsys.readouterr().err


def test_cert_manager_issues_the_certificate_and_injects_the_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents = manifests(capsys, "--cert-manager", "--namespace", "guard")
    issuers = {d["metadata"]["name"]: d["spec"] for d in documents if d["kind"] == "Issuer"}
    assert issuers == {
        "kubeproof-webhook-selfsigned": {"selfSigned": {}},
        "kubeproof-webhook-ca": {"ca": {"secretName": "kubeproof-webhook-ca"}},
    }
    certificates = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Certificate"}
    serving = certificates["kubeproof-webhook"]["spec"]
    deployment = by_kind(documents, "Deployment")["spec"]["template"]["spec"]
    [mounted] = [v["secret"]["secretName"] for v in deployment["volumes"] if "secret" in v]
    assert serving["secretName"] == mounted == "kubeproof-webhook-tls"
    assert serving["dnsNames"] == [
        "kubeproof-webhook.guard.svc",
        "kubeproof-webhook.guard.svc.cluster.local",
    ]
    assert serving["issuerRef"] == {"kind": "Issuer", "name": "kubeproof-webhook-ca"}
    assert certificates["kubeproof-webhook-ca"]["spec"]["isCA"] is True
    assert all(d["metadata"]["namespace"] == "guard" for d in [*certificates.values()])
    configuration = by_kind(documents, "ValidatingWebhookConfiguration")
    assert configuration["metadata"]["annotations"] == {
        "cert-manager.io/inject-ca-from": "guard/kubeproof-webhook"
    }
    assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    assert main(["webhook", "manifests", "--cert-manager", "--ca-bundle", str(ca)]) == 2
    assert "choose one" in capsys.readouterr().err


def test_shipped_cert_manager_manifests_match_the_generator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["webhook", "manifests", "--cert-manager"]) == 0
    shipped = ROOT / "deploy" / "webhook" / "kubeproof-webhook-cert-manager.yaml"
    assert shipped.read_text() == capsys.readouterr().out, (
        "regenerate: kubeproof webhook manifests --cert-manager "
        "> deploy/webhook/kubeproof-webhook-cert-manager.yaml"
    )
