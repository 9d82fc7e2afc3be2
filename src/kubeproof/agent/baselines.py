"""The approved baselines the agent compares workloads with, read again whenever a new
decision (an approval or revocation) reaches the evidence store."""

from __future__ import annotations

from collections.abc import Callable

from kubeproof.agent.record import STORE_ERRORS
from kubeproof.inventory.security_spec import ApprovedBaselines
from kubeproof.redaction import redact
from kubeproof.store.baselines import BaselineError, baseline_version, load_approved
from kubeproof.store.db import Store

DRIFT_GROUP = "drift"  # the checks judged again after a baseline decision
BASELINE_DECISION = "baseline decision"  # the cause of the transitions that follow one


class AgentBaselines:
    def __init__(self, store: Store, cluster: str) -> None:
        self.store = store
        self.cluster = cluster
        # None until read: drift.unapproved-change then does not apply, rather than
        # comparing with nothing.
        self.current: ApprovedBaselines | None = None
        self._version: int | None = None

    def refresh(self, say: Callable[[str], None]) -> bool:
        """Read the baselines again if a decision was recorded since (or they were never
        read); True when they were. A store that cannot be read keeps the last baselines,
        and says so."""
        try:
            version = baseline_version(self.store, self.cluster)
            if version == self._version:
                return False
            current = load_approved(self.store, self.cluster)
        except (BaselineError, *STORE_ERRORS) as error:
            say(f"cannot read the approved baselines: {redact(str(error))}; will retry")
            return False
        self.current, self._version = current, version
        say(f"comparing with {len(current.by_workload)} approved baselines")
        return True
