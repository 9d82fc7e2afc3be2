#!/usr/bin/env python3
"""End-to-end manifest scan throughput, and a side-by-side run against checkov.

    python bench/scan_throughput.py                      # 13,000 resources, kubeproof only
    python bench/scan_throughput.py --peer checkov       # + 2,700 resources, alternating runs

Each run is a fresh `kubeproof scan DIR --format json` process (parse, all checks, report;
`--format` picks another output), timed by wall clock and by its own CPU time (user +
system, from wait4, which other work on a shared machine does not inflate as much), with
its peak RSS. The peer is checkov from its own
virtual environment (`--checkov PATH`, default bench/.venv-checkov/bin/checkov, created on
first use), run alternately with kubeproof on the same files so that machine noise hits both.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHECKOV_VENV = HERE / ".venv-checkov"


def generate(resources: int, directory: Path) -> Path:
    target = directory / f"manifests-{resources}"
    if not target.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "generate_manifests.py"),
                "--resources",
                str(resources),
                "--out",
                str(target),
            ],
            check=True,
        )
    return target


class Run(NamedTuple):
    wall: float  # seconds
    cpu: float  # user + system seconds: what the process itself cost, whatever else ran
    peak: float  # peak RSS, MB


def timed(command: list[str]) -> Run:
    """Wall time, CPU time and peak RSS of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # 1: failures found, which is expected
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"{command[0]} exited {code}: {stderr[-2000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def compile_bytecode() -> None:
    """Compile kubeproof's modules once, as installing a package does. A source checkout
    run with PYTHONDONTWRITEBYTECODE set would otherwise recompile every module at each
    start, which no installed kubeproof (and no peer installed from PyPI) does."""
    spec = importlib.util.find_spec("kubeproof")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        subprocess.run([sys.executable, "-m", "compileall", "-q", folder], check=True)


def kubeproof_command(directory: Path, format_name: str = "json") -> list[str]:
    return [
        sys.executable,
        "-m",
        "kubeproof",
        "scan",
        str(directory),
        "--format",
        format_name,
        "--output",
        os.devnull,
        "--fail-on",
        "none",
    ]


def checkov_command(checkov: str, directory: Path) -> list[str]:
    return [
        checkov,
        "-d",
        str(directory),
        "--framework",
        "kubernetes",
        "--quiet",
        "--compact",
        "-o",
        "json",
        "--skip-download",
    ]


def ensure_checkov(path: str | None) -> str:
    if path:
        return path
    checkov = CHECKOV_VENV / "bin" / "checkov"
    if not checkov.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True)
        subprocess.run(
            [str(CHECKOV_VENV / "bin" / "pip"), "install", "--quiet", "checkov"], check=True
        )
    return str(checkov)


def summarise(name: str, runs: list[Run], resources: int) -> Run:
    """Prints and returns the medians."""
    median = Run(*(statistics.median(values) for values in zip(*runs, strict=True)))
    print(
        f"{name:10} {resources:>7,} resources  wall median {median.wall:6.2f} s "
        f"(min {min(r.wall for r in runs):6.2f})  {resources / median.wall:7,.0f} resources/s  "
        f"CPU median {median.cpu:6.2f} s ({resources / median.cpu:7,.0f} resources/CPU-s)  "
        f"peak RSS {max(r.peak for r in runs):4.0f} MB  ({len(runs)} runs)"
    )
    return median


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resources", type=int, default=13_000)
    parser.add_argument("--peer", choices=("checkov",), help="also run a peer, alternating")
    parser.add_argument("--peer-resources", type=int, default=2_700)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peer-runs", type=int, default=3, help="runs of each, alternating")
    parser.add_argument(
        "--format", default="json", help="kubeproof's output format (json: every result)"
    )
    parser.add_argument("--checkov", help="path to a checkov executable")
    parser.add_argument("--workdir", type=Path, help="where generated manifests are kept")
    arguments = parser.parse_args()

    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="kubeproof-bench-"))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load_average()}")
    corpus = generate(arguments.resources, workdir)
    compile_bytecode()
    command = kubeproof_command(corpus, arguments.format)
    runs = [timed(command) for _ in range(arguments.runs)]
    summarise("kubeproof", runs, arguments.resources)

    if arguments.peer == "checkov":
        checkov = ensure_checkov(arguments.checkov)
        corpus = generate(arguments.peer_resources, workdir)
        ours, theirs = [], []
        for _ in range(arguments.peer_runs):
            ours.append(timed(kubeproof_command(corpus, arguments.format)))
            theirs.append(timed(checkov_command(checkov, corpus)))
        mine = summarise("kubeproof", ours, arguments.peer_resources)
        peer = summarise("checkov", theirs, arguments.peer_resources)
        print(
            f"kubeproof is {peer.wall / mine.wall:.1f}x faster than checkov on the same files "
            f"by wall time, {peer.cpu / mine.cpu:.1f}x by CPU time"
        )
    print(f"load average at the end {load_average()}")
    if arguments.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
