"""Every desk operation as every role: allowed or refused, decided by the service itself.

The expected table is written out here, not derived from services/auth/roles.py, so a change to who may do
what has to change this file too. A refusal sends nothing to the API and leaves a "denied" audit row.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from sandbox.control_client import SandboxControl
from services.audit import AuditFilter, AuditLog, audit_rows
from services.approvals.policy import ApprovalPolicy
from services.approvals.store import ApprovalBook
from services.auth.roles import Action, Actor, PermissionDenied, Role
from services.desk import BillingDesk
from services.payments.client import PaymentsClient

ORG = "org_abc123"
SESSION = "cs_test_" + "a" * 40
Operation = Callable[[BillingDesk, Actor, dict[str, str]], Any]  # ids: a bulk job of the actor's, a request

OPERATIONS: dict[str, Operation] = {
    "customer": lambda desk, actor, _: desk.customer(actor, ORG),
    "plans": lambda desk, actor, _: desk.plans(actor, ORG),
    "unsettled_writes": lambda desk, actor, _: desk.unsettled_writes(actor, ORG),
    "organization_version": lambda desk, actor, _: desk.organization_version(actor, ORG),
    "start_bulk_job": lambda desk, actor, _: desk.start_bulk_job(actor, [ORG]),
    "bulk_jobs": lambda desk, actor, _: desk.bulk_jobs(actor),
    "bulk_job": lambda desk, actor, ids: desk.bulk_job(actor, ids["job"]),
    "stop_bulk_job": lambda desk, actor, ids: desk.stop_bulk_job(actor, ids["job"]),
    "bulk_job_export": lambda desk, actor, ids: desk.bulk_job_export(actor, ids["job"], "results", "csv"),
    "audit_events": lambda desk, actor, _: desk.audit_events(actor, AuditFilter()),
    "audit_choices": lambda desk, actor, _: desk.audit_choices(actor, "user"),
    "audit_csv": lambda desk, actor, _: desk.audit_csv(actor, AuditFilter()),
    "audit_page": lambda desk, actor, _: desk.audit_page(actor, AuditFilter()),
    "audit_export": lambda desk, actor, _: desk.audit_export(actor, AuditFilter()).close(),
    "audit_chain_status": lambda desk, actor, _: desk.audit_chain_status(actor),
    "send_portal_link": lambda desk, actor, _: desk.send_portal_link(actor, ORG, f"mail-{actor.role.value}"),
    "portal_links_sent": lambda desk, actor, _: desk.portal_links_sent(actor, ORG),
    "portal_link_refusal": lambda desk, actor, _: desk.portal_link_refusal(actor, ORG),
    "show_portal_link": lambda desk, actor, _: desk.show_portal_link(actor, ORG, f"portal-{actor.role.value}"),
    "create_checkout_link": lambda desk, actor, _: desk.create_checkout_link(
        actor, "org_none001", "price_StarterMonthly01", "prod_Starter0001", None, None, f"co-{actor.role.value}"),
    "process_checkout": lambda desk, actor, _: desk.process_checkout(actor, SESSION, "paid by phone",
                                                                     f"process-{actor.role.value}", ORG),
    "change_plan": lambda desk, actor, _: desk.change_plan(actor, ORG, "price_ScaleMonthly01", "prod_Scale0001",
                                                           "needs seats", f"change-{actor.role.value}"),
    "cancel_subscription": lambda desk, actor, _: desk.cancel_subscription(actor, ORG, "closing", ORG,
                                                                           f"cancel-{actor.role.value}"),
    "settle_unknown": lambda desk, actor, _: desk.settle_unknown(actor, 10_000, ORG),
    "approval_gate": lambda desk, actor, _: desk.approval_gate(actor, ORG, Action.CANCEL_SUBSCRIPTION,
                                                               desk.client.get_customer(ORG), None),
    "request_approval": lambda desk, actor, _: desk.request_approval(
        actor, Action.CANCEL_SUBSCRIPTION, ORG, "closing", f"request-{actor.role.value}", typed_organization_id=ORG),
    "requests_waiting_for": lambda desk, actor, _: desk.requests_waiting_for(actor, ORG),
    "approval_requests": lambda desk, actor, _: desk.approval_requests(actor),
    "waiting_for_me": lambda desk, actor, _: desk.waiting_for_me(actor),
    "review_request": lambda desk, actor, ids: desk.review_request(actor, ids["request"]),
    "approve_request": lambda desk, actor, ids: desk.approve_request(actor, ids["request"], "agreed"),
    "reject_request": lambda desk, actor, ids: desk.reject_request(actor, ids["request"], "not now"),
    "withdraw_request": lambda desk, actor, ids: desk.withdraw_request(actor, ids["request"]),
    "customer_history": lambda desk, actor, _: desk.customer_history(actor, ORG),
    "customer_bulk_lookups": lambda desk, actor, _: desk.customer_bulk_lookups(actor, ORG),
    "add_note": lambda desk, actor, _: desk.add_note(actor, ORG, "called them"),
    "search_customers": lambda desk, actor, _: desk.search_customers(actor, "abc"),
    "directory_size": lambda desk, actor, _: desk.directory_size(actor),
    "directory_export": lambda desk, actor, _: desk.directory_export(actor, "csv"),
    "forget_organization": lambda desk, actor, _: desk.forget_organization(actor, ORG, "asked to be forgotten"),
    "import_organizations": lambda desk, actor, _: desk.import_organizations(actor, [ORG]),
    "revenue_overview": lambda desk, actor, _: desk.revenue_overview(actor, date(2026, 11, 1), date(2026, 11, 30)),
    "revenue_ledger": lambda desk, actor, _: desk.revenue_ledger(actor, "2026-11", None, date(2026, 11, 1),
                                                                 date(2026, 11, 30)),
    "revenue_export": lambda desk, actor, _: desk.revenue_export(actor, "months", "csv", date(2026, 11, 1),
                                                                 date(2026, 11, 30)),
    "customer_mrr_history": lambda desk, actor, _: desk.customer_mrr_history(actor, ORG),
    "attention_list": lambda desk, actor, _: desk.attention_list(actor),
    "attention_export": lambda desk, actor, _: desk.attention_export(actor, "csv"),
}
SUPPORT_MAY = {"customer", "plans", "unsettled_writes", "organization_version", "start_bulk_job", "bulk_jobs",
               "bulk_job", "stop_bulk_job", "bulk_job_export", "send_portal_link", "portal_links_sent",
               "portal_link_refusal", "create_checkout_link",
               "approval_gate", "requests_waiting_for", "waiting_for_me", "customer_history", "customer_bulk_lookups",
               "add_note", "search_customers", "directory_size", "customer_mrr_history", "attention_list",
               "attention_export"}
# Variants a role's operation may still refuse: everyone's jobs (admin), a job's finance summary (finance, admin).
VARIANTS: dict[str, tuple[Operation, set[Role]]] = {
    "bulk_jobs of everyone": (lambda desk, actor, _: desk.bulk_jobs(actor, everyone=True), {Role.ADMIN}),
    "bulk_job_export summary": (lambda desk, actor, ids: desk.bulk_job_export(actor, ids["job"], "summary", "csv"),
                                {Role.FINANCE, Role.ADMIN}),
}
ADMIN_ONLY = {"forget_organization", "import_organizations"}
ALLOWED: dict[Role, set[str]] = {Role.SUPPORT: SUPPORT_MAY, Role.FINANCE: set(OPERATIONS) - ADMIN_ONLY,
                                 Role.ADMIN: set(OPERATIONS)}


def test_the_table_names_every_operation_of_the_desk() -> None:
    public = {name for name, member in inspect.getmembers(BillingDesk, inspect.isfunction)
              if not name.startswith("_")}
    assert public == set(OPERATIONS)


@pytest.fixture
def desk(client: PaymentsClient, store_url: str) -> BillingDesk:
    audit = AuditLog(store_url)  # the default policy: cancel and downgrade wait for a second person
    return BillingDesk(client, audit, policy=ApprovalPolicy(), approvals=ApprovalBook(audit.engine))


def _ids(desk: BillingDesk, actor: Actor) -> dict[str, str]:
    """A bulk job of the actor's and a waiting request of someone else's (neither leaves an audit row)."""
    request, _, _ = desk.approvals.file(
        organization_id="org_other001", action="cancel subscription", kind="cancel", parameters={}, summary="Cancel",
        at_stake_cents=17_900, snapshot={}, reason="asked", requested_by="someone-else", requester_role="finance",
        requester_subject=None, idempotency_key=f"other-{actor.role.value}", expiry=ApprovalPolicy().expiry)
    return {"job": desk.jobs.create(actor.username, actor.role.value, [ORG]), "request": request.id}


def test_every_permission_fits_the_audit_log() -> None:
    """A refusal is recorded under the permission's name: one longer than the column would be lost on PostgreSQL."""
    assert [action.value for action in Action if len(action.value) > audit_rows.c.action.type.length] == []


