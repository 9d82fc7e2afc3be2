#!/usr/bin/env python3
"""Admission webhook latency under a fixed request rate, over keep-alive HTTPS on loopback.

    python bench/webhook_latency.py                          # 200 req/s for 10 s, 4 connections
    python bench/webhook_latency.py --rate 400 --duration 30 --connections 8

The webhook runs as its own `kubeproof webhook serve` process (so the load generator does
not share its interpreter), with a throwaway certificate made by the openssl CLI and the
pss-restricted policy plus an image registry allow-list. The load is open-loop: request i
is due at start + i/rate, and latency is measured from when it was due, so a stalled
server shows up in the tail instead of slowing the generator down (no coordinated
omission). Half the requests are a compliant Deployment (allowed), half a privileged Pod
(denied with a message), each a realistic AdmissionReview.

    python bench/webhook_latency.py --signatures             # + cosign verification, warm cache

`--signatures` also requires a cosign signature: it starts Debian's docker-registry on
127.0.0.1 (the test suite's helpers), pushes an image and its signature made with a key
generated here, pins both requests' image to its digest, and sends one request before the
clock starts, so what is measured is a warm signature cache (no registry call per request).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shlex
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_P99_MS = 10.0
POLICY = """\
apiVersion: kubeproof.dev/v1alpha1
kind: AdmissionPolicy
enforce:
  frameworks: [pss-restricted]
images:
  allowedRegistries: [registry.example.com]
defaultMode: enforce
"""
DEFAULT_IMAGE = "registry.example.com/shop/api:2.4.1"
SIGNATURE_RULES = """\
  signatures:
    - repositories: ["{host}/shop/*"]
      keys: [release.pub]
"""


@contextlib.contextmanager
def signed_image(directory: Path) -> Any:
    """A loopback registry holding an image signed as cosign does; yields (image by
    digest, policy lines to add under `images:`)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from admission.cosign import cosign_sign, new_key, public_pem, push_image
    from images.registry_server import running_registry

    (directory / "registry").mkdir()
    with running_registry(directory / "registry") as registry:
        digest = push_image(registry, "shop/api", "2.4.1", "bench image")
        key = new_key()
        cosign_sign(registry, "shop/api", digest, key)
        (directory / "release.pub").write_text(public_pem(key))
        extra = f'  allowedRepositories: ["{registry.host}/shop/*"]\n'
        yield (
            f"{registry.host}/shop/api@{digest}",
            extra + SIGNATURE_RULES.format(host=registry.host),
        )


