"""The objects bench/cluster_scan.py loads into a test control plane.

Deployments and their neighbours come from generate_manifests.Gen (the same realistic pod
templates as the manifest benchmark), adjusted so that the API server accepts every
object and the controllers can create every pod:

* namespaces get no `pod-security.kubernetes.io/enforce` label (it becomes `warn`), since
  PodSecurity admission would reject the non-compliant pods the checks are meant to find;
* a Deployment's pods run as a ServiceAccount that exists (ServiceAccount admission
  rejects pods naming a missing one), and have 1-3 replicas (2 on average);
* pod templates are made valid: every mounted volume exists, CPU limits are not below
  requests, Services name no fixed nodePort.

Per namespace, apps come in groups of four Deployments that share a ServiceAccount, a
Service and a ConfigMap; every second group adds a Secret and a NetworkPolicy, every fifth
a Role and RoleBinding, an Ingress and a PodDisruptionBudget. Each namespace also has a
default-deny NetworkPolicy, and the cluster has ClusterRoles and ClusterRoleBindings (and
the PriorityClass that some pod templates name).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from generate_manifests import APP_WORDS, ENVS, TEAMS, Gen

Obj = dict[str, Any]
GROUP_SIZE = 4  # Deployments per ServiceAccount, Service and ConfigMap
CLUSTER_RBAC_PAIRS = 50
ENFORCE = "pod-security.kubernetes.io/enforce"
# Some pod templates name it; Priority admission rejects pods whose class does not exist.
PRIORITY_CLASS: Obj = {
    "apiVersion": "scheduling.k8s.io/v1",
    "kind": "PriorityClass",
    "metadata": {"name": "high-priority"},
    "value": 1_000_000,
}


@dataclass
class Plan:
    """What to create, in the order the API server needs it."""

    namespaces: list[Obj] = field(default_factory=list)
    service_accounts: list[Obj] = field(default_factory=list)
    cluster_scoped: list[Obj] = field(default_factory=list)
    deployments: list[Obj] = field(default_factory=list)
    others: list[Obj] = field(default_factory=list)  # Services, ConfigMaps, Secrets, ...

    @property
    def expected_pods(self) -> int:
        return sum(int(d["spec"]["replicas"]) for d in self.deployments)

    def all_objects(self) -> list[Obj]:
        return [
            *self.namespaces,
            *self.service_accounts,
            *self.cluster_scoped,
            *self.deployments,
            *self.others,
        ]


def namespace_names(count: int) -> list[tuple[str, str]]:
    """(namespace, team) pairs: team-env, with a suffix once the combinations run out."""
    names = []
    for i in range(count):
        team = TEAMS[i % len(TEAMS)]
        env = ENVS[(i // len(TEAMS)) % len(ENVS)]
        suffix = f"-{i}" if i >= len(TEAMS) * len(ENVS) else ""
        names.append((f"{team}-{env}{suffix}", team))
    return names


def plan(namespaces: int, deployments: int, seed: int = 7) -> Plan:
    g = Gen(seed)
    result = Plan()
    per_namespace = [deployments // namespaces] * namespaces
    for i in range(deployments % namespaces):
        per_namespace[i] += 1
    app_index = 0
    for (ns, team), count in zip(namespace_names(namespaces), per_namespace, strict=True):
        result.namespaces.append(_namespace(g, ns, team))
        result.others.append(_default_deny(ns))
        for number, start in enumerate(range(0, count, GROUP_SIZE)):
            size = min(GROUP_SIZE, count - start)
            apps = [_app_name(app_index + k) for k in range(size)]
            _add_group(g, result, ns, team, number, apps)
            app_index += size
    result.cluster_scoped.append(PRIORITY_CLASS)
    for i in range(CLUSTER_RBAC_PAIRS):
        result.cluster_scoped.extend(g.cluster_rbac(i))
    return result


def _app_name(index: int) -> str:
    # Deterministic per index, unique through the suffix.
    words = APP_WORDS[index % len(APP_WORDS)], APP_WORDS[(index * 7 + 3) % len(APP_WORDS)]
    return f"{words[0]}-{words[1]}-{index}"


def _add_group(g: Gen, result: Plan, ns: str, team: str, number: int, apps: list[str]) -> None:
    leader = apps[0]  # names the group's ServiceAccount, Service, ConfigMap, ...
    port = g.r.choice([8080, 8080, 8000, 3000, 9000, 5000, 443])
    labels = g.labels(leader, team, "server", g.semver())
    result.service_accounts.append(g.service_account(leader, ns, labels))
    result.others.append(_without_node_ports(g.service(leader, ns, labels, port)))
    result.others.append(g.config_map(leader, ns, labels))
    if number % 2 == 0:
        result.others.append(_secret(g, leader, ns, labels, tls=number % 4 == 0))
        result.others.append(g.network_policy(leader, ns, labels, port))
    if number % 5 == 0:
        result.others.extend(g.role_pair(leader, ns, labels, leader))
        result.others.append(g.ingress(leader, ns, labels, team))
        result.others.append(g.pdb(leader, ns, labels))
    for app in apps:
        deployment = g.workload("Deployment", app, ns, team, leader, port)
        deployment["spec"]["replicas"] = g.r.choice([1, 2, 3])
        _make_valid(deployment["spec"]["template"]["spec"])
        result.deployments.append(deployment)


def _namespace(g: Gen, ns: str, team: str) -> Obj:
    namespace = g.namespace(ns, team)
    labels: dict[str, str] = namespace["metadata"]["labels"]
    labels.pop(f"{ENFORCE}-version", None)
    if ENFORCE in labels:
        labels.setdefault("pod-security.kubernetes.io/warn", labels.pop(ENFORCE))
    return namespace


def _default_deny(ns: str) -> Obj:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "default-deny", "namespace": ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
    }


def _secret(g: Gen, app: str, ns: str, labels: dict[str, str], *, tls: bool) -> Obj:
    def encoded(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    if tls:  # the API server only checks that both keys are there
        name, kind = f"{app}-tls", "kubernetes.io/tls"
        data = {"tls.crt": encoded(g.token(64)), "tls.key": encoded(g.token(64))}
    else:
        name, kind = f"{app}-secrets", "Opaque"
        data = {"password": encoded(g.token(24)), "api-key": encoded(g.token(32))}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": g.meta(name, ns, labels),
        "type": kind,
        "data": data,
    }


def _without_node_ports(service: Obj) -> Obj:
    # Fixed nodePorts could collide across thousands of Services; the server picks them.
    for port in service["spec"].get("ports", []):
        port.pop("nodePort", None)
    return service


def _make_valid(pod_spec: Obj) -> None:
    """Fix what the generator allows but the API server rejects."""
    volumes = pod_spec.setdefault("volumes", [])
    declared = {volume["name"] for volume in volumes}
    for container in pod_spec.get("initContainers", []) + pod_spec["containers"]:
        for mount in container.get("volumeMounts", []):
            if mount["name"] not in declared:
                volumes.append({"name": mount["name"], "emptyDir": {}})
                declared.add(mount["name"])
        resources = container.get("resources", {})
        requested = resources.get("requests", {}).get("cpu")
        limit = resources.get("limits", {}).get("cpu")
        if requested is not None and limit is not None and _cpu(limit) < _cpu(requested):
            resources["limits"]["cpu"] = requested


def _cpu(quantity: str | int) -> float:
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)
