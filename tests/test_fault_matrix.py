"""Each of the seven operations under each fault: a clear error naming the operation, no write repeated,
the audit row recording the failure, and the same action working once the fault clears."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from sandbox.control_client import SandboxControl
from services.audit import AuditLog
from services.auth.roles import Actor
from services.desk import BillingDesk, WriteOutcomeUnknown
from services.payments.client import PaymentsClient
from services.payments.errors import (ApiConnectionError, AuthenticationError, PaymentsError, RateLimitError,
                                      ServerError)
from services.auth.roles import Role

ADMIN = Actor("ada", Role.ADMIN)
FAULTS: dict[str, dict[str, Any]] = {
    "hang": {"hangSeconds": 2.0, "count": 2},  # twice the client's read timeout below
    "500": {"status": 500, "count": 3},
    "503": {"status": 503, "count": 3},
    "429 storm": {"status": 429, "count": 3},
    "malformed JSON": {"malformed": True, "count": 1},
    "key revoked": {"status": 401, "code": "api_key_revoked", "count": 1},
    "connection refused": {},
}
EXPECTED: dict[str, type[PaymentsError]] = {
    "500": ServerError, "503": ServerError, "429 storm": RateLimitError, "key revoked": AuthenticationError,
    "connection refused": ApiConnectionError,
}
OPERATIONS = ["subscription-plans", "customer-info", "subscription-checkout", "subscription-process",
              "subscription-update", "subscription-cancel", "customer-portal"]
WRITES = {"subscription-checkout": "checkout", "subscription-process": "process", "subscription-update": "update",
          "subscription-cancel": "cancel", "customer-portal": "portal"}


def _operation(desk: BillingDesk, control: SandboxControl, name: str) -> Callable[[str], Any]:
    fresh = control.organizations("none")[0]["id"]
    if name == "subscription-plans":
        return lambda key: desk.plans(ADMIN, "org_abc123")
    if name == "customer-info":
        return lambda key: desk.customer(ADMIN, "org_abc123")
    if name == "subscription-checkout":
        return lambda key: desk.create_checkout_link(ADMIN, fresh, "price_StarterMonthly01", "prod_Starter0001",
                                                     None, None, key)
    if name == "subscription-process":
        link = desk.client.create_checkout(fresh, "price_StarterMonthly01", "prod_Starter0001")
        control.pay(link.url)
        return lambda key: desk.process_checkout(ADMIN, link.checkout_session_id or "", "paid", key)
    if name == "subscription-update":
        return lambda key: desk.change_plan(ADMIN, "org_abc123", "price_ScaleMonthly01", "prod_Scale0001", "more", key)
    if name == "subscription-cancel":
        return lambda key: desk.cancel_subscription(ADMIN, "org_abc123", "closing", "org_abc123", key)
    return lambda key: desk.show_portal_link(ADMIN, "org_abc123", key)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("operation", OPERATIONS)
def test_operation_under_fault(sandbox, control: SandboxControl, tmp_path: Path, operation: str, fault: str) -> None:
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    # A read timeout of 1 s: only the hang should time out, not a slow answer on a busy machine (at 0.5 s a
    # 429 storm once ended in a timeout under the full suite).
    healthy = PaymentsClient(sandbox.base_url, sandbox.api_key, timeout=(1.0, 1.0), backoff_factor=0.05,
                             retry_after_cap=2)
    action = _operation(BillingDesk(healthy, audit), control, operation)
    if fault == "connection refused":
        faulty = BillingDesk(PaymentsClient("http://127.0.0.1:9/api/v1", sandbox.api_key, timeout=(0.5, 0.5),
                                            backoff_factor=0.01), audit)
        action_under_fault = _operation(faulty, control, operation) if operation != "subscription-process" else (
            lambda key: faulty.process_checkout(ADMIN, "cs_test_unreachable", "paid", key))
    else:
        control.add_fault(operation, **FAULTS[fault])
        action_under_fault = action
    key = f"intent-{operation}-{fault}".replace(" ", "-")
    with pytest.raises(PaymentsError) as failed:
        action_under_fault(key)
    error = failed.value
    assert error.user_message and "Traceback" not in error.user_message
    assert sandbox.api_key not in str(error) and sandbox.api_key not in error.user_message
    if fault in EXPECTED:
        assert isinstance(error, EXPECTED[fault]), type(error)
    if operation in WRITES:
        assert len([m for m in control.mutations(WRITES[operation]) if m["idempotency_key"] == key]) <= 1
        row = audit.events().iloc[0]
        assert row.outcome in ("failed", "unknown") and row.error
        if isinstance(error, WriteOutcomeUnknown):
            assert row.outcome == "unknown" and "Re-read the customer" in error.user_message
    control.clear_faults()
    control.advance_clock(seconds=0)
    result = action(key)  # the same action, same intent, once the fault has cleared
    assert result is not None or operation == "subscription-cancel"
    if operation in WRITES:
        assert len([m for m in control.mutations(WRITES[operation]) if m["idempotency_key"] == key]) == 1
        assert audit.events().iloc[0].outcome == "succeeded" and len(audit.events()) == 1