@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.value)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_each_role_may_do_exactly_its_operations(desk: BillingDesk, control: SandboxControl, role: Role,
                                                 operation: str) -> None:
    actor = Actor(f"someone-{role.value}", role)
    lookup = _ids(desk, actor)
    before = control.stats()["requests"]
    if operation in ALLOWED[role]:
        try:
            OPERATIONS[operation](desk, actor, lookup)
        except PermissionDenied:  # pragma: no cover - the failure this test exists for
            pytest.fail(f"{role.value} was refused {operation}")
        except Exception:
            pass  # allowed: what the API or the store then says (a made-up session id, no such row) is not a role matter
        return
    with pytest.raises(PermissionDenied):
        OPERATIONS[operation](desk, actor, lookup)
    assert control.stats()["requests"] == before, "a refused operation sent nothing"
    denied = desk.audit.events()
    assert list(denied.outcome) == ["denied"] and list(denied.user) == [actor.username]


@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.value)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_everyone_s_jobs_and_the_finance_summary_are_for_their_roles(desk: BillingDesk, role: Role,
                                                                    variant: str) -> None:
    actor = Actor(f"someone-{role.value}", role)
    job_id = _ids(desk, actor)
    operation, roles = VARIANTS[variant]
    if role in roles:
        operation(desk, actor, job_id)
        return
    with pytest.raises(PermissionDenied):
        operation(desk, actor, job_id)
    assert list(desk.audit.events().outcome) == ["denied"]
