#!/usr/bin/env python3
"""Live-cluster scan: `kubeproof scan --cluster` against a loaded test control plane, and
the same objects scanned from files.

    python bench/cluster_scan.py                  # 50 namespaces, 2,000 Deployments, 3 runs
    python bench/cluster_scan.py --keep           # leave the control plane up afterwards
    python bench/cluster_scan.py --profile 25     # + one cProfile'd cluster scan, top 25

Starts its own control plane (scripts/controlplane/build.sh, up.sh; down.sh at exit, even
on error), creates Namespaces, ServiceAccounts, cluster RBAC, Deployments and their
neighbours (bench/cluster_objects.py) over concurrent HTTPS requests, and waits until
kube-controller-manager has created every ReplicaSet and Pod (pods stay Pending: there is
no kubelet). Then it exports what kubeproof lists, as read back from the API, to YAML files
(as `kubectl get -o yaml` writes them: no managedFields; Secrets without their data, since
kubeproof reads Secrets from a cluster as metadata only), and times alternately a fresh
`kubeproof scan --cluster --kubeconfig ADMIN` and `kubeproof scan DIR` process (wall
clock; CPU time and peak RSS from wait4), and compares the two reports' verdicts.

kube-controller-manager creates the ReplicaSets and Pods at its default client rate
(20 requests/s), so loading 10,000 objects takes several minutes; the scans do not start
until the control plane is idle again.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pstats
import shlex
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from cluster_objects import Obj, plan

from kubeproof.sources.cluster import SCANNED_KINDS, ApiClient, discover, list_all
from kubeproof.sources.kubeconfig import load_connection

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE.parent / "scripts" / "controlplane"
TARGET_WALL_S = 20.0
TARGET_RSS_MB = 400.0
RETRYABLE = {0, 429, 500, 502, 503, 504}
# Where the kinds this benchmark creates or counts live: (group-version path, plural).
COLLECTIONS: dict[str, tuple[str, str]] = {
    "Namespace": ("/api/v1", "namespaces"),
    "ServiceAccount": ("/api/v1", "serviceaccounts"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Secret": ("/api/v1", "secrets"),
    "Pod": ("/api/v1", "pods"),
    "Deployment": ("/apis/apps/v1", "deployments"),
    "ReplicaSet": ("/apis/apps/v1", "replicasets"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses"),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets"),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles"),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings"),
    "PriorityClass": ("/apis/scheduling.k8s.io/v1", "priorityclasses"),
}


class BenchError(RuntimeError):
    """The control plane or the load failed; the message says where."""


# --- control plane --------------------------------------------------------------------------


def run_script(name: str, *args: str, timeout_s: float) -> str:
    try:
        done = subprocess.run(
            [str(SCRIPTS / name), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.CalledProcessError as error:
        raise BenchError(f"{name} failed ({error.returncode}):\n{error.stderr}") from None
    except subprocess.TimeoutExpired:
        raise BenchError(f"{name} did not finish within {timeout_s:.0f} s") from None
    return done.stdout


def read_env(directory: Path) -> dict[str, str]:
    lines = (directory / "cluster.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


class Api:
    """JSON over HTTPS as cluster-admin, one keep-alive connection per thread."""

    def __init__(self, env: dict[str, str]) -> None:
        server = urlsplit(env["SERVER"])
        self._host, self._port = server.hostname or "127.0.0.1", server.port or 443
        self._context = ssl.create_default_context(cafile=env["CA_FILE"])
        self._context.load_cert_chain(env["ADMIN_CERT"], env["ADMIN_KEY"])
        self._local = threading.local()

    def request(self, method: str, path: str, body: Obj | None = None) -> tuple[int, bytes]:
        """(status, body); status 0 when the connection failed."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        for attempt in (1, 2):  # a kept-alive connection may have been closed by the server
            connection = self._connection()
            try:
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                return response.status, response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.connection = None
                if attempt == 2:
                    return 0, b"connection failed"
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise BenchError(f"GET {path}: {status} {body[:300]!r}")
        return json.loads(body)

    def count(self, kind: str, selector: str = "") -> int:
        """How many objects of `kind` (matching `selector`, if given) the server stores."""
        prefix, plural = COLLECTIONS[kind]
        if selector:  # remainingItemCount is only given for lists without a selector
            return len(self.get(f"{prefix}/{plural}?{selector}").get("items") or [])
        page = self.get(f"{prefix}/{plural}?limit=1")
        remaining = int(page.get("metadata", {}).get("remainingItemCount") or 0)
        return len(page.get("items") or []) + remaining

    def _connection(self) -> http.client.HTTPSConnection:
        connection: http.client.HTTPSConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPSConnection(
                self._host, self._port, context=self._context, timeout=60
            )
            self._local.connection = connection
        return connection


