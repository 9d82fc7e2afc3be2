"""Benchmark: a one-year period report over a year of daily scans.

Builds (once, then cached) an evidence store holding 365 days of daily scans of 10,000
results each (3.65 M results) with realistic churn: failures that appear and get fixed,
workloads that are replaced, a check that could not be judged for a stretch, and a few
days without a scan. Rows go through the store's own recording path (record_scan: bulk
inserts, the findings lifecycle, the ledger), fed with generated results instead of 365
real scans. Then it times:

- `kubeproof report` for the whole year (HTML; target <= 15 s), with the ledger's
  verification timed separately (it rehashes every result of every scan),
- the JSON and OSCAL renderings of the same report,
- `kubeproof history` for one workload (target <= 200 ms),

and prints the database size per million results.

    python bench/period_report.py                      # SQLite, cached database file
    python bench/period_report.py --postgres URL       # an empty PostgreSQL database
    python bench/period_report.py --days 30            # a quicker, smaller run
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from kubeproof import frameworks
from kubeproof.cli.main import main as kubeproof
from kubeproof.inventory import Coverage
from kubeproof.model import Result, Status, Subject
from kubeproof.period.html import render as render_html
from kubeproof.period.model import Period, as_dict
from kubeproof.period.oscal import render as render_oscal
from kubeproof.period.query import Options, load_report
from kubeproof.scan import ScanReport
from kubeproof.store.db import Store, open_store
from kubeproof.store.head import ExportedHead
from kubeproof.store.ledger import verify
from kubeproof.store.record import record_scan
from kubeproof.store.schema import LedgerEntryRow, ResultRow, ScanRow

FIRST_DAY = date(2025, 1, 1)
NAMESPACES = 25
CHECKS_PER_WORKLOAD = 20
MISSING_DAYS = (40, 41, 200)  # days without a scan, as a real year has
UNJUDGED_DAYS = range(120, 130)  # one check could not be judged (RBAC forbade a read)
CACHE_VERSION = 1


def cache_path(days: int, results: int) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubeproof" / "bench" / f"period-v{CACHE_VERSION}-{days}d-{results}r.db"


class Churn:
    """A cluster's workloads and which of their checks fail, moving day by day."""

    def __init__(self, results: int, seed: int = 7) -> None:
        self.random = random.Random(seed)
        framework = frameworks.load("soc2")
        self.checks = [c.spec for c in framework.checks if c.spec.scope == "container"][
            :CHECKS_PER_WORKLOAD
        ]
        self.workloads = [self._workload(n) for n in range(results // len(self.checks))]
        self.failing: set[tuple[str, str]] = {
            (str(w), c.id)
            for w in self.workloads
            for c in self.checks
            if self.random.random() < 0.08
        }
        self.generation = len(self.workloads)

    def _workload(self, number: int) -> Subject:
        namespace = f"team-{number % NAMESPACES:02d}"
        return Subject("apps/v1", "Deployment", namespace, f"service-{number:05d}", "app")

    def advance(self) -> None:
        """One day: some failures fixed, some new ones, a workload or two replaced."""
        rng = self.random
        self.failing = {pair for pair in self.failing if rng.random() >= 0.05}
        for workload in self.workloads:
            for check in self.checks:
                if rng.random() < 0.002:
                    self.failing.add((str(workload), check.id))
        for _ in range(rng.choice((0, 1, 1, 2))):
            index = rng.randrange(len(self.workloads))
            self.workloads[index] = self._workload(self.generation)
            self.generation += 1
            for check in self.checks:
                if rng.random() < 0.08:
                    self.failing.add((str(self.workloads[index]), check.id))

    def results(self, day: int) -> list[Result]:
        rng = self.random
        out: list[Result] = []
        for workload in self.workloads:
            key = str(workload)
            for index, check in enumerate(self.checks):
                if index == 0 and day in UNJUDGED_DAYS:
                    status, reason = Status.NOT_EVALUATED, "Pod list forbidden by RBAC"
                elif (key, check.id) in self.failing:
                    status, reason = Status.FAIL, None
                elif rng.random() < 0.001:
                    status, reason = Status.NOT_EVALUATED, "image digest unknown"
                else:
                    status, reason = Status.PASS, None
                message = (
                    f"container app: {check.title.lower()} is not met"
                    if status is Status.FAIL
                    else check.title
                )
                out.append(Result(check, status, workload, message, path=None, reason=reason))
        return out


def build(store: Store, days: int, results: int) -> None:
    framework = frameworks.load("soc2")
    churn = Churn(results)
    started = time.perf_counter()
    for day in range(days):
        if day:
            churn.advance()
        if day in MISSING_DAYS:
            continue
        at = datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time(), tzinfo=UTC)
        at += timedelta(hours=2)
        day_results = churn.results(day)
        report = ScanReport(
            framework=framework,
            results=day_results,
            sources=["cluster"],
            objects=len(churn.workloads),
            coverage=Coverage(),
            started_at=at,
            finished_at=at + timedelta(seconds=40),
        )
        present = [w.with_container(None) for w in churn.workloads]
        record_scan(store, report, cluster="prod", present=present, recorded_at=at)
        if day % 30 == 0:
            elapsed = time.perf_counter() - started
            print(f"  day {day + 1}/{days} recorded ({elapsed:.0f} s)", file=sys.stderr)


def stored_results(store: Store) -> tuple[int, int]:
    with store.reading() as session:
        scans = session.execute(select(func.count()).select_from(ScanRow)).scalar_one()
        rows = session.execute(select(func.count()).select_from(ResultRow)).scalar_one()
    return int(scans), int(rows)


def size_bytes(store: Store, url: str) -> int:
    if store.is_sqlite:
        path = Path(store.engine.url.database or "")
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    with store.engine.connect() as connection:
        return int(
            connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        )


@contextlib.contextmanager
def timed(label: str, figures: dict[str, float]) -> Iterator[None]:
    started = time.perf_counter()
    yield
    figures[label] = time.perf_counter() - started


def _head_at(session: Session, seq: int) -> ExportedHead:
    statement = select(LedgerEntryRow.seq, LedgerEntryRow.entry_hash).where(
        LedgerEntryRow.seq.in_({1, seq})
    )
    hashes = {row.seq: row.entry_hash for row in session.execute(statement)}
    return ExportedHead(seq, hashes[seq], hashes[1], "", seq)


def quiet_cli(*arguments: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code: int = kubeproof(list(arguments))
        return code


def run(url: str, days: int, results: int, workdir: Path) -> None:
    store = open_store(url)
    expected_scans = days - sum(1 for d in MISSING_DAYS if d < days)
    scans, rows = stored_results(store)
    if scans == 0:
        print(f"building {days} days x {results} results in {store.url} ...", file=sys.stderr)
        started = time.perf_counter()
        build(store, days, results)
        print(f"built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        scans, rows = stored_results(store)
    elif scans != expected_scans:
        sys.exit(
            f"{store.url} holds {scans} scans, not the {expected_scans} this benchmark "
            "builds: give an empty database (or delete the cached file)"
        )
    else:
        print(f"reusing {store.url}: {scans} scans, {rows} results", file=sys.stderr)
    size = size_bytes(store, url)

    last_day = FIRST_DAY + timedelta(days=days - 1)
    period = Period(FIRST_DAY, last_day)
    now = datetime.now(UTC)
    figures: dict[str, float] = {}
    framework = frameworks.load("soc2")
    with store.reading() as session:
        options = Options(period=period, framework=framework, verify=False, store=store.url)
        with timed("report data (read from per-scan summaries)", figures):
            report = load_report(session, options, now)
        with timed("HTML rendering", figures):
            page = render_html(report)
        with timed("JSON rendering", figures):
            as_dict(report)
        with timed("OSCAL rendering", figures):
            render_oscal(report)
        with timed("ledger verification (every result rehashed)", figures):
            check = verify(session)
        # What `evidence verify --since-head` does with a head exported a month earlier:
        # the entries up to it are trusted, the last 30 rehashed.
        month_ago = _head_at(session, max(check.entries - 30, 1))
        with timed("ledger verification since a head 30 entries back", figures):
            recent = verify(session, since=month_ago)
        assert recent.intact, recent.problem
    store.close()

    first, last = period.first_day.isoformat(), period.last_day.isoformat()
    output = workdir / "year.html"
    command = ["report", "--from", first, "--to", last, "--format", "html"]
    with timed("kubeproof report --format html --no-verify (whole command)", figures):
        assert quiet_cli(*command, "--output", str(output), "--db", url, "--no-verify") == 0
    subject = f"Deployment/{report.workloads[len(report.workloads) // 2].namespace}/" + (
        report.workloads[len(report.workloads) // 2].name
    )
    history_runs = []
    for _ in range(5):
        started = time.perf_counter()
        assert quiet_cli("history", subject, "--db", url, "-o", "json") == 0
        history_runs.append(time.perf_counter() - started)
    figures["kubeproof history (one workload, median of 5)"] = sorted(history_runs)[2]

    print()
    print(f"store: {store.url} ({'SQLite' if store.is_sqlite else 'PostgreSQL'})")
    print(
        f"{scans} scans, {rows:,} results, {len(report.findings):,} findings in the period, "
        f"{len(report.workloads):,} workloads, {len(report.missing_days)} days without a scan"
    )
    print(f"ledger: {'intact' if check.intact else 'ALTERED'}, {check.entries} entries")
    print(f"HTML page: {len(page) / 1e6:.1f} MB")
    for label, seconds in figures.items():
        print(f"  {label:<66} {seconds * 1000:>9.0f} ms")
    per_million = size / (rows / 1e6) if rows else 0
    print(
        f"database size: {size / 2**20:.0f} MiB, {per_million / 2**20:.0f} MiB per million results"
    )
    report_s = figures["kubeproof report --format html --no-verify (whole command)"]
    history_s = figures["kubeproof history (one workload, median of 5)"]
    print(f"year report: {'within' if report_s <= 15 else 'OVER'} the 15 s target")
    print(f"history: {'within' if history_s <= 0.2 else 'OVER'} the 200 ms target")
    print(f"command: python bench/period_report.py {' '.join(sys.argv[1:])}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database to use")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--results", type=int, default=10_000, help="results per daily scan")
    parser.add_argument("--rebuild", action="store_true", help="ignore the cached SQLite file")
    arguments = parser.parse_args()
    workdir = Path(tempfile.gettempdir()) / "kubeproof-bench-period"
    workdir.mkdir(parents=True, exist_ok=True)
    if arguments.postgres:
        url = arguments.postgres
    else:
        path = cache_path(arguments.days, arguments.results)
        path.parent.mkdir(parents=True, exist_ok=True)
        if arguments.rebuild and path.exists():
            path.unlink()
        partial = path.with_suffix(".partial")
        if not path.exists():
            # Built under another name and renamed when complete: an interrupted build is
            # never taken for a finished one.
            partial.unlink(missing_ok=True)
            store = open_store(f"sqlite:///{partial}")
            build(store, arguments.days, arguments.results)
            store.close()
            partial.rename(path)
        url = f"sqlite:///{path}"
    run(url, arguments.days, arguments.results, workdir)


if __name__ == "__main__":
    main()
