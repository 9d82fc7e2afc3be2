"""Throughput of the audit pipeline: read a log file, parse every line, count stages and
duplicates, learn the baseline, run every detector. One core, seeded input.

The generated log looks like a busy cluster's: controllers listing, watching and updating,
kubelets reporting status, people with kubectl, CI deploying (pod creations logged with
their bodies at Request level), service accounts reading Secrets, the odd exec, refusal
and anonymous probe. The first half of the time (a day, by default) is the learning
period.

    python bench/audit_pipeline.py [--events N] [--seed S]

Target: at least 20,000 events/s for the whole pipeline.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubeproof.audit.baseline import Baseline
from kubeproof.audit.events import ParseStats
from kubeproof.audit.pipeline import Pipeline
from kubeproof.audit.source import events_in_file

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NAMESPACES = [f"team-{i}" for i in range(40)]
CONTROLLERS = [
    "replicaset-controller",
    "deployment-controller",
    "endpointslice-controller",
    "job-controller",
    "namespace-controller",
    "garbage-collector",
]
PEOPLE = [f"user{i}@example.com" for i in range(25)]
RESOURCES = [
    "pods",
    "deployments",
    "services",
    "configmaps",
    "replicasets",
    "events",
    "endpointslices",
    "jobs",
]
GROUPS = {
    "deployments": "apps",
    "replicasets": "apps",
    "jobs": "batch",
    "endpointslices": "discovery.k8s.io",
}


def stamp(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class Generator:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.serial = 0

    def event(
        self,
        at: float,
        user: str,
        verb: str,
        resource: str,
        *,
        namespace: str = "",
        name: str = "",
        subresource: str = "",
        code: int = 200,
        agent: str = "",
        ip: str = "10.0.0.10",
        body: dict[str, Any] | None = None,
        stage: str = "ResponseComplete",
    ) -> dict[str, Any]:
        self.serial += 1
        group = GROUPS.get(resource, "")
        ref: dict[str, Any] = {"resource": resource, "apiVersion": "v1"}
        for key, value in (
            ("apiGroup", group),
            ("namespace", namespace),
            ("name", name),
            ("subresource", subresource),
        ):
            if value:
                ref[key] = value
        prefix = f"/apis/{group}/v1" if group else "/api/v1"
        path = (
            f"{prefix}/namespaces/{namespace}/{resource}" if namespace else f"{prefix}/{resource}"
        )
        data: dict[str, Any] = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Request" if body is not None else "Metadata",
            "auditID": f"{self.random.getrandbits(64):016x}-{self.serial:012d}",
            "stage": stage,
            "requestURI": path + (f"/{name}" if name else "") + "?resourceVersion=0&limit=500",
            "verb": verb,
            "user": {"username": user, "groups": ["system:authenticated"]},
            "sourceIPs": [ip],
            "userAgent": agent or "kube-controller-manager/v1.36.3 (linux/amd64)",
            "objectRef": ref,
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": stamp(at),
            "stageTimestamp": stamp(at + 0.003),
            "annotations": {
                "authorization.k8s.io/decision": "forbid" if code == 403 else "allow",
                "authorization.k8s.io/reason": "RBAC: allowed by ClusterRoleBinding",
            },
        }
        if body is not None:
            data["requestObject"] = body
        return data

    def pod_body(self, name: str, namespace: str) -> dict[str, Any]:
        privileged = self.random.random() < 0.02
        containers = [
            {
                "name": f"c{i}",
                "image": f"registry.example/app-{i}:1.{self.random.randrange(50)}",
                "env": [{"name": f"VAR_{j}", "value": f"value-{j}"} for j in range(6)],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                "securityContext": {"privileged": True} if privileged else {"runAsNonRoot": True},
            }
            for i in range(self.random.randint(1, 3))
        ]
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app": name.rsplit("-", 1)[0]},
            },
            "spec": {"containers": containers, "serviceAccountName": "default"},
        }

    def one(self, at: float) -> dict[str, Any]:
        pick = self.random.random()
        namespace = self.random.choice(NAMESPACES)
        if pick < 0.40:  # controllers
            controller = self.random.choice(CONTROLLERS)
            user = f"system:serviceaccount:kube-system:{controller}"
            resource = self.random.choice(RESOURCES)
            verb = self.random.choice(["get", "list", "update", "patch", "watch"])
            return self.event(
                at,
                user,
                verb,
                resource,
                namespace=namespace,
                name=f"obj-{self.random.randrange(500)}" if verb != "list" else "",
            )
        if pick < 0.65:  # kubelets
            node = f"node-{self.random.randrange(30)}"
            return self.event(
                at,
                f"system:node:{node}",
                "patch",
                "pods",
                namespace=namespace,
                name=f"web-{self.random.randrange(900)}",
                subresource="status",
                agent="kubelet/v1.36.3 (linux/amd64)",
                ip=f"10.1.0.{self.random.randrange(30)}",
            )
        if pick < 0.80:  # people with kubectl
            person = self.random.choice(PEOPLE)
            verb = self.random.choice(["get", "list", "list", "get", "delete"])
            code = 403 if self.random.random() < 0.03 else 200
            return self.event(
                at,
                person,
                verb,
                self.random.choice(RESOURCES),
                namespace=namespace,
                code=code,
                agent="kubectl/v1.31.2 (darwin/arm64) kubernetes/abc",
                ip=f"192.168.7.{PEOPLE.index(person)}",
            )
        if pick < 0.90:  # CI deploying pods, logged with their bodies
            name = f"web-{self.random.randrange(10**6)}"
            return self.event(
                at,
                "system:serviceaccount:ci:deployer",
                "create",
                "pods",
                namespace=namespace,
                code=201,
                agent="argocd/2.11",
                body=self.pod_body(name, namespace),
            )
        if pick < 0.96:  # secret reads by applications
            app = f"system:serviceaccount:{namespace}:app"
            return self.event(
                at, app, "get", "secrets", namespace=namespace, name="db", agent="app/1.0"
            )
        if pick < 0.98:  # the watch's first stage: read, not counted
            return self.event(at, "system:kube-scheduler", "watch", "pods", stage="ResponseStarted")
        if pick < 0.99:
            return self.event(
                at,
                self.random.choice(PEOPLE),
                "create",
                "pods",
                namespace=namespace,
                name="web-1",
                subresource="exec",
                code=101,
                agent="kubectl/v1.31.2",
            )
        return self.event(at, "system:anonymous", "get", "namespaces", code=403)


def generate(path: Path, count: int, seed: int, span_s: float) -> None:
    generator = Generator(seed)
    step = span_s / count
    with path.open("w") as out:
        for index in range(count):
            data = generator.one(index * step)
            text = json.dumps(data, separators=(",", ":"))
            out.write(text + "\n")
            if index % 1000 == 7:  # the webhook backend retries: a duplicate now and then
                out.write(text + "\n")


# CPU seconds of this process, besides wall-clock seconds: the machines that run this are
# often shared, and the pipeline is single-threaded, so CPU time is what one core costs.


def run(path: Path, span_s: float) -> tuple[float, float, Pipeline]:
    pipeline = Pipeline(Baseline(learning_period_s=span_s / 2))
    began, began_cpu = time.perf_counter(), time.process_time()
    for event in events_in_file(path, pipeline.stats):
        pipeline.feed(event)
    pipeline.results()  # rendering the detections is part of the job
    return time.perf_counter() - began, time.process_time() - began_cpu, pipeline


def parse_only(path: Path) -> float:
    stats = ParseStats()
    began = time.process_time()
    for _ in events_in_file(path, stats):
        pass
    return time.process_time() - began


def stdlib_json_only(path: Path) -> float:
    """A reference: decoding the same lines with the standard library's json, nothing else."""
    began = time.process_time()
    with path.open("rb") as handle:
        for text in handle:
            json.loads(text)
    return time.process_time() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--hours", type=float, default=48.0, help="time the log spans")
    arguments = parser.parse_args()
    span_s = arguments.hours * 3600
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "audit.log"
        generate(path, arguments.events, arguments.seed, span_s)
        size = path.stat().st_size
        elapsed, cpu, pipeline = run(path, span_s)
        parsing = parse_only(path)
        reference = stdlib_json_only(path)
    stats = pipeline.stats
    lines = stats.lines
    print(f"command: python {shlex.join(['bench/audit_pipeline.py', *sys.argv[1:]])}")
    print(
        f"input: {lines} lines, {size / 1e6:.1f} MB, seed {arguments.seed}; "
        f"{stats.events} counted events, {stats.duplicates} duplicates, "
        f"{stats.other_stages} other stages, {stats.malformed} malformed"
    )
    print(
        f"pipeline (read + parse + learn + 14 detectors + results), one core: "
        f"{stats.events / cpu:,.0f} events/s by CPU time ({cpu:.2f} s), "
        f"{stats.events / elapsed:,.0f} events/s by wall clock ({elapsed:.2f} s)"
    )
    print(f"parse only (kubeproof, orjson): {lines / parsing:,.0f} lines/s by CPU time")
    print(
        f"reference, json.loads only (stdlib): {lines / reference:,.0f} lines/s by CPU time "
        f"(kubeproof's whole parse is {reference / parsing:.2f}x the speed of stdlib decoding "
        "alone)"
    )
    print(
        f"detections: {len(pipeline.detections())}; baseline subjects: "
        f"{len(pipeline.baseline.subjects)}; compared: {pipeline.compared_events}"
    )
    return 0 if stats.events / cpu >= 20_000 else 1


if __name__ == "__main__":
    raise SystemExit(main())
