"""Exceptions in the evidence store: add, revoke, list, and the ones a scan applies.

An exception row is written once. Revoking it adds a revocation row; expiry needs no row
(the date says it). Both the exception and its revocation append a ledger entry in the
same transaction, so `kubeproof evidence verify` covers them like scans.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kubeproof.redaction import redact, redact_data
from kubeproof.risk_acceptance import (
    SOURCE_STORE,
    ExceptionSpecError,
    RiskException,
    check_pattern,
    expires_at,
    expiry_problem,
    parse_selector,
    parse_subject_pattern,
    today_utc,
)
from kubeproof.store import ledger
from kubeproof.store.db import Store
from kubeproof.store.schema import ExceptionRevocationRow, ExceptionRow

ACTIVE, EXPIRED, REVOKED = "active", "expired", "revoked"


class ExceptionNotFound(LookupError):
    pass


@dataclass(frozen=True)
class NewException:
    """What `kubeproof exceptions add` was given, before validation."""

    checks: list[str]
    owner: str
    reason: str
    expires: date
    subjects: list[str]
    namespaces: list[str]
    selector: str | dict[str, Any] | None = None
    ticket: str | None = None
    approver: str | None = None


@dataclass(frozen=True)
class Added:
    id: int
    ledger_seq: int
    ledger_hash: str


def display_id(exception_id: int) -> str:
    return f"EXC-{exception_id}"


def parse_id(text: str) -> int:
    """`EXC-7` or `7`."""
    body = text.strip()
    if body.upper().startswith("EXC-"):
        body = body[4:]
    if not body.isdigit() or len(body) > 12:
        raise ExceptionSpecError(f"{text!r} is not an exception id: use EXC-N as listed")
    return int(body)


def validated_values(new: NewException, *, now: datetime, max_days: int) -> dict[str, Any]:
    """Row values for a new exception, or ExceptionSpecError naming the flag at fault."""
    checks = [check_pattern(c, "--check") for c in new.checks]
    if not checks:
        raise ExceptionSpecError("--check is required (a check id or glob, repeatable)")
    subjects = [str(parse_subject_pattern(s, "--subject")) for s in new.subjects]
    namespaces = [n.strip() for n in new.namespaces]
    if any(not n for n in namespaces):
        raise ExceptionSpecError("--namespace: must not be empty")
    selector = parse_selector(new.selector, "--selector") if new.selector else None
    if not (subjects or namespaces or selector):
        raise ExceptionSpecError(
            "give --subject, --namespace or --selector: an exception for every subject "
            "in every namespace is not accepted"
        )
    if max_days < 1:
        raise ExceptionSpecError("--max-days must be at least 1")
    problem = expiry_problem(new.expires, today=today_utc(now), max_days=max_days)
    if problem:
        raise ExceptionSpecError(f"--expires: {problem}")
    texts = {"owner": new.owner, "reason": new.reason}
    for flag, value in texts.items():
        if not value or not value.strip():
            raise ExceptionSpecError(f"--{flag} is required and must not be empty")
    return {
        "checks": checks,
        "subjects": subjects,
        "namespaces": namespaces,
        "selector": selector,
        # Written by people, stored forever: a pasted credential must not be among them.
        "owner": redact(new.owner.strip()),
        "reason": redact(new.reason.strip()),
        "ticket": redact(new.ticket.strip()) if new.ticket and new.ticket.strip() else None,
        "approver": redact(new.approver.strip()) if new.approver and new.approver.strip() else None,
        "created_at": ledger.utc(now),
        "expires_on": new.expires,
    }


def add_exception(store: Store, new: NewException, *, now: datetime, max_days: int) -> Added:
    values = validated_values(new, now=now, max_days=max_days)
    with store.writing() as session:
        head = ledger.lock_head(session)
        row = ExceptionRow(**values)
        if row.selector is not None:
            row.selector = redact_data(row.selector)
        session.add(row)
        session.flush()
        content = {"exception": ledger.row_content(row, ledger.EXCEPTION_FIELDS)}
        entry = ledger.append(
            session,
            head,
            ledger.EXCEPTION_ENTRY,
            content,
            values["created_at"],
            exception_id=row.id,
        )
        return Added(row.id, entry.seq, entry.entry_hash)


def revoke_exception(
    store: Store, exception_id: int, *, by: str, reason: str, now: datetime
) -> Added:
    if not by.strip() or not reason.strip():
        raise ExceptionSpecError("--by and --reason are required and must not be empty")
    with store.writing() as session:
        head = ledger.lock_head(session)
        if session.get(ExceptionRow, exception_id) is None:
            raise ExceptionNotFound(f"no exception {display_id(exception_id)}")
        revoked = session.scalars(
            select(ExceptionRevocationRow).where(
                ExceptionRevocationRow.exception_id == exception_id
            )
        ).first()
        if revoked is not None:
            raise ExceptionSpecError(
                f"exception {display_id(exception_id)} was already revoked on "
                f"{ledger.canonical_time(revoked.revoked_at)}"
            )
        row = ExceptionRevocationRow(
            exception_id=exception_id,
            revoked_at=ledger.utc(now),
            revoked_by=redact(by.strip()),
            reason=redact(reason.strip()),
        )
        session.add(row)
        session.flush()
        content = {"revocation": ledger.row_content(row, ledger.REVOCATION_FIELDS)}
        entry = ledger.append(
            session,
            head,
            ledger.REVOCATION_ENTRY,
            content,
            row.revoked_at,
            revocation_id=row.id,
        )
        return Added(exception_id, entry.seq, entry.entry_hash)


@dataclass(frozen=True)
class StoredException:
    row: ExceptionRow
    revocation: ExceptionRevocationRow | None
    state: str  # active | expired | revoked

    @property
    def id(self) -> str:
        return display_id(self.row.id)

    def as_dict(self) -> dict[str, Any]:
        row, revocation = self.row, self.revocation
        return {
            "id": self.id,
            "state": self.state,
            "checks": row.checks,
            "subjects": row.subjects,
            "namespaces": row.namespaces,
            "selector": row.selector,
            "owner": row.owner,
            "reason": row.reason,
            "ticket": row.ticket,
            "approver": row.approver,
            "createdAt": ledger.canonical_time(row.created_at),
            "expires": row.expires_on.isoformat(),
            "revoked": None
            if revocation is None
            else {
                "at": ledger.canonical_time(revocation.revoked_at),
                "by": revocation.revoked_by,
                "reason": revocation.reason,
            },
        }

    def as_risk_exception(self) -> RiskException:
        """The exception as a scan applies it. Rows are validated again: a row edited
        behind kubeproof's back must fail loudly, not widen what it excepts."""
        row, where = self.row, f"exception {self.id}"
        if not all(isinstance(v, list) for v in (row.checks, row.subjects, row.namespaces)):
            raise ExceptionSpecError(f"{where}: checks, subjects and namespaces must be lists")
        if not all(isinstance(n, str) and n for n in row.namespaces):
            raise ExceptionSpecError(f"{where}: namespaces must be non-empty strings")
        if not (row.subjects or row.namespaces or row.selector):
            raise ExceptionSpecError(f"{where}: has no scope")
        return RiskException(
            id=self.id,
            source=SOURCE_STORE,
            checks=tuple(check_pattern(c, f"{where} checks") for c in row.checks),
            owner=row.owner,
            reason=row.reason,
            expires=row.expires_on,
            subjects=tuple(parse_subject_pattern(s, where) for s in row.subjects),
            namespaces=tuple(row.namespaces),
            selector=parse_selector(row.selector, f"{where} selector") if row.selector else None,
            ticket=row.ticket,
            approver=row.approver,
            created=ledger.utc(row.created_at),
        )


