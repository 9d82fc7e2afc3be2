"""Hostile input: exposure, network and availability checks never crash on fields of the
wrong type (a crash would surface as a "check error" not_evaluated result)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from checks.helpers import inventory_of
from kubeproof.checks import catalogue
from kubeproof.engine import Context, evaluate

GROUPS = ("exposure", "network", "availability")
KINDS = (
    "Service",
    "Ingress",
    "NetworkPolicy",
    "Deployment",
    "StatefulSet",
    "Pod",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "Namespace",
)
KEYS = (
    "type",
    "ports",
    "nodePort",
    "externalIPs",
    "loadBalancerSourceRanges",
    "rules",
    "host",
    "tls",
    "hosts",
    "defaultBackend",
    "backend",
    "podSelector",
    "policyTypes",
    "ingress",
    "egress",
    "from",
    "to",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "replicas",
    "template",
    "metadata",
    "labels",
    "spec",
    "containers",
    "hostNetwork",
    "selector",
    "minAvailable",
    "maxUnavailable",
    "scaleTargetRef",
    "kind",
    "name",
    "minReplicas",
    "maxReplicas",
    "affinity",
    "podAntiAffinity",
    "topologySpreadConstraints",
    "topologyKey",
    "labelSelector",
    "namespaces",
)

VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 200)
    | st.sampled_from(
        [
            "LoadBalancer",
            "NodePort",
            "0.0.0.0/0",
            "10%",
            "100%",
            "Ingress",
            "Egress",
            "In",
            "Exists",
            "web",
            "Deployment",
            "*.example.com",
            "x",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=25,
)


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    body: dict[str, Any] = {
        "apiVersion": draw(st.sampled_from(["v1", "policy/v1beta1"])),
        "kind": kind,
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "annotations": draw(
                st.dictionaries(
                    st.sampled_from(
                        [
                            "networking.gke.io/load-balancer-type",
                            "alb.ingress.kubernetes.io/certificate-arn",
                        ]
                    ),
                    st.text(max_size=8),
                )
            ),
        },
    }
    body["spec"] = draw(VALUES)
    return body


@settings(max_examples=200, deadline=None)
@given(st.lists(objects(), min_size=1, max_size=5))
def test_no_check_crashes_on_hostile_objects(raw: list[dict[str, Any]]) -> None:
    inventory = inventory_of(*raw)
    checks = [c for c in catalogue() if c.spec.group in GROUPS]
    for result in evaluate(inventory, checks, Context(inventory)):
        assert not (result.reason or "").startswith("check error"), (result.check.id, result.reason)
