"""A store with several days of real scans of the example application, some of them with
manifests changed to fail and then fixed."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from databases import Database
from kubeproof import frameworks
from kubeproof.cli.main import main
from kubeproof.inventory import Inventory
from kubeproof.scan import scan_inventory
from kubeproof.sources.files import load_paths
from kubeproof.store.db import Store
from kubeproof.store.record import Recorded, present_subjects, record_scan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "shop"
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday
PERIOD = ("2026-01-05", "2026-01-18")  # two whole weeks
PRIVILEGED = "pss.privileged"

# Day -> what the manifests look like that day. Days 3, 5, 6, 10, 12 and 13 have no scan.
# web runs privileged on days 1-2 (fixed on day 4) and again from day 9; the worker is
# removed on day 8 (its findings close as deleted).
SCHEDULE: dict[int, tuple[bool, bool]] = {  # day -> (web privileged, worker present)
    0: (False, True),
    1: (True, True),
    2: (True, True),
    4: (False, True),
    7: (False, True),
    8: (False, False),
    9: (True, False),
    11: (True, False),
}
MISSING_DAYS = ["2026-01-08", "2026-01-10", "2026-01-11", "2026-01-15", "2026-01-17", "2026-01-18"]


def manifests(workdir: Path, *, web_privileged: bool, worker: bool) -> Path:
    """A copy of the example application, changed as asked."""
    target = workdir / "shop"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(EXAMPLES, target)
    if web_privileged:
        web = target / "web.yaml"
        text = web.read_text()
        changed = _privileged(text)
        assert changed != text, "web.yaml no longer has the securityContext this test edits"
        web.write_text(changed)
    if not worker:
        (target / "worker.yaml").unlink()
    return target


def _privileged(text: str) -> str:
    return text.replace(
        "securityContext:\n            allowPrivilegeEscalation",
        "securityContext:\n            privileged: true\n            allowPrivilegeEscalation",
        1,
    )


def record_day(
    store: Store, workdir: Path, day: int, *, web_privileged: bool, worker: bool
) -> Recorded:
    directory = manifests(workdir, web_privileged=web_privileged, worker=worker)
    loaded = load_paths([str(directory)])
    assert not loaded.errors, loaded.errors
    inventory = Inventory(loaded.objects)
    report = scan_inventory(
        inventory,
        frameworks.load("soc2"),
        cluster_name="prod",
        sources=["shop/"],
        files=loaded.files,
    )
    report.started_at = T0 + timedelta(days=day)
    report.finished_at = report.started_at + timedelta(seconds=2)
    return record_scan(
        store,
        report,
        cluster="prod",
        present=present_subjects(inventory),
        recorded_at=report.finished_at,
    )


def build_history(store: Store, workdir: Path) -> list[Recorded]:
    return [
        record_day(store, workdir, day, web_privileged=privileged, worker=worker)
        for day, (privileged, worker) in SCHEDULE.items()
    ]


def report(
    database: Database, output: Path, format_: str, *extra: str, period: tuple[str, str] = PERIOD
) -> int:
    """`kubeproof report` of the period into `output`; its exit code."""
    first, last = period
    arguments = ["report", "--from", first, "--to", last, "--format", format_]
    return main([*arguments, "--output", str(output), "--db", database.url, *extra])
