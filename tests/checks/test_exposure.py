"""exposure.* checks: what Services and Ingresses open to outside traffic."""

from __future__ import annotations

from typing import Any

import pytest

from checks.helpers import failing, run, statuses


def service(
    service_type: str | None = "ClusterIP", annotations: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    if service_type is not None:
        spec["type"] = service_type
    spec.setdefault("selector", {"app": "web"})
    spec.setdefault("ports", [{"port": 80}])
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations or {}},
        "spec": spec,
    }


def ingress(annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations or {}},
        "spec": spec,
    }


def rule(host: str | None = None) -> dict[str, Any]:
    paths = {
        "paths": [
            {
                "path": "/",
                "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}},
            }
        ]
    }
    return {"host": host, "http": paths} if host else {"http": paths}


BACKEND = {"service": {"name": "web", "port": {"number": 80}}}

# --- load balancers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "restricted",
    [
        service("LoadBalancer", loadBalancerSourceRanges=["203.0.113.0/24"]),
        service("LoadBalancer", loadBalancerSourceRanges=["2001:db8::/32", "198.51.100.7/32"]),
        service(
            "LoadBalancer",
            annotations={
                "service.beta.kubernetes.io/load-balancer-source-ranges": (
                    "203.0.113.0/24, 10.0.0.0/8"
                )
            },
        ),
        service(
            "LoadBalancer",
            annotations={"service.beta.kubernetes.io/aws-load-balancer-internal": "true"},
        ),
        service("LoadBalancer", annotations={"networking.gke.io/load-balancer-type": "Internal"}),
        service(
            "LoadBalancer",
            annotations={"service.beta.kubernetes.io/azure-load-balancer-internal": "true"},
        ),
    ],
)
def test_restricted_load_balancer_passes(restricted: dict[str, Any]) -> None:
    assert statuses(run("exposure.load-balancer-unrestricted", restricted)) == ["pass"]


def test_unrestricted_load_balancer_fails() -> None:
    [result] = run("exposure.load-balancer-unrestricted", service("LoadBalancer"))
    assert result.status.value == "fail"
    assert result.path == "spec.type"
    assert "accepts traffic from any address" in result.message


@pytest.mark.parametrize(
    ("open_range", "path"),
    [
        ("0.0.0.0/0", "spec.loadBalancerSourceRanges[1]"),
        ("::/0", "spec.loadBalancerSourceRanges[1]"),
    ],
)
def test_load_balancer_open_to_every_address_fails(open_range: str, path: str) -> None:
    lb = service("LoadBalancer", loadBalancerSourceRanges=["10.0.0.0/8", open_range])
    [result] = failing(run("exposure.load-balancer-unrestricted", lb))
    assert result.path == path
    assert "which is every address" in result.message


@pytest.mark.parametrize(
    "unusable",
    [
        service("LoadBalancer", loadBalancerSourceRanges=["not-a-cidr"]),
        service("LoadBalancer", loadBalancerSourceRanges="10.0.0.0/8"),
        service("LoadBalancer", loadBalancerSourceRanges=[10]),
        service(
            "LoadBalancer",
            annotations={"service.beta.kubernetes.io/aws-load-balancer-internal": "false"},
        ),
        service(
            "LoadBalancer",
            annotations={"service.beta.kubernetes.io/load-balancer-source-ranges": "0.0.0.0/0"},
        ),
    ],
)
def test_load_balancer_without_usable_ranges_fails(unusable: dict[str, Any]) -> None:
    assert statuses(run("exposure.load-balancer-unrestricted", unusable)) == ["fail"]


def test_spec_source_ranges_win_over_the_annotation() -> None:
    lb = service(
        "LoadBalancer",
        loadBalancerSourceRanges=["10.0.0.0/8"],
        annotations={"service.beta.kubernetes.io/load-balancer-source-ranges": "0.0.0.0/0"},
    )
    assert statuses(run("exposure.load-balancer-unrestricted", lb)) == ["pass"]


@pytest.mark.parametrize(
    "other", [service("ClusterIP"), service(None), service("NodePort"), service(["LoadBalancer"])]
)
def test_other_service_types_are_not_judged_as_load_balancers(other: dict[str, Any]) -> None:
    assert run("exposure.load-balancer-unrestricted", other) == []


# --- node ports --------------------------------------------------------------------------


def test_node_port_fails_and_names_the_ports() -> None:
    node_port = service("NodePort", ports=[{"port": 80, "nodePort": 30080}, {"port": 443}])
    [result] = run("exposure.node-port", node_port)
    assert result.status.value == "fail"
    assert "node port(s) 30080" in result.message
    assert result.path == "spec.type"


@pytest.mark.parametrize(
    "other", [service("ClusterIP"), service(None), service("LoadBalancer"), service("ExternalName")]
)
def test_other_service_types_are_not_node_ports(other: dict[str, Any]) -> None:
    assert run("exposure.node-port", other) == []


