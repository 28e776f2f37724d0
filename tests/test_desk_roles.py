"""Every desk operation as every role: allowed or refused, decided by the service itself.

The expected table is written out here, not derived from services/auth/roles.py, so a change to who may do
what has to change this file too. A refusal sends nothing to the API and leaves a "denied" audit row.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.control_client import SandboxControl
from services.audit import AuditFilter, AuditLog
from services.auth.roles import Actor, PermissionDenied, Role
from services.desk import BillingDesk
from services.payments.client import PaymentsClient

ORG = "org_abc123"
SESSION = "cs_test_" + "a" * 40
Operation = Callable[[BillingDesk, Actor, str], Any]  # the str: a bulk job of the actor's

OPERATIONS: dict[str, Operation] = {
    "customer": lambda desk, actor, _: desk.customer(actor, ORG),
    "plans": lambda desk, actor, _: desk.plans(actor, ORG),
    "unsettled_writes": lambda desk, actor, _: desk.unsettled_writes(actor, ORG),
    "organization_version": lambda desk, actor, _: desk.organization_version(actor, ORG),
    "start_bulk_job": lambda desk, actor, _: desk.start_bulk_job(actor, [ORG]),
    "bulk_jobs": lambda desk, actor, _: desk.bulk_jobs(actor),
    "bulk_job": lambda desk, actor, job_id: desk.bulk_job(actor, job_id),
    "stop_bulk_job": lambda desk, actor, job_id: desk.stop_bulk_job(actor, job_id),
    "bulk_job_export": lambda desk, actor, job_id: desk.bulk_job_export(actor, job_id, "results", "csv"),
    "audit_events": lambda desk, actor, _: desk.audit_events(actor, AuditFilter()),
    "audit_choices": lambda desk, actor, _: desk.audit_choices(actor, "user"),
    "audit_csv": lambda desk, actor, _: desk.audit_csv(actor, AuditFilter()),
    "audit_page": lambda desk, actor, _: desk.audit_page(actor, AuditFilter()),
    "audit_export": lambda desk, actor, _: desk.audit_export(actor, AuditFilter()).close(),
    "audit_chain_status": lambda desk, actor, _: desk.audit_chain_status(actor),
    "create_portal_link": lambda desk, actor, _: desk.create_portal_link(actor, ORG, f"portal-{actor.role.value}"),
    "create_checkout_link": lambda desk, actor, _: desk.create_checkout_link(
        actor, "org_none001", "price_StarterMonthly01", "prod_Starter0001", None, None, f"co-{actor.role.value}"),
    "process_checkout": lambda desk, actor, _: desk.process_checkout(actor, SESSION, "paid by phone",
                                                                     f"process-{actor.role.value}", ORG),
    "change_plan": lambda desk, actor, _: desk.change_plan(actor, ORG, "price_ScaleMonthly01", "prod_Scale0001",
                                                           "needs seats", f"change-{actor.role.value}"),
    "cancel_subscription": lambda desk, actor, _: desk.cancel_subscription(actor, ORG, "closing", ORG,
                                                                           f"cancel-{actor.role.value}"),
    "settle_unknown": lambda desk, actor, _: desk.settle_unknown(actor, 10_000, ORG),
}
SUPPORT_MAY = {"customer", "plans", "unsettled_writes", "organization_version", "start_bulk_job", "bulk_jobs",
               "bulk_job", "stop_bulk_job", "bulk_job_export", "create_portal_link", "create_checkout_link"}
# Variants a role's operation may still refuse: everyone's jobs (admin), a job's finance summary (finance, admin).
VARIANTS: dict[str, tuple[Operation, set[Role]]] = {
    "bulk_jobs of everyone": (lambda desk, actor, _: desk.bulk_jobs(actor, everyone=True), {Role.ADMIN}),
    "bulk_job_export summary": (lambda desk, actor, job_id: desk.bulk_job_export(actor, job_id, "summary", "csv"),
                                {Role.FINANCE, Role.ADMIN}),
}
ALLOWED: dict[Role, set[str]] = {Role.SUPPORT: SUPPORT_MAY, Role.FINANCE: set(OPERATIONS), Role.ADMIN: set(OPERATIONS)}


def test_the_table_names_every_operation_of_the_desk() -> None:
    public = {name for name, member in inspect.getmembers(BillingDesk, inspect.isfunction)
              if not name.startswith("_")}
    assert public == set(OPERATIONS)


@pytest.fixture
def desk(client: PaymentsClient, store_url: str) -> BillingDesk:
    return BillingDesk(client, AuditLog(store_url))


@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.value)
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_each_role_may_do_exactly_its_operations(desk: BillingDesk, control: SandboxControl, role: Role,
                                                 operation: str) -> None:
    actor = Actor(f"someone-{role.value}", role)
    lookup = desk.jobs.create(actor.username, actor.role.value, [ORG])  # a job of theirs (no audit row)
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
    job_id = desk.jobs.create(actor.username, actor.role.value, [ORG])
    operation, roles = VARIANTS[variant]
    if role in roles:
        operation(desk, actor, job_id)
        return
    with pytest.raises(PermissionDenied):
        operation(desk, actor, job_id)
    assert list(desk.audit.events().outcome) == ["denied"]
