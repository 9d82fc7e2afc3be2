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
import uuid
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

OSCAL_VERSION = "1.1.2"
NAMESPACE = "urn:kubeproof:oscal"
_UUID_ROOT = uuid.uuid5(uuid.NAMESPACE_URL, NAMESPACE)
# OSCAL's UUID datatype (RFC 4122 version 4 or 5): Kubernetes UIDs are version 4 UUIDs.
_OSCAL_UUID = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[45][0-9A-Fa-f]{3}-[89ABab][0-9A-Fa-f]{3}-[0-9A-Fa-f]{12}"
)


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_UUID_ROOT, "\x1f".join(str(p) for p in parts)))


def _is_uuid(text: str | None) -> bool:
    return text is not None and _OSCAL_UUID.fullmatch(text) is not None


def _prop(name: str, value: object) -> dict[str, str]:
    return {"name": name, "ns": NAMESPACE, "value": str(value)}


def control_id(criterion: str) -> str:
    """OSCAL control ids are lower-case tokens: CC6.1 becomes cc6.1."""
    return criterion.lower()


def render(report: PeriodReport) -> dict[str, Any]:
    scope = report.cluster or "all"
    document_id = _uuid(
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
                "props": [_prop("framework", report.framework_id), _prop("scope", scope)],
            },
            "import-ap": {"href": f"#{_uuid('assessment-plan', document_id)}"},
            "results": [_result(report, document_id)],
        }
    }


def _result(report: PeriodReport, document_id: str) -> dict[str, Any]:
    subjects = _subjects(report)
    observations = _observations(report, subjects)
    risks = _risks(report, subjects)
    result: dict[str, Any] = {
        "uuid": _uuid("result", document_id),
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
            _prop("scans", len(report.scans)),
            _prop("results", report.result_count),
            _prop("days-without-scan", len(report.missing_days)),
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
                report.detections, report.framework_id, report.generated_at, _uuid, _prop
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
    observation_id = _uuid("observation", report.framework_id, "admission-control")
    answers = ", ".join(f"{n} {a}" for a, n in admission.by_answer.items() if n)
    denied = "; ".join(f"{rule} {n}" for rule, n in admission.rule_totals("denied"))
    observation: dict[str, Any] = {
        "uuid": observation_id,
        "title": "admission-control",
        "description": (
            f"The kubeproof admission webhook decided {admission.decisions} requests on "
            f"{admission.days} days ({answers}). Denied by rule: {denied or 'none'}."
        ),
        "props": [
            _prop("admission-decisions", admission.decisions),
            *(_prop(f"admission-{a}", n) for a, n in admission.by_answer.items()),
            _prop("admission-days", admission.days),
            _prop("admission-ledger-entries", admission.batches),
            *(_prop(f"denied-by-{rule}", n) for rule, n in admission.rule_totals("denied")),
        ],
        "methods": ["TEST"],
        "types": ["control-objective"],
        "collected": time_text(admission.last or report.generated_at),
        "relevant-evidence": [
            {
                "href": "#evidence-ledger",
                "description": "Admission decisions in the kubeproof evidence store, covered "
                "by its hash-chained ledger (kubeproof evidence verify).",
            }
        ],
    }
    result.setdefault("observations", []).append(observation)
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
        return [_prop("ledger-verified", "false")]
    props = [
        _prop("ledger-intact", str(report.ledger.intact).lower()),
        _prop("ledger-entries", report.ledger.entries),
        _prop("ledger-head", report.ledger.head),
    ]
    if report.ledger.problem:
        props.append(_prop("ledger-problem", report.ledger.problem))
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
        item_id = _uuid("subject", *key)
        if _is_uuid(finding.uid) and uid_uses[finding.uid] == 1:
            item_id = str(finding.uid).lower()
        identity = (
            f"{finding.kind}/{finding.namespace}/{finding.name}"
            if finding.namespace
            else (f"{finding.kind}/{finding.name}")
        )
        props = [
            _prop("cluster", finding.cluster),
            _prop("kind", finding.kind),
            _prop("name", finding.name),
            _prop("workload-identity", f"{finding.cluster}/{identity}"),
        ]
        if finding.namespace:
            props.insert(2, _prop("namespace", finding.namespace))
        if finding.uid and finding.uid.strip():
            props.append(_prop("kubernetes-uid", finding.uid.strip()))
        props.extend(
            _prop("kubernetes-label", f"{name}={value}".strip())
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
            observation_id = _uuid("observation", report.framework_id, check.check_id)
            counts = {
                s: check.counts.get(s, 0) for s in ("pass", "fail", "excepted", "not_evaluated")
            }
            rate = pass_rate(counts)
            observation: dict[str, Any] = {
                "uuid": observation_id,
                "title": check.check_id,
                "description": (
                    f"{check.title}. Evaluated by {check.scans} recorded scans on {check.days} "
                    f"days: {counts['pass']} pass, {counts['fail']} fail, {counts['excepted']} "
                    f"excepted, {counts['not_evaluated']} not evaluated."
                ),
                "props": [
                    _prop("check", check.check_id),
                    _prop("severity", check.severity),
                    *(_prop(f"results-{s.replace('_', '-')}", n) for s, n in counts.items()),
                    _prop("scans", check.scans),
                    _prop("evidence-days", check.days),
                ],
                "methods": ["TEST"],
                "types": ["finding"] if counts["fail"] else ["control-objective"],
                "collected": collected,
                "relevant-evidence": [
                    {
                        "href": "#evidence-ledger",
                        "description": "Scan runs and results in the kubeproof evidence store, "
                        "covered by its hash-chained ledger (kubeproof evidence verify).",
                    }
                ],
            }
            if rate is not None:
                observation["props"].append(_prop("pass-rate", f"{rate:.4f}"))
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
                observation["subjects"] = refs
            seen[check.check_id] = (observation, observation_id)
    return seen


def _risks(
    report: PeriodReport, subjects: dict[SubjectKey, tuple[str, dict[str, Any]]]
) -> dict[int, tuple[dict[str, Any], str]]:
    """finding id -> (risk, its uuid)."""
    exceptions = list({e.id: e for c in report.criteria for e in (c.exceptions or [])}.values())
    risks: dict[int, tuple[dict[str, Any], str]] = {}
    for finding in report.findings:
        risk_id = _uuid("risk", finding.cluster, finding.id, finding.check_id)
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
                _prop("severity", finding.severity),
                _prop("finding-state", finding.state),
                _prop("sla-missed", str(finding.overdue).lower()),
                _prop("reopened", finding.reopened),
            ],
            "status": status,
            "related-observations": [
                {"observation-uuid": _uuid("observation", report.framework_id, finding.check_id)}
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
        "uuid": _uuid("acceptance", risk_id, exception.id),
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
        "uuid": _uuid("finding", criterion.id),
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
