"""The agent's transitions of one subject, newest last, with who made each change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kubeproof.store.ledger import canonical_time
from kubeproof.store.schema import AgentTransitionRow

MAX_SHOWN = 200


def subject_transitions(
    session: Session, kind: str, namespace: str, name: str, cluster: str | None = None
) -> list[AgentTransitionRow]:
    """The newest MAX_SHOWN transitions of a subject, oldest first."""
    statement = select(AgentTransitionRow).where(
        AgentTransitionRow.kind == kind,
        AgentTransitionRow.namespace == namespace,
        AgentTransitionRow.name == name,
    )
    if cluster is not None:
        statement = statement.where(AgentTransitionRow.cluster == cluster)
    newest = session.scalars(statement.order_by(AgentTransitionRow.id.desc()).limit(MAX_SHOWN))
    return list(reversed(list(newest)))


def transition_dict(row: AgentTransitionRow) -> dict[str, Any]:
    actor = None
    if row.actor_user is not None:
        actor = {
            "user": row.actor_user,
            "verb": row.actor_verb,
            "time": canonical_time(row.actor_time),
            "sourceIP": row.actor_source_ip,
            "auditID": row.actor_audit_id,
        }
    return {
        "cluster": row.cluster,
        "observedAt": canonical_time(row.observed_at),
        "transition": row.transition,
        "check": row.check_id,
        "container": row.container or None,
        "statusBefore": row.status_before,
        "statusAfter": row.status_after,
        "message": row.message,
        "cause": row.cause,
        "changedBy": actor,
        "ledgerEntry": row.ledger_seq,
    }
