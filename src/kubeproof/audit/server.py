"""`kubeproof audit serve`'s HTTPS endpoint: the API server's audit webhook backend posts
EventList batches to /audit, Falco (http_output or falcosidekick) posts alerts to
/falco; /metrics counts both. Built on kubeproof's shared server."""

from __future__ import annotations

from collections.abc import Callable

from kubeproof.audit.receiver import Receiver
from kubeproof.serving import MAX_CONNECTIONS, Answer, CertificateReloader, Server

AUDIT_PATH = "/audit"
FALCO_PATH = "/falco"
# The API server's webhook batches hold at most 400 events by default (--audit-webhook-
# batch-max-size); with request bodies logged a batch stays well below this.
MAX_BATCH_BYTES = 64 * 1024 * 1024


class AuditServer(Server):
    max_body_bytes = MAX_BATCH_BYTES

    def __init__(
        self,
        address: tuple[str, int],
        receiver: Receiver,
        certificates: CertificateReloader,
        *,
        falco: bool = True,
        log: Callable[[str], None] | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.receiver = receiver
        self.extra_metrics: Callable[[], list[str]] | None = None  # e.g. the notifier's
        self.post_paths = frozenset({AUDIT_PATH, FALCO_PATH} if falco else {AUDIT_PATH})
        super().__init__(address, certificates, log, max_connections)

    def answer_post(self, path: str, body: bytes) -> Answer:
        if path == AUDIT_PATH:
            reply = self.receiver.audit_batch(body)
        else:
            reply = self.receiver.falco_body(body)
        if reply.status != 200:
            self.log(f"kubeproof audit serve: POST {path}: {reply.status}: {reply.message.strip()}")
        return reply.status, reply.message.encode(), "text/plain"

    def render_metrics(self) -> str:
        extra = self.extra_metrics() if self.extra_metrics is not None else []
        return self.receiver.metrics() + "".join(line + "\n" for line in extra)

    def count_bad_request(self, reason: str) -> None:
        self.receiver.count_bad("http", reason)
