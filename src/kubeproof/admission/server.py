"""The webhook's HTTPS server: kubeproof's shared server (`kubeproof.serving`) answering
AdmissionReview POSTs on /validate, with decision metrics on /metrics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

from kubeproof.admission.decide import Decider, Decision
from kubeproof.admission.evidence import DecisionRecorder, decision_values
from kubeproof.admission.metrics import Metrics
from kubeproof.admission.review import AdmissionRequest, ReviewError, answer, parse_review
from kubeproof.serving import (
    MAX_CONNECTIONS,
    Answer,
    CertificateReloader,
    Server,
    TlsError,
    start_in_thread,
    tls_context,
)

__all__ = [
    "MAX_BODY_BYTES",
    "AdmissionServer",
    "CertificateReloader",
    "TlsError",
    "start_in_thread",
    "tls_context",
]

# An AdmissionReview carries the object and, on UPDATE, the old one; etcd caps each at
# 1.5 MiB, so anything much larger is not from an API server.
MAX_BODY_BYTES = 4 * 1024 * 1024
VALIDATE_PATH = "/validate"


class AdmissionServer(Server):
    post_paths = frozenset({VALIDATE_PATH})
    max_body_bytes = MAX_BODY_BYTES

    def __init__(
        self,
        address: tuple[str, int],
        decider: Decider,
        certificates: CertificateReloader,
        metrics: Metrics | None = None,
        log: Callable[[str], None] | None = None,
        max_connections: int = MAX_CONNECTIONS,
        evidence: DecisionRecorder | None = None,
    ) -> None:
        self.decider = decider
        self.metrics = metrics or Metrics()
        self.evidence = evidence
        super().__init__(address, certificates, log, max_connections)

    def answer_post(self, path: str, body: bytes) -> Answer:
        status, reply = self.answer_review(body)
        return status, reply, "application/json" if status == 200 else "text/plain"

    def render_metrics(self) -> str:
        if self.evidence is None:
            return self.metrics.render()
        return self.metrics.render() + self.evidence.render_metrics()

    def not_ready(self) -> str | None:
        return self.evidence.not_ready() if self.evidence is not None else None

    def count_bad_request(self, reason: str) -> None:
        self.metrics.record_bad_request(reason)

    def answer_review(self, body: bytes) -> tuple[int, bytes]:
        """HTTP status and body for one POST /validate."""
        started = time.perf_counter()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            self.metrics.record_bad_request("not-json")
            return 400, b"the body is not JSON\n"
        try:
            request = parse_review(data)
        except ReviewError as error:
            return self._bad_review(error, started)
        try:
            decision = self.decider.decide(request)
        except Exception as error:  # a decision must never crash the server
            self.log(f"decision error for request {request.uid}: {type(error).__name__}")
            decision = self.decider.unjudgeable(f"internal error {type(error).__name__}")
        reply = decision.review_answer(request.uid)
        self.metrics.record_decision(
            decision.mode, decision.outcome, decision.rules, time.perf_counter() - started
        )
        if decision.outcome not in ("allowed", "skipped"):
            self.log(_decision_record(request, decision))
        self._record(request, decision)
        return 200, orjson.dumps(reply)

    def _record(self, request: AdmissionRequest, decision: Decision) -> None:
        if self.evidence is not None:
            # The row is built here, so the writer never holds an object's body.
            decider = self.decider
            values = decision_values(
                request, decision, decider.policy.digest, datetime.now(UTC), decider.image_digest
            )
            self.evidence.add(values)

    def _bad_review(self, error: ReviewError, started: float) -> tuple[int, bytes]:
        if error.uid is None:
            self.metrics.record_bad_request("not-admission-review")
            return 400, f"not an AdmissionReview: {error}\n".encode()
        # Readable enough to answer: the policy says whether to fail open or closed.
        fail_closed = self.decider.policy.fail_closed
        outcome = "unjudgeable"
        self.metrics.record_decision("-", outcome, (), time.perf_counter() - started)
        message = f"kubeproof cannot judge this request: {error}"
        reply = answer(error.uid, not fail_closed, message=message, code=400)
        # Recorded too: the API server got an answer. Only the uid could be read.
        unread = AdmissionRequest(
            uid=error.uid, kind="", group="", resource="", sub_resource="", operation="",
            namespace="", name="", username="", obj=None, old_obj=None,
        )  # fmt: skip
        self._record(unread, Decision(not fail_closed, "-", outcome, str(error)))
        return 200, orjson.dumps(reply)


def _decision_record(request: AdmissionRequest, decision: Decision) -> str:
    return json.dumps(
        {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "event": "admission-decision",
            "uid": request.uid,
            "operation": request.operation,
            "kind": request.kind,
            "namespace": request.namespace,
            "name": request.name,
            "user": request.username,
            "dryRun": request.dry_run,
            "mode": decision.mode,
            "decision": decision.outcome,
            "allowed": decision.allowed,
            "rules": list(decision.rules),
            "reason": decision.reason,
        },
        separators=(",", ":"),
    )
