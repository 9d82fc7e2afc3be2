"""What the agent's cache leaves out (status) and shares between objects changes no
verdict: a whole scan of the cached objects says what a scan of the objects as the API
server sent them says."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from kubeproof import frameworks
from kubeproof.agent.state import prepared
from kubeproof.engine import Context, evaluate
from kubeproof.inventory import Inventory, K8sObject

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "shop"
TEMPLATED = {"Deployment": "ReplicaSet", "StatefulSet": None, "DaemonSet": None, "Job": None}


def _status(kind: str) -> dict[str, Any]:
    """A status as controllers and the kubelet write it."""
    condition = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
    if kind == "Pod":
        return {
            "phase": "Running",
            "podIP": "10.0.0.7",
            "conditions": [condition],
            "containerStatuses": [
                {"name": "app", "ready": True, "restartCount": 3, "image": "nginx:1.27"}
            ],
        }
    return {"observedGeneration": 2, "replicas": 2, "readyReplicas": 1, "conditions": [condition]}


def _cluster_objects() -> list[dict[str, Any]]:
    """The example manifests as read from a cluster: uids, statuses, and for each
    Deployment a ReplicaSet and two Pods that repeat its pod template."""
    objects: list[dict[str, Any]] = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if not document:
                continue
            metadata = document.setdefault("metadata", {})
            metadata["uid"] = f"uid-{len(objects)}"
            metadata["resourceVersion"] = "1"
            document["status"] = _status(document["kind"])
            objects.append(document)
            if document["kind"] != "Deployment":
                continue
            owner = document
            for kind, count in (("ReplicaSet", 1), ("Pod", 2)):
                for number in range(count):
                    name = f"{document['metadata']['name']}-{kind.lower()}-{number}"
                    reference = {
                        "apiVersion": owner["apiVersion"],
                        "kind": owner["kind"],
                        "name": owner["metadata"]["name"],
                        "uid": owner["metadata"]["uid"],
                        "controller": True,
                    }
                    template = copy.deepcopy(document["spec"]["template"])
                    child = {
                        "apiVersion": "apps/v1" if kind == "ReplicaSet" else "v1",
                        "kind": kind,
                        "metadata": {
                            **template.get("metadata", {}),
                            "name": name,
                            "namespace": metadata.get("namespace"),
                            "uid": f"uid-{len(objects)}",
                            "ownerReferences": [reference],
                        },
                        "spec": template["spec"] if kind == "Pod" else {"template": template},
                        "status": _status(kind),
                    }
                    objects.append(child)
                    if kind == "ReplicaSet":
                        replica_set = child
                owner = replica_set
    return objects


def _verdicts(objects: list[K8sObject]) -> list[tuple[str, str, str, str | None, str | None]]:
    framework = frameworks.load(frameworks.DEFAULT_FRAMEWORK)
    inventory = Inventory(objects)
    context = Context(inventory, pss_level=framework.pss_level, cluster_name="shop")
    results = evaluate(inventory, framework.checks, context)
    return sorted((r.fingerprint, r.status.value, r.message, r.path, r.reason) for r in results)


def test_a_scan_of_the_cache_says_what_a_scan_of_the_objects_as_sent_says() -> None:
    sent = _cluster_objects()
    assert sum(1 for raw in sent if raw["kind"] == "Pod") >= 4
    as_sent = [K8sObject.from_raw(copy.deepcopy(raw)) for raw in sent]
    cached = [prepared(copy.deepcopy(raw), raw["kind"], raw["apiVersion"]) for raw in sent]
    assert all("status" not in obj.raw for obj in cached)
    # The Pods' specs are their Deployment's template, held once.
    pods = [obj for obj in cached if obj.kind == "Pod"]
    assert pods[0].raw["spec"] is pods[1].raw["spec"]
    verdicts = _verdicts(cached)
    assert any(verdict[1] == "fail" for verdict in verdicts)
    assert verdicts == _verdicts(as_sent)