# --- external IPs ------------------------------------------------------------------------


def test_service_without_external_ips_passes() -> None:
    assert statuses(
        run("exposure.external-ips", service("ClusterIP"), service("ClusterIP", externalIPs=[]))
    ) == ["pass", "pass"]


def test_service_with_external_ips_fails() -> None:
    [result] = run("exposure.external-ips", service("ClusterIP", externalIPs=["198.51.100.9"]))
    assert result.status.value == "fail"
    assert "198.51.100.9" in result.message and "CVE-2020-8554" in result.message
    assert result.path == "spec.externalIPs"


@pytest.mark.parametrize("malformed", ["198.51.100.9", [{"ip": "198.51.100.9"}]])
def test_malformed_external_ips_are_not_evaluated(malformed: Any) -> None:
    assert statuses(run("exposure.external-ips", service(externalIPs=malformed))) == [
        "not_evaluated"
    ]


# --- ingress TLS -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "covered",
    [
        ingress(
            rules=[rule("shop.example.com")],
            tls=[{"hosts": ["shop.example.com"], "secretName": "tls"}],
        ),
        ingress(rules=[rule("Shop.Example.com")], tls=[{"hosts": ["shop.example.com"]}]),
        ingress(
            rules=[rule("a.example.com"), rule("b.example.com")], tls=[{"hosts": ["*.example.com"]}]
        ),
        ingress(rules=[rule("*.example.com")], tls=[{"hosts": ["*.example.com"]}]),
        ingress(rules=[rule(), rule("a.example.com")], tls=[{"secretName": "default"}]),
        ingress(defaultBackend=BACKEND, tls=[{"secretName": "default"}]),
        ingress(
            {"alb.ingress.kubernetes.io/certificate-arn": "arn:aws:acm:region:1:certificate/x"},
            rules=[rule("shop.example.com")],
        ),
    ],
)
def test_ingress_with_tls_for_every_host_passes(covered: dict[str, Any]) -> None:
    assert statuses(run("exposure.ingress-without-tls", covered)) == ["pass"]


def test_ingress_host_missing_from_tls_fails() -> None:
    web = ingress(
        rules=[rule("shop.example.com"), rule("admin.example.com")],
        tls=[{"hosts": ["shop.example.com"]}],
    )
    [result] = run("exposure.ingress-without-tls", web)
    assert result.status.value == "fail"
    assert result.message.startswith("host admin.example.com (spec.rules[1])")
    assert result.path == "spec.rules[1].host"


@pytest.mark.parametrize(
    "uncovered",
    [
        ingress(rules=[rule("shop.example.com")]),
        ingress(rules=[rule("a.b.example.com")], tls=[{"hosts": ["*.example.com"]}]),
        ingress(rules=[rule("example.com")], tls=[{"hosts": ["*.example.com"]}]),
        ingress(rules=[rule()], tls=[{"hosts": ["shop.example.com"]}]),
        ingress(defaultBackend=BACKEND, tls=[{"hosts": ["shop.example.com"]}]),
        ingress(backend={"serviceName": "web", "servicePort": 80}),
        ingress(rules=[rule("shop.example.com")], tls="shop.example.com"),
    ],
)
def test_ingress_served_without_tls_fails(uncovered: dict[str, Any]) -> None:
    assert statuses(run("exposure.ingress-without-tls", uncovered)) == ["fail"]


def test_one_violation_per_uncovered_rule() -> None:
    web = ingress(
        rules=[rule("a.example.com"), rule(), rule("b.example.com")], defaultBackend=BACKEND
    )
    [result] = run("exposure.ingress-without-tls", web)
    assert len(result.extra["violations"]) == 4


def test_ingress_routing_nothing_is_not_judged() -> None:
    assert run("exposure.ingress-without-tls", ingress(), ingress(rules="nonsense")) == []


# --- ingress catch-all -------------------------------------------------------------------


@pytest.mark.parametrize(
    "named",
    [
        ingress(rules=[rule("shop.example.com")]),
        ingress(rules=[rule("*.example.com")]),
    ],
)
def test_ingress_with_named_hosts_passes(named: dict[str, Any]) -> None:
    assert statuses(run("exposure.ingress-catch-all", named)) == ["pass"]


@pytest.mark.parametrize(
    ("catch_all", "path"),
    [
        (ingress(rules=[rule("shop.example.com"), rule()]), "spec.rules[1]"),
        (ingress(defaultBackend=BACKEND), "spec.defaultBackend"),
        (ingress(backend={"serviceName": "web", "servicePort": 80}), "spec.backend"),
    ],
)
def test_ingress_catch_all_fails(catch_all: dict[str, Any], path: str) -> None:
    [result] = run("exposure.ingress-catch-all", catch_all)
    assert result.status.value == "fail"
    assert result.path == path