# --- loading --------------------------------------------------------------------------------


def collection_path(obj: Obj) -> str:
    prefix, plural = COLLECTIONS[obj["kind"]]
    namespace = obj["metadata"].get("namespace")
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"


def create(api: Api, obj: Obj) -> None:
    path = collection_path(obj)
    for attempt in range(6):
        status, body = api.request("POST", path, obj)
        if status in (201, 409):  # 409: a retry after a lost response found it created
            return
        if status not in RETRYABLE:
            break
        time.sleep(0.2 * 2**attempt)
    name = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
    raise BenchError(f"creating {name}: HTTP {status} {body[:500]!r}")


def create_all(api: Api, objects: list[Obj], workers: int) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(lambda obj: create(api, obj), objects):
            pass


def wait_until(
    probe: Callable[[], bool],
    what: str,
    timeout_s: float,
    progress: Callable[[], str],
    stall_s: float = 180.0,
) -> None:
    """Poll `probe`; every 15 s print `progress()`, and give up when it has not changed
    for `stall_s` (the controllers keep failing) or after `timeout_s`."""
    started = last_report = last_change = time.monotonic()
    last_progress = ""
    while not probe():
        now = time.monotonic()
        if now - started > timeout_s:
            raise BenchError(f"timed out after {timeout_s:.0f} s waiting for {what}: {progress()}")
        if now - last_report > 15:
            current = progress()
            print(f"  waiting for {what}: {current}", flush=True)
            if current != last_progress:
                last_progress, last_change = current, now
            elif now - last_change > stall_s:
                raise BenchError(f"no progress in {stall_s:.0f} s waiting for {what}: {current}")
            last_report = now
        time.sleep(1.0)


def load(
    api: Api, namespaces: int, deployments: int, workers: int, settle_s: float, log: Path
) -> float:
    """Create every object, wait for the controllers; returns the seconds it took."""
    started = time.perf_counter()
    objects = plan(namespaces, deployments)
    create_all(api, objects.namespaces, workers)
    create_all(api, objects.service_accounts + objects.cluster_scoped, workers)
    # Pods need their ServiceAccount, `default` included (made by the controller manager).
    default_accounts = "fieldSelector=metadata.name%3Ddefault"
    wait_until(
        lambda: api.count("ServiceAccount", default_accounts) >= namespaces + 4,
        "the default ServiceAccounts",
        60,
        lambda: str(api.count("ServiceAccount", default_accounts)),
    )
    create_all(api, objects.deployments, workers)
    create_all(api, objects.others, workers)
    created = time.perf_counter()
    print(f"created {len(objects.all_objects()):,} objects in {created - started:.1f} s")

    pods = objects.expected_pods

    def counts() -> tuple[int, int]:
        return api.count("ReplicaSet"), api.count("Pod")

    def progress() -> str:
        sets, have = counts()
        return f"{sets:,}/{deployments:,} ReplicaSets, {have:,}/{pods:,} Pods"

    def done() -> bool:
        sets, have = counts()
        return sets >= deployments and have >= pods

    try:
        wait_until(done, "the controllers", settle_s, progress)
    except BenchError as error:
        raise BenchError(f"{error}\n{controller_errors(log)}") from None
    settled = time.perf_counter()
    print(f"controllers created the ReplicaSets and Pods in {settled - created:.1f} s more")
    directory = log.parent
    wait_for_quiet(
        [
            directory / f"{name}.pid"
            for name in ("kube-controller-manager", "kube-apiserver", "etcd")
        ]
    )
    print(f"control plane idle {time.perf_counter() - settled:.1f} s later")
    return settled - started


