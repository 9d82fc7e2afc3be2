"""Building scans for the store tests: manifests in, a recorded scan out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from sqlalchemy import create_engine, text

from kubeproof import frameworks
from kubeproof.inventory import Coverage, Inventory, K8sObject
from kubeproof.model import Location
from kubeproof.scan import ScanReport, scan_inventory
from kubeproof.store.db import Store, parse_url
from kubeproof.store.record import Recorded, present_subjects, record_scan, subject_identities

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def objects_of(*manifests: str | dict[str, Any]) -> list[K8sObject]:
    parsed: list[K8sObject] = []
    for item in manifests:
        docs = yaml.safe_load_all(item) if isinstance(item, str) else [item]
        parsed.extend(K8sObject.from_raw(d, Location("test.yaml", 1)) for d in docs if d)
    return parsed


def scan_of(
    *manifests: str | dict[str, Any],
    cluster: str = "prod",
    coverage: Coverage | None = None,
    framework: str = "soc2",
) -> tuple[ScanReport, Inventory]:
    inventory = Inventory(objects_of(*manifests), coverage=coverage)
    report = scan_inventory(inventory, frameworks.load(framework), cluster_name=cluster)
    return report, inventory


def record(
    store: Store,
    *manifests: str | dict[str, Any],
    cluster: str = "prod",
    day: int = 0,
    coverage: Coverage | None = None,
    framework: str = "soc2",
) -> Recorded:
    """Scan the manifests as a scan of `cluster` made `day` days after T0, and record it."""
    report, inventory = scan_of(*manifests, cluster=cluster, coverage=coverage, framework=framework)
    report.started_at = T0 + timedelta(days=day)
    report.finished_at = report.started_at + timedelta(seconds=1)
    return record_scan(
        store,
        report,
        cluster=cluster,
        present=present_subjects(inventory),
        identities=subject_identities(inventory),
    )


def execute(url: str, *statements: str) -> None:
    """Raw SQL against the database, as someone editing it behind kubeproof's back."""
    engine = create_engine(parse_url(url))
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def query(url: str, statement: str) -> Sequence[Any]:
    engine = create_engine(parse_url(url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(statement)))
    finally:
        engine.dispose()


def deployment(
    name: str = "storefront",
    namespace: str = "shop",
    *,
    privileged: bool = True,
    uid: str = "d-1",
    replicas: int = 2,
    containers: Sequence[str] = ("web",),
) -> str:
    """A Deployment whose containers run privileged (pss.privileged fails) or not."""
    specs = "\n".join(
        f"""      - name: {c}
        image: shop/{c}@sha256:{"0" * 64}
        securityContext: {{privileged: {str(privileged).lower()}}}"""
        for c in containers
    )
    return f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}, uid: {uid}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
{specs}
"""


def replica_set_and_pod(
    deployment_name: str,
    suffix: str,
    namespace: str = "shop",
    deployment_uid: str = "d-1",
    privileged: bool = True,
) -> str:
    """What a cluster shows under a Deployment: its current ReplicaSet and one pod, with
    ownerReferences; `suffix` changes with every rollout."""
    rs_name = f"{deployment_name}-{suffix}"
    image = f"shop/web@sha256:{'0' * 64}"
    flag = str(privileged).lower()
    return f"""apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {rs_name}
  namespace: {namespace}
  uid: rs-{suffix}
  ownerReferences:
  - apiVersion: apps/v1
    kind: Deployment
    name: {deployment_name}
    uid: {deployment_uid}
    controller: true
spec:
  replicas: 2
  selector: {{matchLabels: {{app: {deployment_name}}}}}
  template:
    metadata: {{labels: {{app: {deployment_name}}}}}
    spec:
      containers:
      - name: web
        image: {image}
        securityContext: {{privileged: {flag}}}
---
apiVersion: v1
kind: Pod
metadata:
  name: {rs_name}-x{suffix}
  namespace: {namespace}
  uid: pod-{suffix}
  ownerReferences:
  - {{apiVersion: apps/v1, kind: ReplicaSet, name: {rs_name}, uid: rs-{suffix}, controller: true}}
spec:
  containers:
  - name: web
    image: {image}
    securityContext: {{privileged: {flag}}}
"""
