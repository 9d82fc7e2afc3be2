"""The period report as an OSCAL 1.1 assessment-results document.

- one observation per check (its population over the period as props; as subjects the
  workloads it found failing),
- subjects as inventory items in the result's local definitions, identified by their
  workload identity (cluster, kind, namespace, name) and, where a scan saw them (a
  cluster always shows them), their Kubernetes UID (a prop, and the item's uuid when it
  is a valid, unique UUID) and labels (props),
- one risk per finding open at some time in the period, with its SLA due date as the
  deadline and, where an exception was in force, a risk-log entry for the acceptance,
- one finding per criterion, satisfied or not-satisfied, tied to its observations and
  risks.

UUIDs are derived (UUID v5) from what they stand for, so two renderings of the same
evidence agree."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Any

from kubeproof import __version__
from kubeproof.period import detections_oscal
from kubeproof.period.admission import CRITERION
from kubeproof.period.model import (
    CriterionReport,
    ExceptionInForce,
    PeriodReport,
    pass_rate,
    time_text,
)
from kubeproof.period.oscal_parts import observation, prop, uuid_of

OSCAL_VERSION = "1.1.2"
# OSCAL's UUID datatype (RFC 4122 version 4 or 5): Kubernetes UIDs are version 4 UUIDs.
_OSCAL_UUID = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[45][0-9A-Fa-f]{3}-[89ABab][0-9A-Fa-f]{3}-[0-9A-Fa-f]{12}"
)


def _is_uuid(text: str | None) -> bool:
    return text is not None and _OSCAL_UUID.fullmatch(text) is not None


def control_id(criterion: str) -> str:
    """OSCAL control ids are lower-case tokens: CC6.1 becomes cc6.1."""
    return criterion.lower()


def render(report: PeriodReport) -> dict[str, Any]:
    scope = report.cluster or "all"
    document_id = uuid_of(
        "assessment-results",
        report.framework_id,
        report.period.first_day,
        report.period.last_day,
        scope,
        report.ledger.head if report.ledger else "",
    )
    return {
        "assessment-results": {
            "uuid": document_id,
            "metadata": {
                "title": f"kubeproof {report.framework_id} assessment results, "
                f"{report.period.first_day.isoformat()} to {report.period.last_day.isoformat()}",
                "last-modified": time_text(report.generated_at),
                "version": __version__,
                "oscal-version": OSCAL_VERSION,
                "props": [prop("framework", report.framework_id), prop("scope", scope)],
            },
            "import-ap": {"href": f"#{uuid_of('assessment-plan', document_id)}"},
            "results": [_result(report, document_id)],
        }
    }


def _result(report: PeriodReport, document_id: str) -> dict[str, Any]:
    subjects = _subjects(report)
    observations = _observations(report, subjects)
    risks = _risks(report, subjects)
    result: dict[str, Any] = {
        "uuid": uuid_of("result", document_id),
        "title": f"{report.framework_title}: evidence over the period",
        "description": (
            f"{len(report.scans)} recorded scans with {report.result_count} results between "
            f"{report.period.first_day.isoformat()} and {report.period.last_day.isoformat()} "
            f"(UTC); {len(report.missing_days)} days without a scan."
            if not report.empty
            else "No scan was recorded in this period: there is no evidence to assess."
        ),
        "start": time_text(report.period.start),
        "end": time_text(report.period.end),
        "props": [
            prop("scans", len(report.scans)),
            prop("results", report.result_count),
            prop("days-without-scan", len(report.missing_days)),
            *_ledger_props(report),
        ],
        "reviewed-controls": {
            "control-selections": [
                {"include-controls": [{"control-id": control_id(c.id)} for c in report.criteria]}
            ]
        },
        "findings": [_finding(c, observations, risks) for c in report.criteria],
    }
    if subjects:
        result["local-definitions"] = {
            "inventory-items": [item for _, item in sorted(subjects.values())]
        }
    if observations:
        result["observations"] = [o for o, _ in observations.values()]
    if report.admission is not None and not report.admission.empty:
        _add_admission(result, report)
    if report.detections is not None:
        _relate(
            result,
            detections_oscal.CRITERION,
            detections_oscal.observations(
                report.detections, report.framework_id, report.generated_at
            ),
        )
    if risks:
        result["risks"] = [r for r, _ in risks.values()]
    return result


def _add_admission(result: dict[str, Any], report: PeriodReport) -> None:
    """One observation of the admission webhook's decisions (the preventive side of CC6.8),
    related to the CC6.8 finding when the framework has one. A period without decisions
    has none: the HTML and JSON say so."""
    admission = report.admission
    assert admission is not None
    observation_id = uuid_of("observation", report.framework_id, "admission-control")
    answers = ", ".join(f"{n} {a}" for a, n in admission.by_answer.items() if n)
    denied = "; ".join(f"{rule} {n}" for rule, n in admission.rule_totals("denied"))
    made = observation(
        observation_id,
        "admission-control",
        f"The kubeproof admission webhook decided {admission.decisions} requests on "
        f"{admission.days} days ({answers}). Denied by rule: {denied or 'none'}.",
        [
            prop("admission-decisions", admission.decisions),
            *(prop(f"admission-{a}", n) for a, n in admission.by_answer.items()),
            prop("admission-days", admission.days),
            prop("admission-ledger-entries", admission.batches),
            *(prop(f"denied-by-{rule}", n) for rule, n in admission.rule_totals("denied")),
        ],
        finding=False,
        collected=time_text(admission.last or report.generated_at),
        evidence="Admission decisions",
    )
    result.setdefault("observations", []).append(made)
    for finding in result["findings"]:
        if finding["target"]["target-id"] == control_id(CRITERION):
            related = finding.setdefault("related-observations", [])
            related.append({"observation-uuid": observation_id})


def _relate(result: dict[str, Any], criterion: str, found: list[dict[str, Any]]) -> None:
    """Add observations, related from the criterion's finding when the framework has one."""
    if not found:
        return
    result.setdefault("observations", []).extend(found)
    for finding in result["findings"]:
        if finding["target"]["target-id"] == control_id(criterion):
            related = finding.setdefault("related-observations", [])
            related.extend({"observation-uuid": o["uuid"]} for o in found)


