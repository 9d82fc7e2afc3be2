"""Scan reports for the report-format tests.

`real_report` scans manifests written to a temporary directory with the real file
source, inventory, engine and framework, so the formats are tested on what a scan
produces. `mixed_report` adds hand-made results so that every status, hostile text
(formula prefixes, quotes, line breaks, control characters) and input errors are present
whatever the check catalogue holds today.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kubeproof import frameworks
from kubeproof.checks import Check
from kubeproof.frameworks import Group
from kubeproof.inventory import Inventory
from kubeproof.model import CheckSpec, Location, PssRef, Result, Severity, Status, Subject
from kubeproof.scan import ScanReport, scan_inventory
from kubeproof.sources.files import load_paths

MANIFESTS = {
    "shop/namespace.yaml": """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels:
    pod-security.kubernetes.io/enforce: baseline
""",
    "shop/web.yaml": """\
# The web front end.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      hostNetwork: true
      containers:
        - name: app
          image: nginx:1.25
          securityContext:
            privileged: true
            allowPrivilegeEscalation: true
        - name: sidecar
          image: busybox:1.36
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
    - port: 80
""",
    "with space/api.yaml": """\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: api
  namespace: payments
spec:
  replicas: 3
  selector:
    matchLabels: {app: api}
  template:
    metadata:
      labels: {app: api}
    spec:
      securityContext:
        runAsNonRoot: true
        seccompProfile: {type: RuntimeDefault}
      containers:
        - name: api
          image: registry.example/api:2.14.0
          securityContext:
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
""",
    "broken.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [unclosed\n",
}


def write_manifests(root: Path) -> None:
    for name, text in MANIFESTS.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def real_report(root: Path, framework_id: str = "soc2") -> ScanReport:
    """A scan of MANIFESTS (written under `root`) by the real pipeline."""
    write_manifests(root)
    loaded = load_paths([str(root)])
    inventory = Inventory(loaded.objects)
    return scan_inventory(
        inventory,
        frameworks.load(framework_id),
        errors=loaded.errors,
        sources=[str(root)],
        files=loaded.files,
    )


def spec(
    check_id: str = "test.hand-made", severity: Severity = Severity.HIGH, **changes: object
) -> CheckSpec:
    base = CheckSpec(
        id=check_id,
        title="Hand-made check for report tests",
        description="Exists only in tests, so that every status can be produced on demand.",
        severity=severity,
        remediation="Nothing to do: this check exists only in tests.",
        criteria={
            "CC6.1": "A test rationale, written as one sentence.",
            "CC7.1": "Another test rationale.",
        },
        scope="workload",
        cis=("5.2.2",),
        pss=PssRef("privileged", "baseline"),
        nsa=("NSA/CISA Kubernetes Hardening Guide: Pod security — Non-root containers",),
        group="test",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


HOSTILE_NAME = '=HYPERLINK("http://x","y")'
HOSTILE_MESSAGE = 'container "app", field env: -2+3, @SUM(A1), line\nbreak\x00\x1b and ü'


def hand_made_results(check: CheckSpec, root: Path) -> list[Result]:
    """One result of each status, with hostile text in the places input can reach."""
    deployment = Subject("apps/v1", "Deployment", "shop", "web")
    where = Location(str(root / "shop" / "web.yaml"), 2)
    return [
        Result(check, Status.PASS, deployment.with_container("sidecar"), check.title, where),
        Result(
            check,
            Status.FAIL,
            deployment.with_container("app"),
            HOSTILE_MESSAGE,
            where,
            path="spec.template.spec.containers[0].securityContext.privileged",
            extra={
                "violations": [
                    {"message": "privileged", "path": "spec.template.spec.containers[0]"},
                    {"message": "second", "path": None},
                ]
            },
        ),
        Result(
            check,
            Status.FAIL,
            Subject("v1", "ConfigMap", "shop", HOSTILE_NAME),
            "+cmd|' /C calc'!A0",
            Location("<stdin>", None),
        ),
        Result(
            check,
            Status.NOT_EVALUATED,
            Subject("rbac.authorization.k8s.io/v1", "ClusterRole", None, "admin"),
            "not evaluated: ClusterRoleBinding forbidden (403)",
            None,
            reason="ClusterRoleBinding forbidden (403)",
        ),
        Result(
            check,
            Status.EXCEPTED,
            deployment.with_container("app"),
            "not required: namespace shop label pod-security.kubernetes.io/enforce "
            "sets level baseline",
            where,
            reason="namespace shop label pod-security.kubernetes.io/enforce = baseline",
        ),
        Result(
            check,
            Status.FAIL,
            Subject("", "Cluster", None, "manifests"),
            "the cluster has no admission policy",
            None,
        ),
    ]


def mixed_report(root: Path, framework_id: str = "soc2") -> ScanReport:
    """A real scan plus one hand-made result of every status in a hand-made group."""
    report = real_report(root, framework_id)
    check = spec()
    framework = report.framework
    group = Group("TEST-1", "Hand-made group for report tests", "", (Check(check, _never),))
    report.framework = dataclasses.replace(framework, groups=(*framework.groups, group))
    report.results = [*report.results, *hand_made_results(check, root)]
    return report


def _never(*_: object) -> None:
    raise AssertionError("hand-made checks are never run")
