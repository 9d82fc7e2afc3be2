"""The engine's promises that no single check can keep: never pass what was not read."""

from __future__ import annotations

import json

import jsonschema

from kubeproof import frameworks
from kubeproof.inventory import Coverage, Inventory, K8sObject
from kubeproof.model import Status
from kubeproof.reports.json import JsonRenderer, load_schema
from kubeproof.scan import scan_inventory

SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}}


def cluster_inventory(forbidden: str) -> Inventory:
    coverage = Coverage(complete_by_default=False)
    for kind in ("Secret", "Namespace", "Pod", "Deployment", "NetworkPolicy"):
        coverage.record(kind, "listed")
    coverage.record(forbidden, "forbidden", "RBAC")
    return Inventory([K8sObject.from_raw(SECRET)], coverage)


def test_a_forbidden_kind_leaves_its_checks_not_evaluated_and_criteria_incomplete() -> None:
    report = scan_inventory(cluster_inventory("Secret"), frameworks.load("soc2"))
    gaps = [r for r in report.results if r.subject.kind == "Cluster"]
    assert gaps and all(r.status is Status.NOT_EVALUATED for r in gaps)
    assert any(r.check.id == "secrets.secret-data-in-manifest" for r in gaps)
    assert all("Secret forbidden" in (r.reason or "") for r in gaps if "Secret" in r.check.kinds)
    verdicts = {g.id: g.verdict for g in report.summary()}
    assert verdicts["C1.1"] != "compliant"
    # The cluster-wide note is an ordinary result of the public JSON report.
    jsonschema.validate(json.loads(JsonRenderer().render(report)), load_schema())


def test_files_are_complete_by_definition() -> None:
    inventory = Inventory([K8sObject.from_raw(SECRET)])
    report = scan_inventory(inventory, frameworks.load("soc2"))
    assert not [r for r in report.results if r.subject.kind == "Cluster"]


def test_kinds_the_server_does_not_serve_are_not_gaps() -> None:
    coverage = Coverage(complete_by_default=False)
    coverage.record("ValidatingAdmissionPolicy", "not_served")
    assert coverage.gap(["ValidatingAdmissionPolicy"]) is None
    assert coverage.gap(["Pod"]) == "Pod not read"