def _ledger_props(report: PeriodReport) -> list[dict[str, str]]:
    if report.ledger is None:
        return [prop("ledger-verified", "false")]
    props = [
        prop("ledger-intact", str(report.ledger.intact).lower()),
        prop("ledger-entries", report.ledger.entries),
        prop("ledger-head", report.ledger.head),
    ]
    if report.ledger.problem:
        props.append(prop("ledger-problem", report.ledger.problem))
    return props


SubjectKey = tuple[str, str, str, str]  # cluster, kind, namespace, name


def _subjects(report: PeriodReport) -> dict[SubjectKey, tuple[str, dict[str, Any]]]:
    """The workloads findings name, as inventory items (key -> (uuid, item))."""
    items: dict[SubjectKey, tuple[str, dict[str, Any]]] = {}
    uid_uses = Counter(
        {(f.cluster, f.kind, f.namespace, f.name): f.uid for f in report.findings}.values()
    )
    for finding in report.findings:
        key = (finding.cluster, finding.kind, finding.namespace, finding.name)
        if key in items:
            continue
        item_id = uuid_of("subject", *key)
        if _is_uuid(finding.uid) and uid_uses[finding.uid] == 1:
            item_id = str(finding.uid).lower()
        identity = (
            f"{finding.kind}/{finding.namespace}/{finding.name}"
            if finding.namespace
            else (f"{finding.kind}/{finding.name}")
        )
        props = [
            prop("cluster", finding.cluster),
            prop("kind", finding.kind),
            prop("name", finding.name),
            prop("workload-identity", f"{finding.cluster}/{identity}"),
        ]
        if finding.namespace:
            props.insert(2, prop("namespace", finding.namespace))
        if finding.uid and finding.uid.strip():
            props.append(prop("kubernetes-uid", finding.uid.strip()))
        props.extend(
            prop("kubernetes-label", f"{name}={value}".strip())
            for name, value in sorted((finding.labels or {}).items())
        )
        items[key] = (
            item_id,
            {
                "uuid": item_id,
                "description": f"{identity} in cluster {finding.cluster}",
                "props": props,
            },
        )
    return items


def _observations(
    report: PeriodReport, subjects: dict[SubjectKey, tuple[str, dict[str, Any]]]
) -> dict[str, tuple[dict[str, Any], str]]:
    """check id -> (observation, its uuid)."""
    failing: dict[str, set[SubjectKey]] = defaultdict(set)
    for finding in report.findings:
        failing[finding.check_id].add(
            (finding.cluster, finding.kind, finding.namespace, finding.name)
        )
    seen: dict[str, tuple[dict[str, Any], str]] = {}
    collected = time_text(report.scans[-1].started_at) if report.scans else None
    for criterion in report.criteria:
        for check in criterion.checks:
            if check.check_id in seen or not sum(check.counts.values()):
                continue
            observation_id = uuid_of("observation", report.framework_id, check.check_id)
            counts = {
                s: check.counts.get(s, 0) for s in ("pass", "fail", "excepted", "not_evaluated")
            }
            rate = pass_rate(counts)
            made = observation(
                observation_id,
                check.check_id,
                f"{check.title}. Evaluated by {check.scans} recorded scans on {check.days} "
                f"days: {counts['pass']} pass, {counts['fail']} fail, {counts['excepted']} "
                f"excepted, {counts['not_evaluated']} not evaluated.",
                [
                    prop("check", check.check_id),
                    prop("severity", check.severity),
                    *(prop(f"results-{s.replace('_', '-')}", n) for s, n in counts.items()),
                    prop("scans", check.scans),
                    prop("evidence-days", check.days),
                ],
                finding=bool(counts["fail"]),
                collected=collected,
                evidence="Scan runs and results",
            )
            if rate is not None:
                made["props"].append(prop("pass-rate", f"{rate:.4f}"))
            refs = [
                {
                    "subject-uuid": subjects[key][0],
                    "type": "inventory-item",
                    "title": subjects[key][1]["description"],
                }
                for key in sorted(failing.get(check.check_id, ()))
                if key in subjects
            ]
            if refs:
                made["subjects"] = refs
            seen[check.check_id] = (made, observation_id)
    return seen