def controller_errors(log: Path, lines: int = 10) -> str:
    """The last distinct errors kube-controller-manager logged: why pods are missing."""
    errors: dict[str, None] = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("E"):
            errors[line.split("]", 1)[-1].strip()] = None
    tail = list(errors)[-lines:]
    return f"last errors in {log}:\n" + "\n".join(tail)


def wait_for_quiet(pid_files: list[Path], timeout_s: float = 300.0) -> None:
    """Until the control plane idles (status updates and events trail the creates), so
    that its processes do not compete with the scans for the CPU: at most 10 % of one core
    over 5 s. The resourceVersion never settles (leases are renewed every 10 s)."""
    ticks = os.sysconf("SC_CLK_TCK")

    def cpu_seconds() -> float:
        total = 0.0
        for pid_file in pid_files:
            fields = Path(f"/proc/{pid_file.read_text().strip()}/stat").read_text()
            utime, stime = fields.rsplit(")", 1)[1].split()[11:13]
            total += (int(utime) + int(stime)) / ticks
        return total

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        before = cpu_seconds()
        time.sleep(5.0)
        if cpu_seconds() - before < 0.5:
            return
    print(f"  note: the control plane was still busy after {timeout_s:.0f} s")


# --- export ---------------------------------------------------------------------------------


def export(kubeconfig: Path, directory: Path) -> Counter[str]:
    """What kubeproof lists, as read back from the API, as YAML files; counts by kind."""
    client = ApiClient(load_connection(str(kubeconfig), None), max_requests_per_second=1000)
    discovery = discover(client, SCANNED_KINDS)
    counts: Counter[str] = Counter()
    for spec in SCANNED_KINDS:
        resource = discovery.resources.get(spec.kind)
        if resource is None:
            continue
        by_namespace: dict[str, list[Obj]] = {}
        for item in list_all(client, resource.path).items:
            obj = exported(item, spec.kind, resource.api_version)
            by_namespace.setdefault(obj["metadata"].get("namespace", "_cluster"), []).append(obj)
            counts[spec.kind] += 1
        for namespace, objects in by_namespace.items():
            target = directory / namespace / f"{spec.kind.lower()}.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("w", encoding="utf-8") as stream:
                yaml.dump_all(objects, stream, Dumper=yaml.CSafeDumper, sort_keys=False)
    return counts


def exported(item: Obj, kind: str, api_version: str) -> Obj:
    metadata = {k: v for k, v in item.get("metadata", {}).items() if k != "managedFields"}
    obj: Obj = {"apiVersion": api_version, "kind": kind, "metadata": metadata}
    obj.update((k, v) for k, v in item.items() if k not in ("apiVersion", "kind", "metadata"))
    if kind == "Secret":  # kubeproof never reads Secret data from a cluster
        obj.pop("data", None)
        obj.pop("stringData", None)
    return obj


# --- timing ---------------------------------------------------------------------------------


def kubeproof_command(inputs: list[str], report: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kubeproof",
        "scan",
        *inputs,
        "--format",
        "json",
        "--output",
        str(report),
        "--fail-on",
        "none",
    ]


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float  # user + system of the scan process: less sensitive to a busy machine
    peak_mb: float


