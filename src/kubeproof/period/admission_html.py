"""The period report's admission-control section (CC6.8): the webhook's decisions in the
period, and what it denied, warned about or audited by rule and namespace."""

from __future__ import annotations

from html import escape

from kubeproof.period.admission import ANSWERS, CRITERION, RULE_ANSWERS, AdmissionEvidence
from kubeproof.period.model import time_text
from kubeproof.period.tables import Column, number, table

# Rows of the rule-by-namespace table before pointing at the CSV export.
TALLIES_SHOWN = 50


def section(admission: AdmissionEvidence) -> str:
    head = (
        '<section class="major" id="admission"><h2>Admission control '
        f"({CRITERION}: unauthorised software prevented)</h2>"
    )
    if admission.empty:
        return (
            head + '<p class="notice">No admission decision was recorded in this period: '
            "either no workload was created or changed, or the webhook did not record its "
            "decisions (<code>kubeproof webhook serve --db</code>). This report cannot show "
            "the preventive control operating.</p></section>"
        )
    cards = "".join(
        f'<div class="card"><b>{admission.by_answer.get(answer, 0):,}</b>{escape(answer)}</div>'
        for answer in ANSWERS
        if admission.by_answer.get(answer, 0) or answer in ("allowed", "denied")
    )
    summary = (
        f"<p>{admission.decisions:,} admission requests were decided on {admission.days} "
        f"days, from {escape(time_text(admission.first) or '')} to "
        f"{escape(time_text(admission.last) or '')}, recorded in {admission.batches:,} "
        f"ledger entries ({admission.dry_runs:,} of them dry runs).</p>"
        f'<div class="cards">{cards}</div>'
    )
    return (
        head
        + summary
        + "".join(_by_rule(admission, answer) for answer in RULE_ANSWERS)
        + _by_namespace(admission)
        + _exceptions(admission)
        + "</section>"
    )


def _by_rule(admission: AdmissionEvidence, answer: str) -> str:
    totals = admission.rule_totals(answer)
    if not totals:
        return ""
    rows = "".join(
        f"<tr><td class='mono'>{escape(rule)}</td><td class='num'>{count:,}</td></tr>"
        for rule, count in totals
    )
    return (
        f"<h3>Requests {escape(answer)}, by rule</h3>"
        "<p>A request that broke several rules counts once under each.</p>"
        + table(rows, Column("Rule", 80), number("Requests", 20))
    )


def _by_namespace(admission: AdmissionEvidence) -> str:
    if not admission.tallies:
        return "<p>No request broke a rule in this period.</p>"
    shown = admission.tallies[:TALLIES_SHOWN]
    rows = "".join(
        f"<tr><td>{escape(t.answer)}</td><td class='mono'>{escape(t.check_id)}</td>"
        f"<td>{escape(t.namespace or '(cluster)')}</td><td class='num'>{t.requests:,}</td></tr>"
        for t in shown
    )
    more = (
        f"<p class='muted'>{len(admission.tallies) - len(shown)} more rows in the CSV export "
        "(admission_decisions.csv).</p>"
        if len(admission.tallies) > len(shown)
        else ""
    )
    return (
        "<h3>By rule and namespace</h3>"
        + table(
            rows,
            Column("Answer", 14),
            Column("Rule", 44),
            Column("Namespace", 28),
            number("Requests", 14),
        )
        + more
    )


def _exceptions(admission: AdmissionEvidence) -> str:
    if not admission.exceptions:
        return ""
    rows = "".join(
        f"<tr><td class='mono'>{escape(e.exception_id)}</td>"
        f"<td class='mono'>{escape(e.check_id)}</td><td class='num'>{e.requests:,}</td></tr>"
        for e in admission.exceptions
    )
    return (
        "<h3>Exceptions applied at admission</h3><p>Requests admitted although they broke a "
        "rule, because an exception from the store covered it.</p>"
        + table(rows, Column("Exception", 25), Column("Rule", 55), number("Requests", 20))
    )
