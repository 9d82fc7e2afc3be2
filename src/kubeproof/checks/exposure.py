"""exposure checks: what Services and Ingresses open to traffic from outside the cluster."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kubeproof.checks.registry import NotApplicable, NotEvaluated, Violation, check
from kubeproof.inventory import K8sObject
from kubeproof.inventory.objects import as_dict, as_list, as_str

if TYPE_CHECKING:
    from kubeproof.engine import Context

# Honoured by cloud providers when spec.loadBalancerSourceRanges is empty.
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"

# Annotations that ask the cloud provider for a load balancer on the private network
# only, with the (lower-cased) value that means so.
INTERNAL_LOAD_BALANCER_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "networking.gke.io/load-balancer-type": "internal",
    "cloud.google.com/load-balancer-type": "internal",
    "service.beta.kubernetes.io/azure-load-balancer-internal": "true",
    "service.beta.kubernetes.io/oci-load-balancer-internal": "true",
    "service.beta.kubernetes.io/openstack-internal-load-balancer": "true",
    "service.kubernetes.io/ibm-load-balancer-cloud-provider-ip-type": "private",
    "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-address-type": "intranet",
}

# Ingress annotations through which a cloud controller attaches certificates for every
# host of the Ingress, outside spec.tls.
TLS_CERTIFICATE_ANNOTATIONS = (
    "alb.ingress.kubernetes.io/certificate-arn",
    "networking.gke.io/managed-certificates",
    "ingress.gcp.kubernetes.io/pre-shared-cert",
)


def _service_type(obj: K8sObject) -> str:
    return as_str(obj.spec.get("type")) or "ClusterIP"


def _internal_annotation(obj: K8sObject) -> str | None:
    annotations = obj.annotations  # built on each read: read once
    for key, internal_value in INTERNAL_LOAD_BALANCER_ANNOTATIONS.items():
        if (annotations.get(key) or "").strip().lower() == internal_value:
            return key
    return None


def _source_ranges(obj: K8sObject) -> tuple[list[str], str]:
    """The source ranges in force and the field they come from: the spec field wins, the
    legacy annotation applies only when the field is empty."""
    # Entries of the wrong type stay as "" so the indexes in paths still point at them.
    ranges = [
        r if isinstance(r, str) else "" for r in as_list(obj.spec.get("loadBalancerSourceRanges"))
    ]
    if ranges:
        return ranges, "spec.loadBalancerSourceRanges"
    annotation = obj.annotations.get(SOURCE_RANGES_ANNOTATION, "")
    ranges = [r.strip() for r in annotation.split(",") if r.strip()]
    return ranges, f"metadata.annotations[{SOURCE_RANGES_ANNOTATION}]"


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


@check("exposure.load-balancer-unrestricted")
def load_balancer_unrestricted(obj: K8sObject, context: Context) -> Iterator[Violation]:
    if _service_type(obj) != "LoadBalancer":
        raise NotApplicable
    if _internal_annotation(obj) is not None:
        return  # reachable from the private network only
    ranges, field = _source_ranges(obj)
    networks = [(index, _network(text)) for index, text in enumerate(ranges)]
    if all(network is None for _, network in networks):
        yield Violation(
            "type LoadBalancer with no valid loadBalancerSourceRanges: the load "
            "balancer accepts traffic from any address",
            "spec.type",
        )
        return
    for index, network in networks:
        if network is not None and network.prefixlen == 0:
            path = f"{field}[{index}]" if field.startswith("spec.") else field
            yield Violation(f"{field} allows {network}, which is every address", path)


@check("exposure.node-port")
def node_port(obj: K8sObject, context: Context) -> Iterator[Violation]:
    if _service_type(obj) != "NodePort":
        raise NotApplicable
    ports = as_list(obj.spec.get("ports"))
    numbers = [
        str(p)
        for p in (as_dict(port).get("nodePort") for port in ports)
        if isinstance(p, int) and not isinstance(p, bool)
    ]
    opened = f"node port(s) {', '.join(numbers)}" if numbers else "an allocated node port"
    yield Violation(
        f"type NodePort opens {opened} on every node's addresses, bypassing any "
        "load balancer or ingress in front of the cluster",
        "spec.type",
    )


@check("exposure.external-ips")
def external_ips(obj: K8sObject, context: Context) -> Iterator[Violation]:
    value = obj.spec.get("externalIPs")
    if value is None or value == []:
        return
    addresses = as_list(value)
    if not addresses or not all(isinstance(a, str) for a in addresses):
        raise NotEvaluated("spec.externalIPs is not a list of addresses")
    yield Violation(
        f"spec.externalIPs claims {', '.join(addresses)}: nodes route traffic for "
        "these addresses to this Service, including traffic meant for hosts "
        "outside the cluster (CVE-2020-8554)",
        "spec.externalIPs",
    )


def _default_backend_field(obj: K8sObject) -> str | None:
    """Where the Ingress names a backend for requests no rule matches (`backend` is the
    pre-networking.k8s.io/v1 spelling)."""
    for field in ("defaultBackend", "backend"):
        if as_dict(obj.spec.get(field)):
            return f"spec.{field}"
    return None


def _rules(obj: K8sObject) -> list[tuple[int, str | None]]:
    """(index, host) of each rule; a rule without a host answers for any host name."""
    return [
        (index, as_str(as_dict(rule).get("host")) or None)
        for index, rule in enumerate(as_list(obj.spec.get("rules")))
        if isinstance(rule, dict)
    ]


def _tls_host_lists(obj: K8sObject) -> list[list[str] | None]:
    """The hosts of each spec.tls entry; None for an entry without hosts, which covers
    whatever host the controller serves."""
    entries: list[list[str] | None] = []
    for entry in as_list(obj.spec.get("tls")):
        if not isinstance(entry, dict):
            continue
        hosts = [h for h in as_list(entry.get("hosts")) if isinstance(h, str)]
        entries.append(hosts or None)
    return entries


def _host_covered(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower(), host.lower()
    if pattern == host:
        return True
    # A wildcard certificate name covers exactly one more label.
    if pattern.startswith("*.") and not host.startswith("*."):
        _, _, parent = host.partition(".")
        return parent == pattern[2:]
    return False


def _tls_covers(tls: list[list[str] | None], host: str | None) -> bool:
    if any(hosts is None for hosts in tls):
        return True
    if host is None:
        return False
    return any(_host_covered(pattern, host) for hosts in tls for pattern in hosts or ())


@check("exposure.ingress-without-tls")
def ingress_without_tls(obj: K8sObject, context: Context) -> Iterator[Violation]:
    rules = _rules(obj)
    default_backend = _default_backend_field(obj)
    if not rules and default_backend is None:
        raise NotApplicable  # routes nothing
    annotations = obj.annotations  # built on each read: read once
    if any(key in annotations for key in TLS_CERTIFICATE_ANNOTATIONS):
        return
    tls = _tls_host_lists(obj)
    for index, host in rules:
        if _tls_covers(tls, host):
            continue
        if host is None:
            yield Violation(
                f"spec.rules[{index}] has no host and no spec.tls entry without "
                "hosts covers it: it is served without TLS",
                f"spec.rules[{index}]",
            )
        else:
            yield Violation(
                f"host {host} (spec.rules[{index}]) is in no spec.tls entry: it is "
                "served without TLS",
                f"spec.rules[{index}].host",
            )
    if default_backend is not None and not _tls_covers(tls, None):
        yield Violation(
            f"{default_backend} answers for any host and no spec.tls entry without "
            "hosts covers it: it is served without TLS",
            default_backend,
        )


@check("exposure.ingress-catch-all")
def ingress_catch_all(obj: K8sObject, context: Context) -> Iterator[Violation]:
    default_backend = _default_backend_field(obj)
    if default_backend is not None:
        yield Violation(
            f"{default_backend} receives every request no rule matches, whatever "
            "host name (or bare address) it was sent to",
            default_backend,
        )
    for index, host in _rules(obj):
        if host is None:
            yield Violation(
                f"spec.rules[{index}] has no host: it answers requests for any host "
                "name, including scans of the load balancer's address",
                f"spec.rules[{index}]",
            )
