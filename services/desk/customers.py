"""Reading a customer and its plans (each read's role checked; a refusal is audited)."""

from __future__ import annotations

from typing import Any

from ..audit import reading
from ..auth.roles import Action, Actor
from ..payments import validation
from ..payments.models import CustomerInfo, PlanCatalog
from .core import DeskCore


class CustomerReads(DeskCore):
    """A customer as the API has it now, its plans, and the audit log's word on it."""

    def customer(self, actor: Actor, organization_id: str) -> CustomerInfo:
        self._authorize(actor, Action.LOOK_UP_CUSTOMER, organization_id)
        return self._read_customer(organization_id)

    def plans(self, actor: Actor, organization_id: str) -> PlanCatalog:
        self._authorize(actor, Action.VIEW_PLANS, organization_id)
        return self.client.list_plans(organization_id)

    def organization_version(self, actor: Actor, organization_id: str) -> int | None:
        """Changes whenever any replica records a write on this organization (the newest audit row about it):
        cached reads are keyed on it, so a write on one replica is seen at once on every other."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER, organization_id)
        return self.audit.organization_version(organization_id)

    def unsettled_writes(self, actor: Actor, organization_id: str) -> list[dict[str, Any]]:
        """Writes on this organization whose outcome is unknown and that nobody has re-read yet."""
        self._authorize(actor, Action.LOOK_UP_CUSTOMER, organization_id)
        organization_id = validation.organization_id(organization_id)
        with reading():
            return self.audit.unsettled(organization_id)
