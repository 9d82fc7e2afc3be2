"""The period report's CC7.2 observations in OSCAL: one for monitoring as a whole (the
detections' counts and the monitors' coverage), one per detector that fired. oscal.py
relates them to the cc7.2 finding."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubeproof.period.detections import COMPONENT_NAMES, DetectionEvidence
from kubeproof.period.detections import CRITERION as CRITERION  # oscal.py relates to it
from kubeproof.period.model import time_text
from kubeproof.period.oscal_parts import observation, prop, uuid_of

_EVIDENCE = "Detections and heartbeats"


def observations(
    evidence: DetectionEvidence, framework: str, collected: datetime
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
    last = time_text(evidence.last or collected)
    summary = observation(
        uuid_of("observation", framework, "anomaly-detection"),
        "anomaly-detection",
        f"kubeproof recorded {evidence.detections} audit detections and Falco alerts "
        f"({severities or 'none'}). Monitoring: {coverage}; "
        f"{len(evidence.unmonitored_days)} days without any heartbeat.",
        [
            prop("detections", evidence.detections),
            *(prop(f"detections-{s}", n) for s, n in evidence.by_severity.items()),
            *(prop(f"detections-from-{s}", n) for s, n in sorted(evidence.by_source.items())),
            prop("detection-ledger-entries", evidence.batches),
            *(prop(f"{c.component}-heartbeat-days", len(c.days)) for c in evidence.coverage),
            *(prop(f"{c.component}-silences", len(c.gaps)) for c in evidence.coverage),
            prop("days-without-monitoring", len(evidence.unmonitored_days)),
        ],
        finding=False,
        collected=last,
        evidence=_EVIDENCE,
    )
    return [summary] + [
        observation(
            uuid_of("observation", framework, "detector", tally.detector_id),
            tally.detector_id,
            f"{tally.detector_id} ({tally.source}, {tally.severity}) fired "
            f"{tally.detections} times on {tally.subjects} subjects.",
            [
                prop("detector", tally.detector_id),
                prop("severity", tally.severity),
                prop("source", tally.source),
                prop("detections", tally.detections),
                prop("subjects", tally.subjects),
            ],
            finding=True,
            collected=last,
            evidence=_EVIDENCE,
        )
        for tally in evidence.detectors
    ]