def timed(command: list[str]) -> Run:
    """Wall clock, CPU time and peak RSS of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchError(f"{shlex.join(command)} failed: {stderr[-2000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


Verdicts = dict[tuple[str, str], str]  # (check, subject) -> status


def verdicts(report: Path) -> Verdicts:
    results = json.loads(report.read_text())["results"]
    return {
        (result["check"], json.dumps(result["subject"], sort_keys=True)): result["status"]
        for result in results
    }


def compare(cluster: Verdicts, files: Verdicts) -> str:
    """How the two reports differ: results only one has (by check), and changed statuses."""
    differing = sum(1 for key, status in cluster.items() if files.get(key, status) != status)

    def by_check(keys: set[tuple[str, str]]) -> str:
        checks = Counter(check for check, _ in keys)
        return ", ".join(f"{check} {count}" for check, count in checks.most_common()) or "none"

    return (
        f"reports: cluster {len(cluster):,} results, files {len(files):,}; "
        f"{differing} shared results differ in status\n"
        f"  only from the cluster: {by_check(set(cluster) - set(files))}\n"
        f"  only from the files:   {by_check(set(files) - set(cluster))}"
    )


def profile(command: list[str], directory: Path, top: int) -> None:
    """One cProfile'd run of `command` (a `python -m kubeproof ...` command): top costs.
    cProfile sees the main thread only: the LISTs run in worker threads and show up as
    lock waits in load_cluster, so time_listing() times them separately."""
    output = directory / "scan.prof"
    profiled = [sys.executable, "-m", "cProfile", "-o", str(output), *command[1:]]
    subprocess.run(profiled, check=True, stdout=subprocess.DEVNULL)
    for order in ("cumulative", "tottime"):
        print(f"\n### cProfile of `{shlex.join(command[1:])}`, by {order}\n")
        stats = pstats.Stats(str(output))
        stats.strip_dirs().sort_stats(order).print_stats(top)


def time_listing(kubeconfig: Path) -> None:
    """Each kind's LIST on its own, one after the other, as kubeproof pages it: wall
    (mostly the API server) against this process's CPU (TLS, JSON parsing)."""
    client = ApiClient(load_connection(str(kubeconfig), None), max_requests_per_second=1000)
    discovery = discover(client, SCANNED_KINDS)
    print("\n### LIST per kind, sequential\n")
    print("| kind | objects | wall | client CPU |\n|---|---:|---:|---:|")
    total_wall = total_cpu = 0.0
    for spec in SCANNED_KINDS:
        resource = discovery.resources.get(spec.kind)
        if resource is None:
            continue
        wall, cpu = time.perf_counter(), time.process_time()
        items = list_all(client, resource.path).items
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        if wall >= 0.1:
            print(f"| {spec.kind} | {len(items):,} | {wall:.2f} s | {cpu:.2f} s |")
        del items
    print(f"| all {len(discovery.resources)} kinds | | {total_wall:.2f} s | {total_cpu:.2f} s |")


# --- output ---------------------------------------------------------------------------------


def row(name: str, objects: int, runs: list[Run]) -> tuple[float, float, str]:
    walls = [run.wall_s for run in runs]
    median, peak = statistics.median(walls), max(run.peak_mb for run in runs)
    cpu = statistics.median(run.cpu_s for run in runs)
    text = (
        f"| {name} | {objects:,} | {median:.2f} s | {min(walls):.2f} s | {cpu:.2f} s "
        f"| {objects / median:,.0f} | {peak:.0f} MB |"
    )
    return median, peak, text


def verdict(median: float, peak: float) -> str:
    wall = "met" if median <= TARGET_WALL_S else "MISSED"
    memory = "met" if peak <= TARGET_RSS_MB else "MISSED"
    return (
        f"wall ≤ {TARGET_WALL_S:.0f} s: {wall} ({median:.2f} s median); "
        f"peak RSS ≤ {TARGET_RSS_MB:.0f} MB: {memory} ({peak:.0f} MB)"
    )


def print_kinds(counts: Counter[str]) -> None:
    print("\n| kind | objects |\n|---|---:|")
    for kind, number in counts.most_common():
        print(f"| {kind} | {number:,} |")
    print(f"| **total** | **{sum(counts.values()):,}** |")


