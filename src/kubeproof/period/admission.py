"""Admission control over a period: what the webhook decided (revision 0006 of the store),
counted by answer, and the requests it denied, warned about or audited by rule and
namespace. This is the operating-effectiveness evidence for SOC 2 CC6.8: the preventive
control was running, and here is what it stopped.

Counts by answer are one GROUP BY; only decisions that broke a rule or were saved by an
exception are read row by row (their rules are JSON), so a year of allowed requests costs
one aggregate, not millions of rows in Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session

from kubeproof.period.model import Period, time_text
from kubeproof.store.ledger import utc
from kubeproof.store.schema import AdmissionBatchRow, AdmissionDecisionRow

CRITERION = "CC6.8"
# Answers that come from a broken rule, in the order reports list them.
RULE_ANSWERS = ("denied", "warned", "audited")
ANSWERS = ("allowed", *RULE_ANSWERS, "exempt", "skipped", "unjudgeable")
# The columns of the CSV population, in order.
DECISION_COLUMNS = (
    "decided_at",
    "cluster",
    "uid",
    "username",
    "groups",
    "operation",
    "kind",
    "namespace",
    "name",
    "top_owner",
    "image_digests",
    "decision",
    "allowed",
    "mode",
    "rules_broken",
    "exceptions",
    "dry_run",
    "policy_digest",
    "batch_id",
    "ledger_seq",
)


@dataclass(frozen=True)
class RuleTally:
    """Requests one rule caused to be denied, warned about or audited in one namespace."""

    check_id: str
    answer: str  # denied | warned | audited
    namespace: str
    requests: int


@dataclass(frozen=True)
class ExceptionUse:
    """Requests in which an exception from the store kept a rule from counting."""

    exception_id: str
    check_id: str
    requests: int


@dataclass
class AdmissionEvidence:
    decisions: int = 0
    by_answer: dict[str, int] = field(default_factory=dict)
    dry_runs: int = 0
    tallies: list[RuleTally] = field(default_factory=list)
    exceptions: list[ExceptionUse] = field(default_factory=list)
    batches: int = 0
    days: int = 0  # days of the period with at least one decision
    first: datetime | None = None
    last: datetime | None = None

    @property
    def empty(self) -> bool:
        return self.decisions == 0

    def rule_totals(self, answer: str) -> list[tuple[str, int]]:
        """Requests per rule for one answer, most first."""
        totals: Counter[str] = Counter()
        for tally in self.tallies:
            if tally.answer == answer:
                totals[tally.check_id] += tally.requests
        return sorted(totals.items(), key=lambda item: (-item[1], item[0]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "criterion": CRITERION,
            "decisions": self.decisions,
            "byAnswer": self.by_answer,
            "dryRuns": self.dry_runs,
            "batches": self.batches,
            "daysWithDecisions": self.days,
            "first": time_text(self.first),
            "last": time_text(self.last),
            "byRule": [
                {
                    "rule": t.check_id,
                    "answer": t.answer,
                    "namespace": t.namespace,
                    "requests": t.requests,
                }
                for t in self.tallies
            ],
            "exceptions": [
                {"exception": e.exception_id, "rule": e.check_id, "requests": e.requests}
                for e in self.exceptions
            ],
        }


def _in_period(statement: Any, period: Period, cluster: str | None) -> Any:
    """`statement` (a select over admission_decisions) narrowed to the period and cluster."""
    statement = statement.where(
        AdmissionDecisionRow.decided_at >= period.start,
        AdmissionDecisionRow.decided_at < period.end,
    )
    if cluster is not None:
        statement = statement.join(
            AdmissionBatchRow, AdmissionBatchRow.id == AdmissionDecisionRow.batch_id
        ).where(AdmissionBatchRow.cluster == cluster)
    return statement


def load_admission(session: Session, period: Period, cluster: str | None) -> AdmissionEvidence:
    decision = AdmissionDecisionRow
    evidence = AdmissionEvidence(by_answer=dict.fromkeys(ANSWERS, 0))
    counted = _in_period(
        select(decision.decision, decision.dry_run, func.count()).group_by(
            decision.decision, decision.dry_run
        ),
        period,
        cluster,
    )
    for answer, dry_run, count in session.execute(counted):
        evidence.by_answer[answer] = evidence.by_answer.get(answer, 0) + count
        evidence.decisions += count
        evidence.dry_runs += count if dry_run else 0
    if evidence.empty:
        return evidence
    spans = _in_period(
        select(
            func.min(decision.decided_at),
            func.max(decision.decided_at),
            func.count(func.distinct(decision.batch_id)),
        ),
        period,
        cluster,
    )
    first, last, evidence.batches = session.execute(spans).one()
    evidence.first, evidence.last = utc(first), utc(last)
    # Days in Python, not SQL: a database's date() follows its session time zone, not UTC.
    days = _in_period(select(decision.decided_at), period, cluster)
    streamed = session.execute(days.execution_options(yield_per=20_000))
    evidence.days = len({utc(at).date() for (at,) in streamed})
    _tally_rules(session, period, cluster, evidence)
    return evidence


def _tally_rules(
    session: Session, period: Period, cluster: str | None, evidence: AdmissionEvidence
) -> None:
    decision = AdmissionDecisionRow
    judged = _in_period(
        select(decision.decision, decision.namespace, decision.rules).where(
            or_(
                decision.decision.in_(RULE_ANSWERS),
                cast(decision.rules, Text).like('%"excepted"%'),
            )
        ),
        period,
        cluster,
    )
    tallies: Counter[tuple[str, str, str]] = Counter()
    uses: Counter[tuple[str, str]] = Counter()
    for answer, namespace, rules in session.execute(judged.execution_options(yield_per=5000)):
        for rule in rules if isinstance(rules, list) else ():
            if not isinstance(rule, dict):
                continue
            check_id, outcome = str(rule.get("check")), rule.get("outcome")
            if outcome == "fail" and answer in RULE_ANSWERS:
                tallies[(check_id, answer, namespace)] += 1
            elif outcome == "excepted" and rule.get("exception"):
                uses[(str(rule["exception"]), check_id)] += 1
    evidence.tallies = [
        RuleTally(check_id, answer, namespace, count)
        for (check_id, answer, namespace), count in sorted(
            tallies.items(), key=lambda item: (RULE_ANSWERS.index(item[0][1]), -item[1], item[0])
        )
    ]
    evidence.exceptions = [
        ExceptionUse(exception_id, check_id, count)
        for (exception_id, check_id), count in sorted(uses.items())
    ]


def iter_decisions(
    session: Session, period: Period, cluster: str | None, batch: int = 5000
) -> Iterator[Sequence[Any]]:
    """Every decision of the period as a CSV row (DECISION_COLUMNS), oldest first."""
    decision, batch_row = AdmissionDecisionRow, AdmissionBatchRow
    statement = (
        select(decision, batch_row.cluster, batch_row.ledger_seq)
        .join(batch_row, batch_row.id == decision.batch_id)
        .where(decision.decided_at >= period.start, decision.decided_at < period.end)
        .order_by(decision.decided_at, decision.id)
        .execution_options(yield_per=batch)
    )
    if cluster is not None:
        statement = statement.where(batch_row.cluster == cluster)
    for row, row_cluster, ledger_seq in session.execute(statement):
        rules = row.rules if isinstance(row.rules, list) else []
        yield (
            time_text(utc(row.decided_at)),
            row_cluster,
            row.uid,
            row.username,
            "; ".join(row.groups) if isinstance(row.groups, list) else "",
            row.operation,
            row.kind,
            row.namespace,
            row.name,
            f"{row.owner_kind}/{row.owner_name}" if row.owner_kind else "",
            "; ".join(
                str(image.get("digest"))
                for image in (row.images if isinstance(row.images, list) else [])
                if isinstance(image, dict) and image.get("digest")
            ),
            row.decision,
            row.allowed,
            row.mode,
            "; ".join(_rules_with(rules, "fail")),
            "; ".join(
                f"{r.get('exception')} ({r.get('check')})"
                for r in rules
                if isinstance(r, dict) and r.get("outcome") == "excepted"
            ),
            row.dry_run,
            row.policy_digest,
            row.batch_id,
            ledger_seq,
        )


def _rules_with(rules: list[Any], outcome: str) -> list[str]:
    return [
        str(r.get("check")) for r in rules if isinstance(r, dict) and r.get("outcome") == outcome
    ]
