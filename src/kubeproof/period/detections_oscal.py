"""The period report's CC7.2 observations in OSCAL: one for monitoring as a whole (the
detections' counts and the monitors' coverage), one per detector that fired. oscal.py
relates them to the cc7.2 finding."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from kubeproof.period.detections import COMPONENT_NAMES, DetectionEvidence
from kubeproof.period.detections import CRITERION as CRITERION  # oscal.py relates to it
from kubeproof.period.model import time_text

Uuid = Callable[..., str]
Prop = Callable[[str, object], dict[str, str]]
_EVIDENCE = {
    "href": "#evidence-ledger",
    "description": "Detections and heartbeats in the kubeproof evidence store, covered by its "
    "hash-chained ledger (kubeproof evidence verify).",
}


def observations(
    evidence: DetectionEvidence, framework: str, collected: datetime, uuid: Uuid, prop: Prop
) -> list[dict[str, Any]]:
    """None when nothing was recorded and nothing was watching: there is nothing to observe
    (the HTML and JSON say so)."""
    if evidence.empty and not evidence.monitored:
        return []
    days = len(evidence.days)
    coverage = "; ".join(
        f"{COMPONENT_NAMES.get(c.component, c.component)} heartbeats on {len(c.days)} of "
        f"{days} days, {len(c.gaps)} silences"
        for c in evidence.coverage
    )
    severities = ", ".join(f"{n} {s}" for s, n in evidence.by_severity.items() if n)
    summary: dict[str, Any] = {
        "uuid": uuid("observation", framework, "anomaly-detection"),
        "title": "anomaly-detection",
        "description": (
            f"kubeproof recorded {evidence.detections} audit detections and Falco alerts "
            f"({severities or 'none'}). Monitoring: {coverage}; "
            f"{len(evidence.unmonitored_days)} days without any heartbeat."
        ),
        "props": [
            prop("detections", evidence.detections),
            *(prop(f"detections-{s}", n) for s, n in evidence.by_severity.items()),
            *(prop(f"detections-from-{s}", n) for s, n in sorted(evidence.by_source.items())),
            prop("detection-ledger-entries", evidence.batches),
            *(prop(f"{c.component}-heartbeat-days", len(c.days)) for c in evidence.coverage),
            *(prop(f"{c.component}-silences", len(c.gaps)) for c in evidence.coverage),
            prop("days-without-monitoring", len(evidence.unmonitored_days)),
        ],
        "methods": ["TEST"],
        "types": ["control-objective"],
        "collected": time_text(evidence.last or collected),
        "relevant-evidence": [_EVIDENCE],
    }
    found = [summary]
    for tally in evidence.detectors:
        found.append(
            {
                "uuid": uuid("observation", framework, "detector", tally.detector_id),
                "title": tally.detector_id,
                "description": (
                    f"{tally.detector_id} ({tally.source}, {tally.severity}) fired "
                    f"{tally.detections} times on {tally.subjects} subjects."
                ),
                "props": [
                    prop("detector", tally.detector_id),
                    prop("severity", tally.severity),
                    prop("source", tally.source),
                    prop("detections", tally.detections),
                    prop("subjects", tally.subjects),
                ],
                "methods": ["TEST"],
                "types": ["finding"],
                "collected": time_text(evidence.last or collected),
                "relevant-evidence": [_EVIDENCE],
            }
        )
    return found