def state_of(row: ExceptionRow, revocation: ExceptionRevocationRow | None, now: datetime) -> str:
    if revocation is not None:
        return REVOKED
    return EXPIRED if now >= expires_at(row.expires_on) else ACTIVE


def list_exceptions(
    session: Session, *, now: datetime, states: frozenset[str] | None = None
) -> list[StoredException]:
    revocations = {r.exception_id: r for r in session.scalars(select(ExceptionRevocationRow))}
    found = []
    for row in session.scalars(select(ExceptionRow).order_by(ExceptionRow.id)):
        revocation = revocations.get(row.id)
        stored = StoredException(row, revocation, state_of(row, revocation, now))
        if states is None or stored.state in states:
            found.append(stored)
    return found


def get_exception(session: Session, exception_id: int, *, now: datetime) -> StoredException:
    row = session.get(ExceptionRow, exception_id)
    if row is None:
        raise ExceptionNotFound(f"no exception {display_id(exception_id)}")
    revocation = session.scalars(
        select(ExceptionRevocationRow).where(ExceptionRevocationRow.exception_id == row.id)
    ).first()
    return StoredException(row, revocation, state_of(row, revocation, now))


def scan_exceptions(store: Store, *, now: datetime) -> list[RiskException]:
    """What a scan applies: every exception not revoked. Expired ones are included so that
    the results they used to cover say when they expired."""
    with store.reading() as session:
        stored = list_exceptions(session, now=now, states=frozenset({ACTIVE, EXPIRED}))
        return [s.as_risk_exception() for s in stored]
