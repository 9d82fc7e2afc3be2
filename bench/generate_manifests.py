#!/usr/bin/env python3
"""Deterministic generator of realistic synthetic Kubernetes manifests.

Usage:
    python bench/generate_manifests.py --resources N --out DIR [--seed S]

Writes exactly N Kubernetes objects under DIR (the items of a ``kind: List``
count, the List wrapper itself does not; empty documents do not count):

* ``cluster/namespaces.yaml``  - Namespaces, some with pod-security labels
* ``cluster/rbac.yaml``        - ClusterRoles and ClusterRoleBindings
* ``legacy/all-in-one.yaml``   - a single ``kind: List`` document
* ``json/*.json``              - a few single-object JSON manifests
* ``<namespace>/<app>.yaml``   - one multi-document file per app (workload,
  Service, ServiceAccount, ConfigMap, and optionally Ingress, NetworkPolicy,
  PodDisruptionBudget, Role/RoleBinding), 5-10 documents each

Workloads are Deployments, StatefulSets, DaemonSets, CronJobs and Jobs with
realistic pod templates: several containers, env vars (configMapKeyRef,
secretKeyRef, fieldRef and a few literal credential-looking values), resources,
probes and securityContext variations, some compliant and some not. About a
third of the volume ``defaultMode`` values are written as YAML 1.1 octals
(``0644``), as hand-written charts do; kubectl/go-yaml read them as octal.
Some files are Helm-style (``# Source:`` comments, an occasional empty
document), lists are indented in some files and not in others.

The output depends only on N and the seed. Only the standard library is used:
the YAML text is written directly (block style, like kubectl/helm output).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import string
import sys
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------
# A small block-style YAML writer (deterministic, quoting-safe).
# ---------------------------------------------------------------------------

# Plain scalars we allow: start with a letter, "_" or "/", no ": " / " #" etc.
_PLAIN_RE = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./@%+=-]*(?::[A-Za-z0-9_./@%+=-]+)*$")
# Words that YAML 1.1 (PyYAML, sigs.k8s.io/yaml) or 1.2 would not read as str.
_RESERVED = {
    w
    for base in (
        "y",
        "n",
        "yes",
        "no",
        "true",
        "false",
        "on",
        "off",
        "null",
    )
    for w in (base, base.capitalize(), base.upper())
}


class Octal(int):
    """An int written the way hand-written manifests often write file modes: 0644."""


def _scalar(value: Any, rnd: random.Random | None = None) -> str:
    if isinstance(value, Octal):
        return "0" + format(int(value), "o")
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    s = str(value)
    if _PLAIN_RE.match(s) and s not in _RESERVED:
        return s
    # Quoted: single quotes sometimes for simple strings (as humans write them).
    if rnd is not None and "'" not in s and s.isprintable() and rnd.random() < 0.4:
        return "'" + s + "'"
    return json.dumps(s, ensure_ascii=False)


def _key(k: str) -> str:
    return k if _PLAIN_RE.match(k) and k not in _RESERVED else json.dumps(k)


def _block_scalar(s: str) -> str | None:
    """Return a literal block header ('|' or '|-') if s can be written as one."""
    if "\n" not in s or s.startswith((" ", "\n")) or "\r" in s:
        return None
    lines = s.rstrip("\n").split("\n")
    if any(ln != ln.rstrip() for ln in lines):
        return None
    if s.endswith("\n\n"):
        return None
    return "|" if s.endswith("\n") else "|-"


class YamlWriter:
    def __init__(self, rnd: random.Random, indent_seq: bool) -> None:
        self.rnd = rnd
        self.indent_seq = indent_seq

    def dump(self, obj: dict[str, Any]) -> str:
        out: list[str] = []
        self._map(obj, 0, out)
        return "\n".join(out) + "\n"

    def _value_lines(self, prefix: str, v: Any, indent: int, out: list[str]) -> None:
        """prefix is 'key:' already indented; v the value; indent = key indent."""
        if isinstance(v, dict):
            if not v:
                out.append(prefix + " {}")
            else:
                out.append(prefix)
                self._map(v, indent + 2, out)
        elif isinstance(v, list):
            if not v:
                out.append(prefix + " []")
            else:
                out.append(prefix)
                self._seq(v, indent + (2 if self.indent_seq else 0), out)
        elif isinstance(v, str) and (hdr := _block_scalar(v)) is not None:
            out.append(prefix + " " + hdr)
            pad = " " * (indent + 2)
            for ln in v.rstrip("\n").split("\n"):
                out.append(pad + ln if ln else "")
        else:
            out.append(prefix + " " + _scalar(v, self.rnd))

    def _map(self, m: dict[str, Any], indent: int, out: list[str]) -> None:
        pad = " " * indent
        for k, v in m.items():
            self._value_lines(pad + _key(k) + ":", v, indent, out)

    def _seq(self, items: list[Any], indent: int, out: list[str]) -> None:
        pad = " " * indent
        for item in items:
            if isinstance(item, dict) and item:
                sub: list[str] = []
                self._map(item, indent + 2, sub)
                out.append(pad + "- " + sub[0][indent + 2 :])
                out.extend(sub[1:])
            elif isinstance(item, list) and item:
                sub = []
                self._seq(item, indent + 2, sub)
                out.append(pad + "- " + sub[0][indent + 2 :])
                out.extend(sub[1:])
            elif isinstance(item, str) and _block_scalar(item) is not None:
                out.append(pad + "- " + json.dumps(item, ensure_ascii=False))
            else:
                out.append(pad + "- " + _scalar(item, self.rnd))


# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------

TEAMS = [
    "payments",
    "checkout",
    "search",
    "identity",
    "platform",
    "data",
    "ml",
    "growth",
    "billing",
    "ledger",
    "notifications",
    "catalog",
    "inventory",
    "shipping",
    "support",
    "analytics",
    "risk",
    "fraud",
    "marketing",
    "observability",
]
ENVS = ["prod", "staging", "dev", "qa", "sandbox"]
APP_WORDS = [
    "api",
    "worker",
    "gateway",
    "frontend",
    "backend",
    "scheduler",
    "indexer",
    "consumer",
    "producer",
    "sync",
    "exporter",
    "proxy",
    "cache",
    "auth",
    "web",
    "reporter",
    "ingest",
    "router",
    "admin",
    "batch",
    "stream",
    "notifier",
    "queue",
    "renderer",
    "resolver",
    "collector",
    "aggregator",
    "validator",
    "uploader",
]
REGISTRIES = [
    "ghcr.io/acme",
    "registry.example.com/platform",
    "docker.io/library",
    "123456789012.dkr.ecr.us-east-1.amazonaws.com",
    "quay.io/acme",
    "europe-docker.pkg.dev/acme-prod/images",
]
SIDECARS = [
    ("envoy", "envoyproxy/envoy", "v1.29.2", [9901, 15001]),
    ("fluent-bit", "fluent/fluent-bit", "2.2.2", [2020]),
    ("statsd-exporter", "prom/statsd-exporter", "v0.26.0", [9102]),
    ("cloud-sql-proxy", "gcr.io/cloud-sql-connectors/cloud-sql-proxy", "2.8.2", [5432]),
    ("oauth2-proxy", "quay.io/oauth2-proxy/oauth2-proxy", "v7.5.1", [4180]),
    ("vault-agent", "hashicorp/vault", "1.15.4", []),
]
ENV_LITERALS = [
    ("LOG_LEVEL", ["info", "debug", "warn", "error"]),
    ("LOG_FORMAT", ["json", "text"]),
    ("GOMAXPROCS", ["2", "4"]),
    ("JAVA_OPTS", ["-Xms512m -Xmx1g -XX:+UseG1GC", "-XX:MaxRAMPercentage=75.0"]),
    ("NODE_ENV", ["production", "development"]),
    ("FEATURE_FLAGS", ["new-checkout,fast-search", "beta-ui", ""]),
    ("HTTP_PORT", ["8080", "8000", "3000"]),
    ("ENABLE_TRACING", ["true", "false", "yes"]),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", ["http://otel-collector.observability:4317"]),
    ("TZ", ["UTC", "Europe/Berlin"]),
    ("CACHE_TTL", ["300", "3600", "1h"]),
    ("MAX_CONNECTIONS", ["100", "250"]),
    ("REGION", ["us-east-1", "eu-west-1"]),
]
CAPS_BAD = ["NET_ADMIN", "SYS_ADMIN", "NET_RAW", "SYS_PTRACE", "SYS_TIME"]
VERBS_RO = ["get", "list", "watch"]
VERBS_RW = ["get", "list", "watch", "create", "update", "patch", "delete"]
RBAC_RESOURCES = [
    ("", "pods"),
    ("", "configmaps"),
    ("", "secrets"),
    ("", "services"),
    ("", "endpoints"),
    ("apps", "deployments"),
    ("batch", "jobs"),
    ("", "events"),
    ("coordination.k8s.io", "leases"),
    ("networking.k8s.io", "ingresses"),
    ("", "persistentvolumeclaims"),
]


class Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    # -- helpers -----------------------------------------------------------
    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def token(self, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def sha(self) -> str:
        return hashlib.sha256(self.token(16).encode()).hexdigest()

    def image(self, name: str) -> str:
        reg = self.r.choice(REGISTRIES)
        roll = self.r.random()
        if roll < 0.08:
            return f"{reg}/{name}:latest"
        if roll < 0.12:
            return f"{reg}/{name}"
        if roll < 0.25:
            return f"{reg}/{name}@sha256:{self.sha()}"
        return f"{reg}/{name}:{self.semver()}"

    def semver(self) -> str:
        return f"{self.r.randint(0, 4)}.{self.r.randint(0, 30)}.{self.r.randint(0, 20)}"

    def fake_secret(self) -> tuple[str, str]:
        kind = self.r.randrange(6)
        if kind == 0:
            return "AWS_ACCESS_KEY_ID", "AKIA" + self.token(16, string.ascii_uppercase + "234567")
        if kind == 1:
            alphabet = string.ascii_letters + string.digits + "/+"
            return "AWS_SECRET_ACCESS_KEY", self.token(40, alphabet)
        if kind == 2:
            choices = ["hunter2", "changeme", "P@ssw0rd!", self.token(14)]
            return "DB_PASSWORD", self.r.choice(choices)
        if kind == 3:
            return "API_TOKEN", "tok_" + self.token(32)
        if kind == 4:
            return "DATABASE_URL", f"postgres://app:{self.token(12)}@db.internal:5432/app"
        return "JWT_SECRET", self.token(48)

    def labels(self, app: str, team: str, component: str, version: str) -> dict[str, str]:
        lab = {
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/instance": f"{app}-{team}",
            "app.kubernetes.io/version": version,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": team,
        }
        if self.chance(0.6):
            lab["app.kubernetes.io/managed-by"] = self.r.choice(["Helm", "kustomize", "argocd"])
        if self.chance(0.4):
            lab["helm.sh/chart"] = f"{app}-{self.r.randint(0, 3)}.{self.r.randint(0, 20)}.0"
        if self.chance(0.5):
            lab["team"] = team
        return lab

    def meta(
        self,
        name: str,
        ns: str | None,
        labels: dict[str, str],
        annotations: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        m: dict[str, Any] = {"name": name}
        if ns is not None:
            m["namespace"] = ns
        m["labels"] = dict(labels)
        if annotations:
            m["annotations"] = annotations
        return m

    # -- pod template --------------------------------------------------------
    def probe(self, port: int) -> dict[str, Any]:
        kind = self.r.random()
        p: dict[str, Any]
        if kind < 0.6:
            p = {
                "httpGet": {
                    "path": self.r.choice(["/healthz", "/ready", "/livez", "/health"]),
                    "port": self.r.choice([port, "http"]),
                    "scheme": "HTTP",
                }
            }
        elif kind < 0.85:
            p = {"tcpSocket": {"port": port}}
        else:
            p = {"exec": {"command": ["/bin/sh", "-c", "pg_isready -U postgres -h 127.0.0.1"]}}
        p["initialDelaySeconds"] = self.r.choice([0, 5, 10, 15, 30])
        p["periodSeconds"] = self.r.choice([5, 10, 20])
        if self.chance(0.5):
            p["timeoutSeconds"] = self.r.choice([1, 2, 5])
            p["failureThreshold"] = self.r.choice([3, 5, 10])
        return p

    def resources(self) -> dict[str, Any] | None:
        roll = self.r.random()
        if roll < 0.15:
            return None
        cpu = self.r.choice(["50m", "100m", "250m", "500m", "1", "2"])
        mem = self.r.choice(["64Mi", "128Mi", "256Mi", "512Mi", "1Gi", "2Gi"])
        res: dict[str, Any] = {"requests": {"cpu": cpu, "memory": mem}}
        if roll > 0.3:
            res["limits"] = {"memory": mem}
            if self.chance(0.5):
                res["limits"]["cpu"] = self.r.choice(["500m", "1", "2", 4])
        return res

    def container_sc(self) -> dict[str, Any] | None:
        roll = self.r.random()
        if roll < 0.15:
            return None
        if roll < 0.6:  # restricted-compliant
            return {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": self.chance(0.8),
                "runAsNonRoot": True,
                "runAsUser": self.r.choice([1000, 10001, 65532]),
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            }
        if roll < 0.8:  # partial
            sc: dict[str, Any] = {"allowPrivilegeEscalation": self.chance(0.5)}
            if self.chance(0.5):
                sc["runAsNonRoot"] = True
            return sc
        if roll < 0.9:  # dangerous capabilities / root
            return {
                "runAsUser": 0,
                "capabilities": {"add": self.r.sample(CAPS_BAD, self.r.randint(1, 2))},
            }
        return {"privileged": True, "allowPrivilegeEscalation": True}

    def env(self, app: str, n: int) -> list[dict[str, Any]]:
        env: list[dict[str, Any]] = []
        for name, vals in self.r.sample(ENV_LITERALS, min(n, len(ENV_LITERALS))):
            env.append({"name": name, "value": self.r.choice(vals)})
        if self.chance(0.7):
            env.append(
                {
                    "name": "DB_PASSWORD" if self.chance(0.5) else "REDIS_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": f"{app}-secrets", "key": "password"}},
                }
            )
        if self.chance(0.4):
            env.append(
                {
                    "name": "API_KEY",
                    "valueFrom": {
                        "secretKeyRef": {
                            "name": f"{app}-api",
                            "key": "api-key",
                            "optional": self.chance(0.3),
                        }
                    },
                }
            )
        if self.chance(0.5):
            env.append(
                {
                    "name": "APP_CONFIG_PROFILE",
                    "valueFrom": {"configMapKeyRef": {"name": f"{app}-config", "key": "profile"}},
                }
            )
        if self.chance(0.5):
            env.append(
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
            )
            env.append(
                {
                    "name": "POD_NAMESPACE",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                }
            )
        if self.chance(0.12):  # literal credential in a manifest (a finding)
            k, v = self.fake_secret()
            env.append({"name": k, "value": v})
        return env

    def container(
        self, name: str, image: str, port: int | None, app: str, main: bool
    ) -> dict[str, Any]:
        c: dict[str, Any] = {"name": name, "image": image}
        if self.chance(0.6):
            c["imagePullPolicy"] = self.r.choice(["IfNotPresent", "Always", "IfNotPresent"])
        if main and self.chance(0.3):
            c["command"] = [f"/usr/local/bin/{app}"]
            c["args"] = [
                "--config=/etc/app/config.yaml",
                f"--port={port or 8080}",
                "--log-level=info",
            ]
        if port:
            ports = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
            if main and self.chance(0.5):
                ports.append({"name": "metrics", "containerPort": 9090, "protocol": "TCP"})
            c["ports"] = ports
        env = self.env(app, self.r.randint(2, 6) if main else self.r.randint(0, 2))
        if env:
            c["env"] = env
        if main and self.chance(0.3):
            c["envFrom"] = [{"configMapRef": {"name": f"{app}-config"}}]
            if self.chance(0.4):
                c["envFrom"].append({"secretRef": {"name": f"{app}-secrets"}})
        res = self.resources()
        if res:
            c["resources"] = res
        if port and self.chance(0.75):
            c["livenessProbe"] = self.probe(port)
            if self.chance(0.8):
                c["readinessProbe"] = self.probe(port)
            if main and self.chance(0.2):
                c["startupProbe"] = self.probe(port)
        sc = self.container_sc()
        if sc:
            c["securityContext"] = sc
        mounts = []
        if main:
            mounts.append({"name": "config", "mountPath": "/etc/app", "readOnly": True})
            if self.chance(0.5):
                mounts.append({"name": "tmp", "mountPath": "/tmp"})
        if mounts:
            c["volumeMounts"] = mounts
        return c

    def pod_spec(self, app: str, sa: str, port: int, kind: str) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.chance(0.85):
            spec["serviceAccountName"] = sa
        if self.chance(0.4):
            spec["automountServiceAccountToken"] = False
        roll = self.r.random()
        if roll < 0.5:
            spec["securityContext"] = {
                "runAsNonRoot": True,
                "runAsUser": self.r.choice([1000, 10001, 65532]),
                "fsGroup": 2000,
                "seccompProfile": {"type": "RuntimeDefault"},
            }
        elif roll < 0.7:
            spec["securityContext"] = {"fsGroup": 1000}
        if kind == "DaemonSet" and self.chance(0.5):
            spec["hostNetwork"] = True
            spec["dnsPolicy"] = "ClusterFirstWithHostNet"
        elif self.chance(0.03):
            spec["hostPID"] = True
        if self.chance(0.3):
            spec["imagePullSecrets"] = [{"name": "regcred"}]
        if self.chance(0.3):
            spec["nodeSelector"] = {
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": self.r.choice(
                    ["m5.xlarge", "c6i.2xlarge", "n2-standard-4"]
                ),
            }
        if kind == "DaemonSet" or self.chance(0.2):
            spec["tolerations"] = [
                {
                    "key": "node-role.kubernetes.io/control-plane",
                    "operator": "Exists",
                    "effect": "NoSchedule",
                }
            ]
        if kind in ("Deployment", "StatefulSet") and self.chance(0.35):
            spec["affinity"] = {
                "podAntiAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 100,
                            "podAffinityTerm": {
                                "labelSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
                                "topologyKey": "kubernetes.io/hostname",
                            },
                        }
                    ]
                }
            }
        if kind == "Deployment" and self.chance(0.2):
            spec["topologySpreadConstraints"] = [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
                }
            ]
        if self.chance(0.2):
            spec["initContainers"] = [
                {
                    "name": "wait-for-db",
                    "image": "busybox:1.36",
                    "command": ["sh", "-c", "until nc -z db 5432; do echo waiting; sleep 2; done"],
                    **({"securityContext": sc} if (sc := self.container_sc()) else {}),
                }
            ]
        containers = [self.container(app, self.image(app), port, app, True)]
        n_side = self.r.choices([0, 1, 2, 3], weights=[35, 40, 18, 7])[0]
        for name, img, tag, ports in self.r.sample(SIDECARS, n_side):
            containers.append(
                self.container(name, f"{img}:{tag}", ports[0] if ports else None, app, False)
            )
        spec["containers"] = containers
        if kind in ("CronJob", "Job"):
            spec["restartPolicy"] = self.r.choice(["OnFailure", "Never"])
        # file modes: decimal (as kubectl prints them) or YAML 1.1 octal (as people write them)
        mode = Octal(0o644) if self.chance(0.35) else 420
        vols: list[dict[str, Any]] = [
            {"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": mode}}
        ]
        if self.chance(0.5):
            vols.append(
                {
                    "name": "tmp",
                    "emptyDir": {}
                    if self.chance(0.6)
                    else {"medium": "Memory", "sizeLimit": "64Mi"},
                }
            )
        if self.chance(0.2):
            vols.append(
                {
                    "name": "tls",
                    "secret": {
                        "secretName": f"{app}-tls",
                        "defaultMode": Octal(0o400) if self.chance(0.35) else 256,
                    },
                }
            )
        if kind == "DaemonSet" or self.chance(0.04):
            vols.append({"name": "varlog", "hostPath": {"path": "/var/log", "type": "Directory"}})
            if self.chance(0.3):
                vols.append({"name": "docker-sock", "hostPath": {"path": "/var/run/docker.sock"}})
        spec["volumes"] = vols
        if self.chance(0.2):
            spec["terminationGracePeriodSeconds"] = self.r.choice([30, 60, 120])
        if self.chance(0.1):
            spec["priorityClassName"] = "high-priority"
        return spec

    def pod_template(
        self, app: str, sa: str, port: int, kind: str, sel: dict[str, str], labels: dict[str, str]
    ) -> dict[str, Any]:
        md: dict[str, Any] = {
            "labels": {
                **sel,
                **{k: v for k, v in labels.items() if k.endswith(("version", "part-of"))},
            }
        }
        ann: dict[str, Any] = {}
        if self.chance(0.6):
            ann["checksum/config"] = self.sha()
        if self.chance(0.4):
            ann["prometheus.io/scrape"] = "true"
            ann["prometheus.io/port"] = "9090"
        if self.chance(0.15):
            ann["cluster-autoscaler.kubernetes.io/safe-to-evict"] = "false"
        if self.chance(0.05):
            ann["kubectl.kubernetes.io/restartedAt"] = "2024-03-14T09:26:53Z"
        if ann:
            md["annotations"] = ann
        return {"metadata": md, "spec": self.pod_spec(app, sa, port, kind)}

    # -- objects -------------------------------------------------------------
    def workload(
        self, kind: str, app: str, ns: str, team: str, sa: str, port: int
    ) -> dict[str, Any]:
        version = self.semver()
        labels = self.labels(app, team, "server" if kind != "CronJob" else "job", version)
        sel = {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": f"{app}-{team}"}
        ann = (
            {"deployment.kubernetes.io/revision": str(self.r.randint(1, 40))}
            if kind == "Deployment" and self.chance(0.3)
            else None
        )
        tpl = self.pod_template(app, sa, port, kind, sel, labels)
        api = "batch/v1" if kind in ("CronJob", "Job") else "apps/v1"
        obj: dict[str, Any] = {
            "apiVersion": api,
            "kind": kind,
            "metadata": self.meta(app, ns, labels, ann),
        }
        if kind == "Deployment":
            spec: dict[str, Any] = {"replicas": self.r.choice([1, 2, 3, 3, 5, 10])}
            if self.chance(0.5):
                spec["revisionHistoryLimit"] = 10
            spec["selector"] = {"matchLabels": sel}
            if self.chance(0.6):
                spec["strategy"] = {
                    "type": "RollingUpdate",
                    "rollingUpdate": {
                        "maxSurge": self.r.choice(["25%", 1]),
                        "maxUnavailable": self.r.choice([0, "25%"]),
                    },
                }
            spec["template"] = tpl
        elif kind == "StatefulSet":
            spec = {
                "serviceName": f"{app}-headless",
                "replicas": self.r.choice([1, 3, 5]),
                "selector": {"matchLabels": sel},
                "template": tpl,
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": self.r.choice(["gp3", "standard-rwo"]),
                            "resources": {
                                "requests": {"storage": self.r.choice(["10Gi", "50Gi", "100Gi"])}
                            },
                        },
                    }
                ],
            }
        elif kind == "DaemonSet":
            spec = {
                "selector": {"matchLabels": sel},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                "template": tpl,
            }
        elif kind == "Job":
            spec = {
                "backoffLimit": self.r.choice([0, 3, 6]),
                "ttlSecondsAfterFinished": 3600,
                "template": tpl,
            }
        else:  # CronJob
            spec = {
                "schedule": self.r.choice(
                    ["*/5 * * * *", "0 * * * *", "0 3 * * *", "30 2 * * 1-5", "@daily"]
                ),
                "concurrencyPolicy": self.r.choice(["Forbid", "Replace", "Allow"]),
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 1,
                "jobTemplate": {"spec": {"backoffLimit": 2, "template": tpl}},
            }
            if self.chance(0.3):
                spec["timeZone"] = "Etc/UTC"
        obj["spec"] = spec
        return obj

    def service(
        self, app: str, ns: str, labels: dict[str, str], port: int, headless: bool = False
    ) -> dict[str, Any]:
        sel = {
            "app.kubernetes.io/name": app,
            "app.kubernetes.io/instance": labels["app.kubernetes.io/instance"],
        }
        roll = self.r.random()
        ann = None
        spec: dict[str, Any] = {}
        if headless:
            spec["clusterIP"] = "None"
            name = f"{app}-headless"
        else:
            name = app
            if roll < 0.8:
                spec["type"] = "ClusterIP"
            elif roll < 0.9:
                spec["type"] = "NodePort"
            else:
                spec["type"] = "LoadBalancer"
                ann = {
                    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
                    "service.beta.kubernetes.io/aws-load-balancer-internal": "true"
                    if self.chance(0.5)
                    else "false",
                }
                if self.chance(0.5):
                    spec["loadBalancerSourceRanges"] = ["10.0.0.0/8", "0.0.0.0/0"][
                        : self.r.randint(1, 2)
                    ]
        ports: list[dict[str, Any]] = [
            {
                "name": "http",
                "port": 80 if port != 443 else 443,
                "targetPort": self.r.choice([port, "http"]),
                "protocol": "TCP",
            }
        ]
        if spec.get("type") == "NodePort":
            ports[0]["nodePort"] = self.r.randint(30000, 32767)
        if self.chance(0.4):
            ports.append({"name": "metrics", "port": 9090, "targetPort": 9090, "protocol": "TCP"})
        spec["ports"] = ports
        spec["selector"] = sel
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self.meta(name, ns, labels, ann),
            "spec": spec,
        }

    def service_account(self, name: str, ns: str, labels: dict[str, str]) -> dict[str, Any]:
        ann = None
        if self.chance(0.3):
            ann = {
                "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/"
                f"{name}-{self.token(6).lower()}"
            }
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": self.meta(name, ns, labels, ann),
        }
        if self.chance(0.3):
            obj["automountServiceAccountToken"] = False
        return obj

    def config_map(self, app: str, ns: str, labels: dict[str, str]) -> dict[str, Any]:
        data: dict[str, Any] = {"profile": self.r.choice(ENVS)}
        lines = [
            "server:",
            f"  port: {self.r.choice([8080, 8000, 3000])}",
            f"  readTimeout: {self.r.choice([5, 10, 30])}s",
            "database:",
            f"  host: {app}-db.{ns}.svc.cluster.local",
            "  port: 5432",
            f"  pool: {self.r.randint(5, 50)}",
            "features:",
        ]
        for i in range(self.r.randint(2, 10)):
            lines.append(f"  flag{i}: {self.r.choice(['true', 'false'])}")
        lines.append("logging:")
        lines.append(f"  level: {self.r.choice(['info', 'debug'])}")
        data["config.yaml"] = "\n".join(lines) + "\n"
        if self.chance(0.3):
            data["nginx.conf"] = (
                "server {\n    listen 8080;\n    location / {\n"
                f"        proxy_pass http://{app}:80;\n        proxy_set_header Host $host;\n"
                "    }\n}\n"
            )
        if self.chance(0.3):
            data["MAX_WORKERS"] = str(self.r.randint(1, 16))
            data["ENABLE_CACHE"] = self.r.choice(["true", "false"])
        if self.chance(0.05):
            k, v = self.fake_secret()
            data[k] = v
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": self.meta(f"{app}-config", ns, labels),
            "data": data,
        }

    def ingress(self, app: str, ns: str, labels: dict[str, str], team: str) -> dict[str, Any]:
        host = f"{app}.{team}.example.com"
        ann: dict[str, Any] = {"cert-manager.io/cluster-issuer": "letsencrypt-prod"}
        if self.chance(0.4):
            ann["nginx.ingress.kubernetes.io/proxy-body-size"] = "10m"
        if self.chance(0.2):
            ann["nginx.ingress.kubernetes.io/ssl-redirect"] = "false"
        spec: dict[str, Any] = {"ingressClassName": self.r.choice(["nginx", "alb", "traefik"])}
        if self.chance(0.75):
            spec["tls"] = [{"hosts": [host], "secretName": f"{app}-tls"}]
        spec["rules"] = [
            {
                "host": host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": app, "port": {"number": 80}}},
                        }
                    ]
                },
            }
        ]
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": self.meta(app, ns, labels, ann),
            "spec": spec,
        }

    def network_policy(
        self, app: str, ns: str, labels: dict[str, str], port: int
    ) -> dict[str, Any]:
        if self.chance(0.3):
            return {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": self.meta(f"{app}-default-deny", ns, labels),
                "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
            }
        spec: dict[str, Any] = {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": app}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                            }
                        },
                        {
                            "podSelector": {
                                "matchLabels": {
                                    "app.kubernetes.io/part-of": labels["app.kubernetes.io/part-of"]
                                }
                            }
                        },
                    ],
                    "ports": [{"protocol": "TCP", "port": port}],
                }
            ],
        }
        if self.chance(0.4):
            spec["policyTypes"].append("Egress")
            spec["egress"] = [
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]},
                {"ports": [{"protocol": "UDP", "port": 53}]},
            ]
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": self.meta(app, ns, labels),
            "spec": spec,
        }

    def pdb(self, app: str, ns: str, labels: dict[str, str]) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        if self.chance(0.6):
            spec["minAvailable"] = self.r.choice([1, "50%"])
        else:
            spec["maxUnavailable"] = self.r.choice([1, "25%"])
        spec["selector"] = {"matchLabels": {"app.kubernetes.io/name": app}}
        return {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": self.meta(app, ns, labels),
            "spec": spec,
        }

    def rules(self, wild: float) -> list[dict[str, Any]]:
        if self.chance(wild):
            return [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
        out = []
        for group, res in self.r.sample(RBAC_RESOURCES, self.r.randint(1, 4)):
            out.append(
                {
                    "apiGroups": [group],
                    "resources": [res],
                    "verbs": list(VERBS_RO if self.chance(0.6) else VERBS_RW),
                }
            )
        return out

    def role_pair(self, app: str, ns: str, labels: dict[str, str], sa: str) -> list[dict[str, Any]]:
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": self.meta(app, ns, labels),
            "rules": self.rules(0.05),
        }
        rb = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": self.meta(app, ns, labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": app},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}],
        }
        return [role, rb]

    def namespace(self, ns: str, team: str) -> dict[str, Any]:
        labels: dict[str, str] = {"kubernetes.io/metadata.name": ns, "team": team}
        roll = self.r.random()
        if roll < 0.6:
            level = self.r.choice(["restricted", "restricted", "baseline", "privileged"])
            labels["pod-security.kubernetes.io/enforce"] = level
            labels["pod-security.kubernetes.io/enforce-version"] = "latest"
            if self.chance(0.5):
                labels["pod-security.kubernetes.io/warn"] = "restricted"
                labels["pod-security.kubernetes.io/audit"] = "restricted"
        elif roll < 0.75:
            labels["pod-security.kubernetes.io/warn"] = "baseline"
        md: dict[str, Any] = {"name": ns, "labels": labels}
        if self.chance(0.3):
            md["annotations"] = {
                "owner": f"{team}@example.com",
                "scheduler.alpha.kubernetes.io/node-selector": "pool=general",
            }
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": md}

    def cluster_rbac(self, i: int) -> list[dict[str, Any]]:
        name = f"{self.r.choice(TEAMS)}-{self.r.choice(APP_WORDS)}-{i}"
        labels = {
            "app.kubernetes.io/managed-by": "Helm",
            "rbac.example.com/aggregate": "true" if self.chance(0.2) else "false",
        }
        cr: dict[str, Any] = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name, "labels": labels},
            "rules": self.rules(0.1),
        }
        if self.chance(0.15):
            cr["rules"].append({"nonResourceURLs": ["/metrics", "/healthz"], "verbs": ["get"]})
        ref = "cluster-admin" if self.chance(0.08) else name
        sns = self.r.choice(TEAMS) + "-" + self.r.choice(ENVS)
        subjects: list[dict[str, Any]] = [
            {"kind": "ServiceAccount", "name": name, "namespace": sns}
        ]
        if self.chance(0.1):
            subjects.append(
                {
                    "kind": "Group",
                    "name": "system:authenticated",
                    "apiGroup": "rbac.authorization.k8s.io",
                }
            )
        crb = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": ref,
            },
            "subjects": subjects,
        }
        return [cr, crb]

    def app_bundle(self, app: str, ns: str, team: str) -> list[dict[str, Any]]:
        kind = self.r.choices(
            ["Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job"], weights=[70, 10, 5, 10, 5]
        )[0]
        port = self.r.choice([8080, 8080, 8000, 3000, 9000, 5000, 443])
        version = self.semver()
        labels = self.labels(app, team, "server", version)
        sa = app if self.chance(0.85) else "default"
        docs: list[dict[str, Any]] = []
        if sa != "default":
            docs.append(self.service_account(sa, ns, labels))
        docs.append(self.config_map(app, ns, labels))
        if self.chance(0.3):
            docs.append(self.config_map(app + "-extra", ns, labels))
        if kind in ("Deployment", "StatefulSet", "DaemonSet"):
            docs.append(self.service(app, ns, labels, port))
            if kind == "StatefulSet":
                docs.append(self.service(app, ns, labels, port, headless=True))
            if kind == "Deployment" and self.chance(0.5):
                docs.append(self.ingress(app, ns, labels, team))
            if kind != "DaemonSet" and self.chance(0.6):
                docs.append(self.pdb(app, ns, labels))
        docs.append(self.workload(kind, app, ns, team, sa, port))
        if self.chance(0.55):
            docs.append(self.network_policy(app, ns, labels, port))
        if sa != "default" and self.chance(0.5):
            docs.extend(self.role_pair(app, ns, labels, sa))
        # pad small bundles towards 5 documents with extra config/policies
        while len(docs) < 5:
            if self.chance(0.5):
                docs.append(self.config_map(f"{app}-extra{len(docs)}", ns, labels))
            else:
                docs.append(self.network_policy(f"{app}-np{len(docs)}", ns, labels, port))
        return docs


# ---------------------------------------------------------------------------
# File writing
# ---------------------------------------------------------------------------


def write_stream(path: Path, docs: list[dict[str, Any]], g: Gen, app: str = "") -> None:
    w = YamlWriter(g.r, indent_seq=g.chance(0.4))
    helm = g.chance(0.35)
    parts: list[str] = []
    lead = g.chance(0.5)
    for i, d in enumerate(docs):
        head = ""
        if i > 0 or lead or helm:
            head = "---\n"
        if helm:
            tpl = d["kind"].lower()
            head += f"# Source: {app or 'chart'}/templates/{tpl}.yaml\n"
            if g.chance(0.03):  # conditional template that rendered to nothing
                head = head + "---\n# Source: " + f"{app or 'chart'}/templates/hpa.yaml\n"
        elif g.chance(0.05):
            head += f"# {d['kind']} for {d['metadata']['name']}\n"
        parts.append(head + w.dump(d))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts), encoding="utf-8")


def generate(n: int, out: Path, seed: int) -> dict[str, Any]:
    g = Gen(seed)
    out.mkdir(parents=True, exist_ok=True)
    remaining = n
    files = 0
    kinds: dict[str, int] = {}

    def take(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        nonlocal remaining
        docs = docs[:remaining]
        remaining -= len(docs)
        for d in docs:
            kinds[d["kind"]] = kinds.get(d["kind"], 0) + 1
        return docs

    n_ns = max(1, min(60, n // 325))
    namespaces = []
    for i in range(n_ns):
        team = TEAMS[i % len(TEAMS)]
        env = ENVS[(i // len(TEAMS)) % len(ENVS)]
        namespaces.append((f"{team}-{env}", team))
    docs = take([g.namespace(ns, team) for ns, team in namespaces])
    if docs:
        write_stream(out / "cluster" / "namespaces.yaml", docs, g)
        files += 1

    cr: list[dict[str, Any]] = []
    for i in range(max(1, n // 400)):
        cr.extend(g.cluster_rbac(i))
    docs = take(cr)
    if docs:
        write_stream(out / "cluster" / "rbac.yaml", docs, g)
        files += 1

    # One kind: List file (as `kubectl get -o yaml` produces).
    ns0, team0 = namespaces[0]
    items: list[dict[str, Any]] = []
    for i in range(3 if n >= 200 else 1):
        items.extend(g.app_bundle(f"legacy-{g.r.choice(APP_WORDS)}-{i}", ns0, team0))
    items = take(items)
    if items:
        lst = {
            "apiVersion": "v1",
            "kind": "List",
            "items": items,
            "metadata": {"resourceVersion": ""},
        }
        (out / "legacy").mkdir(parents=True, exist_ok=True)
        (out / "legacy" / "all-in-one.yaml").write_text(
            YamlWriter(g.r, indent_seq=False).dump(lst), encoding="utf-8"
        )
        files += 1

    # A few JSON manifests, one object each.
    bundle = g.app_bundle("json-exported", ns0, team0)
    workloads = [
        d for d in bundle if "template" in d.get("spec", {}) or "jobTemplate" in d.get("spec", {})
    ]
    json_docs = take((workloads + [d for d in bundle if d not in workloads])[:4])
    for d in json_docs:
        name = f"{d['kind'].lower()}-{d['metadata']['name']}.json"
        (out / "json").mkdir(parents=True, exist_ok=True)
        (out / "json" / name).write_text(json.dumps(d, indent=2) + "\n", encoding="utf-8")
        files += 1

    i = 0
    while remaining > 0:
        ns, team = namespaces[g.r.randrange(len(namespaces))]
        app = f"{g.r.choice(APP_WORDS)}-{g.r.choice(APP_WORDS)}-{i}"
        docs = g.app_bundle(app, ns, team)
        if g.chance(0.3):  # some apps have a few more objects
            docs.append(g.config_map(f"{app}-env", ns, docs[0]["metadata"]["labels"]))
        docs = take(docs[:10])
        ext = ".yml" if g.chance(0.15) else ".yaml"
        write_stream(out / ns / f"{app}{ext}", docs, g, app)
        files += 1
        i += 1

    total = sum(kinds.values())
    assert total == n, (total, n)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "resources": total,
        "files": files,
        "bytes": size,
        "kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resources", type=int, required=True, help="exact number of objects")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args(argv)
    if args.resources < 1:
        ap.error("--resources must be >= 1")
    if args.out.exists() and any(args.out.iterdir()):
        ap.error(f"{args.out} is not empty")
    summary = generate(args.resources, args.out, args.seed)
    avg = summary["bytes"] / summary["resources"]
    print(
        f"wrote {summary['resources']} resources in {summary['files']} files, "
        f"{summary['bytes'] / 1e6:.1f} MB ({avg:.0f} B/resource)",
        file=sys.stderr,
    )
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