def _risks(
    report: PeriodReport, subjects: dict[SubjectKey, tuple[str, dict[str, Any]]]
) -> dict[int, tuple[dict[str, Any], str]]:
    """finding id -> (risk, its uuid)."""
    exceptions = list({e.id: e for c in report.criteria for e in (c.exceptions or [])}.values())
    risks: dict[int, tuple[dict[str, Any], str]] = {}
    for finding in report.findings:
        risk_id = uuid_of("risk", finding.cluster, finding.id, finding.check_id)
        accepted = [e for e in exceptions if e.covers(finding)]
        status = (
            "risk-accepted"
            if accepted and finding.state == "open"
            else ("open" if finding.state == "open" else "closed")
        )
        risk: dict[str, Any] = {
            "uuid": risk_id,
            "title": f"{finding.check_id} on {finding.subject}",
            "description": finding.message or finding.check_id,
            "statement": (
                f"{finding.severity} finding first seen {time_text(finding.first_seen)} in "
                f"cluster {finding.cluster}; {finding.state} at the end of the period"
                + (f", closed {time_text(finding.closed_at)}" if finding.closed_at else "")
                + ("; its remediation SLA was missed" if finding.overdue else "")
                + "."
            ),
            "props": [
                prop("severity", finding.severity),
                prop("finding-state", finding.state),
                prop("sla-missed", str(finding.overdue).lower()),
                prop("reopened", finding.reopened),
            ],
            "status": status,
            "related-observations": [
                {"observation-uuid": uuid_of("observation", report.framework_id, finding.check_id)}
            ],
        }
        if finding.due is not None:
            risk["deadline"] = time_text(finding.due)
        if accepted:
            risk["risk-log"] = {"entries": [_acceptance(e, risk_id) for e in accepted]}
        risks[finding.id] = (risk, risk_id)
    return risks


def _acceptance(exception: ExceptionInForce, risk_id: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "uuid": uuid_of("acceptance", risk_id, exception.id),
        "title": f"Risk accepted ({exception.id})",
        "description": f"Accepted by {exception.owner} for {exception.scope}: {exception.reason}",
        "start": time_text(exception.granted) or time_text(exception.expires),
        "status-change": "risk-accepted",
    }
    if exception.expires is not None:
        entry["end"] = time_text(exception.expires)
    return entry


def _finding(
    criterion: CriterionReport,
    observations: dict[str, tuple[dict[str, Any], str]],
    risks: dict[int, tuple[dict[str, Any], str]],
) -> dict[str, Any]:
    satisfied = criterion.verdict == "satisfied"
    reason = "pass" if satisfied else "fail" if criterion.verdict == "exceptions noted" else "other"
    finding: dict[str, Any] = {
        "uuid": uuid_of("finding", criterion.id),
        "title": f"{criterion.id} {criterion.title}",
        "description": (
            f"Verdict over the period: {criterion.verdict}. {sum(criterion.counts.values())} "
            f"results from {criterion.scans} scans; {len(criterion.open_findings)} findings "
            f"open at the end of the period, {len(criterion.overdue)} past their SLA; "
            f"{len(criterion.missing_days)} days without evidence; "
            f"{criterion.counts['not_evaluated']} results could not be judged."
        ),
        "target": {
            "type": "objective-id",
            "target-id": control_id(criterion.id),
            "status": {"state": "satisfied" if satisfied else "not-satisfied", "reason": reason},
        },
    }
    related = [
        {"observation-uuid": observations[c.check_id][1]}
        for c in criterion.checks
        if c.check_id in observations
    ]
    if related:
        finding["related-observations"] = related
    risk_refs = [{"risk-uuid": risks[f.id][1]} for f in criterion.findings if f.id in risks]
    if risk_refs:
        finding["related-risks"] = risk_refs
    return finding