def scan_both(
    kubeconfig: Path, files: Path, workdir: Path, runs: int
) -> tuple[list[Run], list[Run], list[str], list[str]]:
    """Alternating runs, so that noise on the shared machine hits both."""
    cluster = kubeproof_command(["--cluster", "--kubeconfig", str(kubeconfig)], workdir / "c.json")
    from_files = kubeproof_command([str(files)], workdir / "f.json")
    cluster_runs, file_runs = [], []
    for number in range(1, runs + 1):
        cluster_runs.append(timed(cluster))
        file_runs.append(timed(from_files))
        print(
            f"  run {number}: cluster {describe(cluster_runs[-1])}; "
            f"files {describe(file_runs[-1])}; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    return cluster_runs, file_runs, cluster, from_files


def describe(run: Run) -> str:
    return f"{run.wall_s:.2f} s ({run.cpu_s:.2f} s CPU), {run.peak_mb:.0f} MB"


def tree_size(directory: Path) -> tuple[int, int]:
    files = [path for path in directory.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def benchmark(arguments: argparse.Namespace, workdir: Path, cluster_dir: Path) -> None:
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    run_script("build.sh", timeout_s=45 * 60)
    started = time.perf_counter()
    print(run_script("up.sh", str(cluster_dir), timeout_s=120).splitlines()[0])
    env = read_env(cluster_dir)
    print(f"(up.sh took {time.perf_counter() - started:.1f} s)")
    api = Api(env)
    load_s = load(
        api,
        arguments.namespaces,
        arguments.deployments,
        arguments.workers,
        arguments.settle_timeout,
        cluster_dir / "kube-controller-manager.log",
    )
    kubeconfig = Path(env["ADMIN_KUBECONFIG"])
    files = workdir / "exported"
    shutil.rmtree(files, ignore_errors=True)  # a kept --workdir: no stale files
    started = time.perf_counter()
    counts = export(kubeconfig, files)
    file_count, size = tree_size(files)
    print(
        f"exported {sum(counts.values()):,} objects to {file_count} YAML files "
        f"({size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s"
    )
    print_kinds(counts)
    print(f"\nloading (creates + controllers) took {load_s:.1f} s; scanning {arguments.runs}x")
    cluster_runs, file_runs, cluster_cmd, files_cmd = scan_both(
        kubeconfig, files, workdir, arguments.runs
    )
    total = sum(counts.values())
    print("\n| input | objects | median | min | CPU (median) | objects/s (median) | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    cluster_median, cluster_peak, text = row("cluster (`--cluster`)", total, cluster_runs)
    print(text)
    file_median, file_peak, text = row(f"files ({file_count} YAML files)", total, file_runs)
    print(text)
    print(
        f"\nratio cluster/files: {cluster_median / file_median:.2f}x wall (median), "
        f"{cluster_peak / file_peak:.2f}x peak RSS"
    )
    print(f"cluster scan: {verdict(cluster_median, cluster_peak)}")
    print(compare(verdicts(workdir / "c.json"), verdicts(workdir / "f.json")))
    print("\ncommand:  " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print("timed:    " + shlex.join(cluster_cmd[1:]))
    print("          " + shlex.join(files_cmd[1:]))
    if arguments.profile:
        profile(cluster_cmd, workdir, arguments.profile)
        time_listing(kubeconfig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each scan")
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--deployments", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8, help="concurrent creates")
    parser.add_argument(
        "--settle-timeout", type=float, default=1800, help="seconds to wait for the pods"
    )
    parser.add_argument("--keep", action="store_true", help="leave the control plane up")
    parser.add_argument(
        "--profile", type=int, metavar="N", help="then profile one cluster scan: top N costs"
    )
    parser.add_argument("--workdir", type=Path, help="where the exported files go (kept)")
    arguments = parser.parse_args()
    if arguments.namespaces < 1 or arguments.deployments < 0 or arguments.runs < 1:
        parser.error("--namespaces and --runs must be positive, --deployments not negative")

    # SIGTERM as an exception too, so that the control plane is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="kubeproof-bench-cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    cluster_dir = Path(tempfile.mkdtemp(prefix="kubeproof-bench-cp-")) / "controlplane"
    try:
        benchmark(arguments, workdir, cluster_dir)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        if arguments.keep and (cluster_dir / "cluster.env").exists():
            print(f"\ncontrol plane left up: export KUBECONFIG={cluster_dir}/admin.kubeconfig")
            print(f"stop it with: {SCRIPTS / 'down.sh'} {cluster_dir}")
        else:
            run_script("down.sh", str(cluster_dir), timeout_s=60)
            cluster_dir.parent.rmdir()
        if arguments.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
