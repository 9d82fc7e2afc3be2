"""A scan: a source's inventory through the engine, under one framework."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from kubeproof import __version__
from kubeproof.engine import Context, evaluate
from kubeproof.frameworks import Framework
from kubeproof.inventory import Coverage, Inventory
from kubeproof.inventory.security_spec import ApprovedBaselines
from kubeproof.model import Result, Status, Subject
from kubeproof.sources.documents import InputError


@dataclass(frozen=True)
class GroupSummary:
    id: str
    title: str
    counts: dict[Status, int]
    checks: int

    @property
    def verdict(self) -> str:
        """`failing` beats `incomplete` beats `compliant`; no evidence is not compliance."""
        if not self.checks:
            return "not_covered"
        if self.counts.get(Status.FAIL):
            return "failing"
        if self.counts.get(Status.NOT_EVALUATED) or not sum(self.counts.values()):
            return "incomplete"
        return "compliant"


@dataclass
class ScanReport:
    framework: Framework
    results: list[Result]
    errors: list[InputError] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    cluster: str = "manifests"  # the name results and the evidence store file them under
    objects: int = 0
    files: int = 0
    coverage: Coverage = field(default_factory=Coverage)
    pss_version: tuple[int, int] | None = None
    # Workloads with the pods they own, when the source shows pods (a cluster).
    workloads: list[tuple[Subject, int]] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    tool_version: str = __version__
    # Optional `scan.*` report fields that options add (--images: images, vulnerabilityDatabase).
    scan_facts: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> list[GroupSummary]:
        by_check: dict[str, Counter[Status]] = {}
        # Counted as pairs first: a Counter per result would cost a second on a large scan.
        for (check_id, status), count in Counter(
            map(attrgetter("check.id", "status"), self.results)
        ).items():
            by_check.setdefault(check_id, Counter())[status] = count
        summaries = []
        for group in self.framework.groups:
            counts: Counter[Status] = Counter()
            for check in group.checks:
                counts.update(by_check.get(check.id, Counter()))
            summaries.append(GroupSummary(group.id, group.title, dict(counts), len(group.checks)))
        return summaries

    def totals(self) -> dict[Status, int]:
        return dict(Counter(map(attrgetter("status"), self.results)))


def scan_inventory(
    inventory: Inventory,
    framework: Framework,
    *,
    pss_version: tuple[int, int] | None = None,
    cluster_name: str = "manifests",
    errors: Sequence[InputError] = (),
    sources: Sequence[str] = (),
    files: int = 0,
    baselines: ApprovedBaselines | None = None,
) -> ScanReport:
    report = ScanReport(
        framework=framework,
        results=[],
        errors=list(errors),
        sources=list(sources),
        cluster=cluster_name,
        objects=len(inventory),
        files=files,
        coverage=inventory.coverage,
        pss_version=pss_version,
    )
    context = Context(
        inventory,
        pss_level=framework.pss_level,
        cluster_name=cluster_name,
        baselines=baselines,
    )
    if pss_version is not None:
        context.pss_version = pss_version
    report.workloads = [
        (w.subject, w.pod_count) for w in inventory.workloads if w.pod_count is not None
    ]
    report.results = evaluate(inventory, framework.checks, context)
    report.finished_at = datetime.now(UTC)
    return report
