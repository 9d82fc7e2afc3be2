"""Prometheus text-format metrics: decisions by mode, decision and rule, and latency."""

from __future__ import annotations

import bisect
import threading
from collections import Counter

# Seconds; admission budgets are milliseconds, the API server's timeout at most 30 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decisions: Counter[tuple[str, str, str]] = Counter()
        self._bad_requests: Counter[str] = Counter()
        self._bucket_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self._latency_count = 0

    def record_decision(
        self, mode: str, outcome: str, rules: tuple[str, ...], seconds: float
    ) -> None:
        index = bisect.bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            for rule in rules or ("none",):
                self._decisions[(mode, outcome, rule)] += 1
            self._bucket_counts[index] += 1
            self._latency_sum += seconds
            self._latency_count += 1

    def record_bad_request(self, reason: str) -> None:
        with self._lock:
            self._bad_requests[reason] += 1

    def decision_count(self, mode: str, outcome: str, rule: str = "none") -> int:
        with self._lock:
            return self._decisions[(mode, outcome, rule)]

    def render(self) -> str:
        with self._lock:
            decisions = sorted(self._decisions.items())
            bad = sorted(self._bad_requests.items())
            buckets = list(self._bucket_counts)
            total, count = self._latency_sum, self._latency_count
        lines = [
            "# HELP kubeproof_admission_decisions_total Admission decisions, by policy mode, "
            "outcome and rule broken (none when no rule was broken).",
            "# TYPE kubeproof_admission_decisions_total counter",
        ]
        for (mode, outcome, rule), value in decisions:
            labels = f'mode="{_escape(mode)}",decision="{_escape(outcome)}",rule="{_escape(rule)}"'
            lines.append(f"kubeproof_admission_decisions_total{{{labels}}} {value}")
        lines += [
            "# HELP kubeproof_admission_bad_requests_total Requests answered 400, by reason.",
            "# TYPE kubeproof_admission_bad_requests_total counter",
        ]
        for reason, value in bad:
            lines.append(
                f'kubeproof_admission_bad_requests_total{{reason="{_escape(reason)}"}} {value}'
            )
        lines += [
            "# HELP kubeproof_admission_duration_seconds Time to decide one AdmissionReview.",
            "# TYPE kubeproof_admission_duration_seconds histogram",
        ]
        cumulative = 0
        for bound, bucket in zip((*LATENCY_BUCKETS, None), buckets, strict=True):
            cumulative += bucket
            le = "+Inf" if bound is None else repr(bound)
            lines.append(f'kubeproof_admission_duration_seconds_bucket{{le="{le}"}} {cumulative}')
        lines.append(f"kubeproof_admission_duration_seconds_sum {total!r}")
        lines.append(f"kubeproof_admission_duration_seconds_count {count}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