def openssl(*arguments: str, stdin: bytes | None = None) -> None:
    subprocess.run(["openssl", *arguments], check=True, capture_output=True, input=stdin)


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a serving certificate for 127.0.0.1 (EC P-256)."""
    ca_key, ca, key, cert = (directory / n for n in ("ca.key", "ca.crt", "tls.key", "tls.crt"))
    for path in (ca_key, key):
        openssl(
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path)
        )
    openssl("req", "-x509", "-new", "-key", str(ca_key), "-subj", "/CN=bench-ca", "-days", "1",
            "-out", str(ca), "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")  # fmt: skip
    extensions = directory / "leaf.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\nsubjectAltName=IP:127.0.0.1\n"
    )
    request = subprocess.run(
        ["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=bench"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    openssl("x509", "-req", "-CA", str(ca), "-CAkey", str(ca_key), "-days", "1", "-out", str(cert),
            "-extfile", str(extensions), stdin=request)  # fmt: skip
    return ca, cert, key


def container(privileged: bool, image: str) -> dict[str, Any]:
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if privileged:
        context["privileged"] = True
    else:
        context["allowPrivilegeEscalation"] = False
    return {
        "name": "app",
        "image": image,
        "ports": [{"containerPort": 8080}],
        "env": [{"name": "MODE", "value": "production"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        "securityContext": context,
    }


def review(privileged: bool, image: str = DEFAULT_IMAGE) -> dict[str, Any]:
    spec = {"containers": [container(privileged, image)], "serviceAccountName": "api"}
    if privileged:
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "debug", "namespace": "shop"},
            "spec": spec,
        }
        kind, group, resource = "Pod", "", "pods"
    else:
        labels = {"app": "api"}
        obj = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop", "labels": labels},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": spec},
            },
        }
        kind, group, resource = "Deployment", "apps", "deployments"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "operation": "CREATE",
            "namespace": "shop",
            "name": obj["metadata"]["name"],
            "userInfo": {"username": "ci", "groups": ["system:authenticated"]},
            "object": obj,
        },
    }


def start_server(
    directory: Path, image_rules: str = "", db: str | None = None
) -> tuple[subprocess.Popen[str], int, Path]:
    ca, cert, key = make_certificate(directory)
    policy = directory / "policy.yaml"
    policy.write_text(POLICY.replace("defaultMode:", image_rules + "defaultMode:"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    command = [sys.executable, "-m", "kubeproof", "webhook", "serve", "--policy", str(policy),
               "--tls-cert", str(cert), "--tls-key", str(key), "--port", "0"]  # fmt: skip
    if db is not None:
        command += ["--db", db]  # every decision recorded in the store, off the request path
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    line = process.stderr.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"the webhook did not start: {line}{process.stderr.read()}")
    # Decision log lines go to stderr: drain them so the server never blocks on a full pipe.
    threading.Thread(target=process.stderr.read, daemon=True).start()
    return process, int(line.rsplit(":", 1)[1].split("/")[0]), ca


def recorded_decisions(db: str) -> tuple[int, int]:
    """Decisions and ledger entries in the store after the server has flushed and exited."""
    from sqlalchemy import func, select

    from kubeproof.store.db import open_store
    from kubeproof.store.schema import AdmissionBatchRow, AdmissionDecisionRow

    store = open_store(db, create=False)
    try:
        with store.reading() as session:
            decisions = session.scalar(select(func.count()).select_from(AdmissionDecisionRow))
            entries = session.scalar(select(func.count()).select_from(AdmissionBatchRow))
        return int(decisions or 0), int(entries or 0)
    finally:
        store.close()


def warm_up(port: int, ca: Path, bodies: list[bytes]) -> None:
    """One request of each kind before the clock starts (fills the signature cache)."""
    context = ssl.create_default_context(cafile=str(ca))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    for expected, body in zip((True, False), bodies, strict=True):
        conn.request("POST", "/validate", body=body)
        answer = json.loads(conn.getresponse().read())["response"]
        audit = answer.get("auditAnnotations", {})
        if answer["allowed"] is not expected or "not-evaluated" in audit:
            raise SystemExit(f"warm-up: unexpected answer {answer['allowed']}: {audit}")
    conn.close()


def run_load(
    port: int, ca: Path, rate: float, duration: float, connections: int, image: str
) -> tuple[list[float], list[float], int, float]:
    """Latencies from due time and from send time (ms), errors, and elapsed seconds."""
    bodies = [json.dumps(review(i % 2 == 1, image)).encode() for i in range(2)]
    total = int(rate * duration)
    context = ssl.create_default_context(cafile=str(ca))
    warm_up(port, ca, bodies)
    due_latencies: list[float] = []
    service_latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def worker(index: int) -> None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        conn.connect()  # handshake before the clock starts: steady state is what we measure
        mine_due, mine_service, mine_errors = [], [], 0
        for i in range(index, total, connections):
            due = start + i / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            sent = time.perf_counter()
            try:
                conn.request("POST", "/validate", body=bodies[i % 2])
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    mine_errors += 1
            except (OSError, http.client.HTTPException):
                mine_errors += 1
                conn.close()
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
            done = time.perf_counter()
            mine_due.append((done - due) * 1000)
            mine_service.append((done - sent) * 1000)
        conn.close()
        with lock:
            due_latencies.extend(mine_due)
            service_latencies.extend(mine_service)
            errors[0] += mine_errors

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return due_latencies, service_latencies, errors[0], time.perf_counter() - start


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load")
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections")
    parser.add_argument(
        "--signatures",
        action="store_true",
        help="also require a cosign signature (loopback registry, warm cache)",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="record every decision in an evidence store (a new SQLite file unless --db)",
    )
    parser.add_argument("--db", metavar="URL", help="with --record: this (empty) store")
    arguments = parser.parse_args()
    if not (0 < arguments.rate <= 5000 and 0 < arguments.duration <= 600):
        parser.error("--rate must be in (0, 5000] and --duration in (0, 600]")
    sys.setswitchinterval(0.0005)  # the generator's threads must not add GIL waits either
    with tempfile.TemporaryDirectory() as directory, contextlib.ExitStack() as stack:
        image, image_rules = DEFAULT_IMAGE, ""
        if arguments.signatures:
            image, image_rules = stack.enter_context(signed_image(Path(directory)))
        db = None
        if arguments.record:
            db = arguments.db or f"sqlite:///{Path(directory) / 'evidence.db'}"
        process, port, ca = start_server(Path(directory), image_rules, db)
        load_before = os.getloadavg()[0]
        cpu_before = cpu_seconds(process.pid)
        try:
            due, service, errors, elapsed = run_load(
                port, ca, arguments.rate, arguments.duration, arguments.connections, image
            )
            cpu_after = cpu_seconds(process.pid)
        finally:
            process.terminate()
            process.wait(60)  # with a store: the buffer is flushed before exiting
        recorded = recorded_decisions(db) if db is not None else None
    print(f"$ python bench/webhook_latency.py {shlex.join(sys.argv[1:])}".rstrip())
    print(
        f"cores: {os.cpu_count()}  python: {sys.version.split()[0]}  "
        f"connections: {arguments.connections}  mix: 50% allowed Deployment, 50% denied Pod"
        + ("  signatures: required (warm cache)" if arguments.signatures else "")
    )
    print(f"{'measure':<26}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for name, values in (("latency (from due time)", due), ("service (from send)", service)):
        row = [percentile(values, q) for q in (0.5, 0.95, 0.99)] + [max(values)]
        print(f"{name:<26}" + "".join(f"{v:>9.2f}" for v in row))
    achieved = len(due) / elapsed
    print(
        f"requests: {len(due)}  errors: {errors}  target rate: {arguments.rate:g}/s  "
        f"achieved: {achieved:.1f}/s  mean service: {statistics.fmean(service):.2f} ms"
    )
    if cpu_before is not None and cpu_after is not None:
        cpu_ms = (cpu_after - cpu_before) * 1000 / len(due)
        print(
            f"webhook CPU: {cpu_ms:.2f} ms per request, "
            f"{cpu_ms * achieved / 1000:.2f} cores at {achieved:.0f}/s"
        )
    if recorded is not None:
        decisions, entries = recorded
        print(
            f"recorded: {decisions} decisions in {entries} ledger entries "
            f"(sent {len(due) + 2}, warm-up included)"
        )
    load_after = os.getloadavg()[0]
    print(f"load average (1 min) before/after: {load_before:.2f} / {load_after:.2f}")
    if max(load_before, load_after) > (os.cpu_count() or 1):
        print(
            "note: the machine was busy with other work; tail latencies include waiting for a CPU"
        )
    p99 = percentile(due, 0.99)
    verdict = "meets" if p99 <= TARGET_P99_MS else "misses"
    print(f"p99 {p99:.2f} ms {verdict} the {TARGET_P99_MS:g} ms target")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
