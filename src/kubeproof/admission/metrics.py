"""Prometheus text-format metrics: decisions by mode, decision and rule, and latency."""

from __future__ import annotations

import bisect
import threading
from collections import Counter

from kubeproof.prometheus import family, histogram

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
        lines = family(
            "kubeproof_admission_decisions_total",
            "counter",
            "Admission decisions, by policy mode, outcome and rule broken (none when no rule "
            "was broken).",
            (
                ({"mode": mode, "decision": outcome, "rule": rule}, value)
                for (mode, outcome, rule), value in decisions
            ),
        )
        lines += family(
            "kubeproof_admission_bad_requests_total",
            "counter",
            "Requests answered 400, by reason.",
            (({"reason": reason}, value) for reason, value in bad),
        )
        lines += histogram(
            "kubeproof_admission_duration_seconds",
            "Time to decide one AdmissionReview.",
            LATENCY_BUCKETS,
            buckets,
            total,
            count,
        )
        return "\n".join(lines) + "\n"
