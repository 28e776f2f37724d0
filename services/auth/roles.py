"""Who may do what. Enforced in the service layer (services/desk/ asks here); the menu only mirrors it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(str, Enum):
    SUPPORT = "support"
    FINANCE = "finance"
    ADMIN = "admin"


class Action(str, Enum):
    VIEW_PLANS = "view plans"
    LOOK_UP_CUSTOMER = "look up customer"
    CREATE_CHECKOUT_LINK = "create checkout link"
    SEND_PORTAL_LINK = "send a portal link to the customer"
    SHOW_PORTAL_LINK = "see a portal link"  # and then only if the policy lets them cancel without a second person
    PROCESS_CHECKOUT = "process checkout"
    CHANGE_PLAN = "change plan"
    CANCEL_SUBSCRIPTION = "cancel subscription"
    READ_AUDIT_LOG = "read audit log"
    BULK_LOOKUP = "bulk lookup"
    SETTLE_UNKNOWN_OUTCOME = "settle an unknown outcome"
    SEE_ALL_BULK_JOBS = "see everyone's bulk lookups"
    FINANCE_SUMMARY = "see the finance summary"
    APPROVE_REQUESTS = "approve or reject a request"
    VIEW_CUSTOMER_HISTORY = "see a customer's history"
    ADD_NOTE = "add a note on a customer"
    EXPORT_DIRECTORY = "export the customer directory"
    MANAGE_DIRECTORY = "manage the customer directory"  # import ids into it, forget an organization
    SEE_REVENUE = "see revenue over time"  # the Revenue page: MRR, movements, churn, cohorts; its exports


class Page(str, Enum):
    CUSTOMER = "customer"
    BULK = "bulk"
    PLANS = "plans"
    SUBSCRIPTION = "subscription"
    AUDIT = "audit"
    APPROVALS = "approvals"
    REVENUE = "revenue"
    ATTENTION = "attention"


_SUPPORT = frozenset({Action.VIEW_PLANS, Action.LOOK_UP_CUSTOMER, Action.CREATE_CHECKOUT_LINK,
                      Action.SEND_PORTAL_LINK, Action.BULK_LOOKUP, Action.VIEW_CUSTOMER_HISTORY, Action.ADD_NOTE})
_FINANCE = _SUPPORT | {Action.PROCESS_CHECKOUT, Action.CHANGE_PLAN, Action.CANCEL_SUBSCRIPTION, Action.READ_AUDIT_LOG,
                       Action.SHOW_PORTAL_LINK,
                       Action.SETTLE_UNKNOWN_OUTCOME, Action.FINANCE_SUMMARY, Action.APPROVE_REQUESTS,
                       Action.EXPORT_DIRECTORY, Action.SEE_REVENUE}
PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.SUPPORT: _SUPPORT,
    Role.FINANCE: _FINANCE,
    Role.ADMIN: frozenset(Action),
}
# A page is open to a role when the role may take the action the page exists for.
PAGE_ACTIONS: dict[Page, Action] = {
    Page.CUSTOMER: Action.LOOK_UP_CUSTOMER,
    Page.BULK: Action.BULK_LOOKUP,
    Page.PLANS: Action.VIEW_PLANS,
    Page.SUBSCRIPTION: Action.CHANGE_PLAN,
    Page.AUDIT: Action.READ_AUDIT_LOG,
    Page.APPROVALS: Action.APPROVE_REQUESTS,
    Page.REVENUE: Action.SEE_REVENUE,
    Page.ATTENTION: Action.LOOK_UP_CUSTOMER,
}


@dataclass(frozen=True)
class Actor:
    """The signed-in person an operation is done for: every desk operation takes one."""

    username: str  # the users file's username, or the identity provider's email
    role: Role
    subject: str | None = None  # the identity provider's stable id for the person (single sign-on only)


class PermissionDenied(Exception):
    def __init__(self, role: str | None, action: Action) -> None:
        super().__init__(f"The {role or 'unknown'} role may not {action.value}.")
        self.role, self.action = role, action

    @property
    def user_message(self) -> str:
        return f"Your role ({self.role or 'none'}) may not {self.action.value}. Ask a finance lead or an admin."


def parse_role(value: object) -> Role | None:
    try:
        return Role(str(value).strip().lower()) if value is not None else None
    except ValueError:
        return None


def allowed(role: Role | str | None, action: Action) -> bool:
    parsed = role if isinstance(role, Role) else parse_role(role)
    return parsed is not None and action in PERMISSIONS[parsed]


def require(role: Role | str | None, action: Action) -> None:
    if not allowed(role, action):
        raise PermissionDenied(role.value if isinstance(role, Role) else role, action)


def pages_for(role: Role | str | None) -> list[Page]:
    return [page for page, action in PAGE_ACTIONS.items() if allowed(role, action)]
