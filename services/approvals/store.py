"""Approval requests in the store: file, list, and the guarded steps from `waiting` to an end.

Every step is one UPDATE guarded on the request still `waiting` (and not past its expiry), so of two approvers
clicking at once exactly one gets the request; the other is told who did. At most one request waits per
organization (a partial unique index), so two people can't queue contradicting writes. Times come from the
book's clock (UTC), which tests replace to move past an expiry.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (Column, DateTime, Index, Integer, String, Table, Text, and_, func, insert, or_, select,
                        text, update)
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import IntegrityError

from ..store import metadata, now, utc, write_transaction

WAITING, APPROVED, REJECTED, WITHDRAWN, EXPIRED = "waiting", "approved", "rejected", "withdrawn", "expired"
STATUSES = (WAITING, APPROVED, REJECTED, WITHDRAWN, EXPIRED)

approval_requests = Table(
    "approval_requests", metadata,
    Column("id", String(32), primary_key=True),
    Column("organization_id", String(255), nullable=False),
    Column("action", String(40), nullable=False),  # the desk's action: "cancel subscription", "change plan"
    Column("kind", String(12), nullable=False),  # cancel | downgrade | upgrade (services/approvals/policy.py)
    Column("parameters", Text, nullable=False),  # JSON: what the write will send (priceId, productId)
    Column("summary", Text, nullable=False),  # what it will do, as the requester saw it
    Column("at_stake_cents", Integer),  # monthly revenue the write gives up, when known
    Column("snapshot", Text, nullable=False),  # JSON: the customer when asked (a change makes the request stale)
    Column("reason", Text, nullable=False),
    Column("requested_by", String(255), nullable=False),
    Column("requester_role", String(20), nullable=False),
    Column("requester_subject", String(255)),
    Column("idempotency_key", String(80), nullable=False, unique=True),  # the write's, fixed when filed
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("status", String(10), nullable=False),
    Column("decided_by", String(255)),
    Column("decided_role", String(20)),
    Column("decided_at", DateTime(timezone=True)),
    Column("decision_reason", Text),
    Column("outcome", String(10)),  # the write's, once approved: succeeded | failed | unknown, then settled
    Column("outcome_error", Text),
    Column("audit_id", Integer),  # the write's audit intent
    Index("ix_approval_requests_status", "status", "created_at"),
    Index("ix_approval_requests_organization", "organization_id", "created_at"),
    Index("ux_approval_requests_one_waiting", "organization_id", unique=True,
          postgresql_where=text("status = 'waiting'"), sqlite_where=text("status = 'waiting'")),
)


class AlreadyWaiting(Exception):
    """Another request for this organization is waiting."""


@dataclass(frozen=True)
class ApprovalRequest:
    id: str
    organization_id: str
    action: str
    kind: str
    parameters: dict[str, Any]
    summary: str
    at_stake_cents: int | None
    snapshot: dict[str, Any]
    reason: str
    requested_by: str
    requester_role: str
    requester_subject: str | None
    idempotency_key: str
    created_at: datetime
    expires_at: datetime
    status: str
    decided_by: str | None
    decided_role: str | None
    decided_at: datetime | None
    decision_reason: str | None
    outcome: str | None
    outcome_error: str | None
    audit_id: int | None

    @classmethod
    def of(cls, row: Row[Any]) -> ApprovalRequest:
        values = dict(row._mapping)
        for name in ("created_at", "expires_at", "decided_at"):
            values[name] = utc(values[name])
        values["parameters"] = json.loads(values["parameters"])
        values["snapshot"] = json.loads(values["snapshot"])
        return cls(**values)

    def expired_at(self, moment: datetime) -> bool:
        return self.status == WAITING and self.expires_at <= moment

    def asked_by(self, username: str, subject: str | None = None) -> bool:
        """Whether this person filed it: the same username, or (single sign-on) the same provider subject."""
        return self.requested_by == username or (bool(subject) and subject == self.requester_subject)


class ApprovalBook:
    def __init__(self, engine: Engine, clock: Callable[[], datetime] = now) -> None:
        self.engine, self.clock = engine, clock

    def file(self, *, organization_id: str, action: str, kind: str, parameters: dict[str, Any], summary: str,
             at_stake_cents: int | None, snapshot: dict[str, Any], reason: str, requested_by: str,
             requester_role: str, requester_subject: str | None, idempotency_key: str,
             expiry: timedelta) -> tuple[ApprovalRequest, bool, list[ApprovalRequest]]:
        """Files a waiting request; returns it, whether it is new (the same idempotency key again, a double
        click, returns the one filed), and the requests this call found expired (to be audited). Raises
        AlreadyWaiting when another request for the organization waits."""
        expired = self.expire_due()  # first, in its own transaction: an expired request no longer blocks
        try:
            with write_transaction(self.engine) as conn:
                existing = conn.execute(select(approval_requests).where(
                    approval_requests.c.idempotency_key == idempotency_key)).first()
                if existing is not None:
                    return ApprovalRequest.of(existing), False, expired
                moment = self.clock()
                request_id = uuid.uuid4().hex
                conn.execute(insert(approval_requests).values(
                    id=request_id, organization_id=organization_id, action=action, kind=kind,
                    parameters=json.dumps(parameters, sort_keys=True), summary=summary, at_stake_cents=at_stake_cents,
                    snapshot=json.dumps(snapshot, sort_keys=True, default=str), reason=reason,
                    requested_by=requested_by, requester_role=requester_role, requester_subject=requester_subject,
                    idempotency_key=idempotency_key, created_at=moment, expires_at=moment + expiry, status=WAITING))
                return ApprovalRequest.of(conn.execute(select(approval_requests).where(
                    approval_requests.c.id == request_id)).one()), True, expired
        except IntegrityError:  # rolled back: the key, or the organization's one waiting request, is taken
            same = self.by_key(idempotency_key)  # the same request, filed a moment ago by another replica
            if same is not None:
                return same, False, expired
            raise AlreadyWaiting() from None

    def by_key(self, idempotency_key: str) -> ApprovalRequest | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(approval_requests).where(
                approval_requests.c.idempotency_key == idempotency_key)).first()
        return ApprovalRequest.of(row) if row else None

    def get(self, request_id: str) -> ApprovalRequest | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(approval_requests).where(approval_requests.c.id == str(request_id)[:32])).first()
        return ApprovalRequest.of(row) if row else None

    def waiting(self, organization_id: str | None = None, *, past_expiry: bool = False) -> list[ApprovalRequest]:
        """Requests still waiting (and not past their expiry, unless `past_expiry`: those not yet marked
        expired too), oldest first."""
        conditions = [approval_requests.c.status == WAITING]
        if not past_expiry:
            conditions.append(approval_requests.c.expires_at > self.clock())
        if organization_id is not None:
            conditions.append(approval_requests.c.organization_id == organization_id)
        with self.engine.connect() as conn:
            rows = conn.execute(select(approval_requests).where(*conditions)
                                .order_by(approval_requests.c.created_at))
            return [ApprovalRequest.of(row) for row in rows]

    def recent(self, organization_id: str | None = None, limit: int = 50) -> list[ApprovalRequest]:
        """Requests, newest first (the decided ones with them)."""
        query = select(approval_requests).order_by(approval_requests.c.created_at.desc()).limit(limit)
        if organization_id is not None:
            query = query.where(approval_requests.c.organization_id == organization_id)
        with self.engine.connect() as conn:
            return [ApprovalRequest.of(row) for row in conn.execute(query)]

    def waiting_count(self, excluding_requester: str | None = None, excluding_subject: str | None = None) -> int:
        conditions = [approval_requests.c.status == WAITING, approval_requests.c.expires_at > self.clock()]
        if excluding_requester is not None:
            conditions.append(approval_requests.c.requested_by != excluding_requester)
        if excluding_subject:
            conditions.append(or_(approval_requests.c.requester_subject.is_(None),
                                  approval_requests.c.requester_subject != excluding_subject))
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(approval_requests).where(*conditions))
                       .scalar() or 0)

    def decide(self, request_id: str, status: str, by: str, role: str, reason: str | None) -> bool:
        """Moves a waiting, unexpired request to `status` (approved, rejected, withdrawn); False when it was no
        longer waiting (someone else decided, it was withdrawn) or has expired. One UPDATE: a race has one winner."""
        moment = self.clock()
        with self.engine.begin() as conn:
            return bool(conn.execute(update(approval_requests).where(
                approval_requests.c.id == request_id, approval_requests.c.status == WAITING,
                approval_requests.c.expires_at > moment).values(
                status=status, decided_by=by, decided_role=role, decided_at=moment,
                decision_reason=reason)).rowcount)

    def reopen(self, request_id: str, by: str) -> None:
        """Undoes `decide(..., APPROVED, by)` when nothing was sent (its audit row could not be stored)."""
        with self.engine.begin() as conn:
            conn.execute(update(approval_requests).where(
                approval_requests.c.id == request_id, approval_requests.c.status == APPROVED,
                approval_requests.c.decided_by == by, approval_requests.c.outcome.is_(None)).values(
                status=WAITING, decided_by=None, decided_role=None, decided_at=None, decision_reason=None))

    def record_outcome(self, request_id: str, outcome: str, error: str | None, audit_id: int | None) -> None:
        """The approved write's outcome, once: never over a settlement that came first."""
        with self.engine.begin() as conn:
            conn.execute(update(approval_requests).where(
                approval_requests.c.id == request_id, approval_requests.c.outcome.is_(None)).values(
                outcome=outcome, outcome_error=error, audit_id=audit_id))

    def settle_outcome(self, request_id: str, audit_id: int, note: str) -> bool:
        """A person re-read the customer of this approved request's write, whose outcome was unknown (its audit row
        `audit_id` is settled): the request says what they saw. From `unknown`, or from no outcome at all (the
        console died before it could record one); a second call changes nothing."""
        with self.engine.begin() as conn:
            moved = conn.execute(update(approval_requests).where(
                approval_requests.c.id == request_id, approval_requests.c.status == APPROVED,
                or_(approval_requests.c.outcome.is_(None), approval_requests.c.outcome == "unknown")).values(
                outcome="settled", outcome_error=note, audit_id=audit_id))
            return bool(moved.rowcount)

    def expire_due(self) -> list[ApprovalRequest]:
        """Waiting requests past their expiry become `expired`; returns those this call moved (each once). Looked
        for first without a write lock: pages ask on every run, and there is nearly never one."""
        with self.engine.connect() as conn:
            if conn.execute(select(approval_requests.c.id).where(
                    approval_requests.c.status == WAITING, approval_requests.c.expires_at <= self.clock())
                    .limit(1)).first() is None:
                return []
        with write_transaction(self.engine) as conn:
            return self._expire(conn, self.clock())

    def _expire(self, conn: Any, moment: datetime) -> list[ApprovalRequest]:
        """One guarded UPDATE … RETURNING: of two replicas sweeping at once, each row is returned to the one
        that moved it (PostgreSQL re-checks the WHERE after waiting for the other), so it is audited once."""
        due = and_(approval_requests.c.status == WAITING, approval_requests.c.expires_at <= moment)
        moved = conn.execute(update(approval_requests).where(due).values(status=EXPIRED, decided_at=moment)
                             .returning(*approval_requests.c))
        return [ApprovalRequest.of(row) for row in moved]
