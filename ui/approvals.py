"""Four-eyes approvals on screen: the notice on a customer's pages while a request waits, and the pieces of the
Approvals page (the waiting list, one request under review with its customer re-read now)."""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from services.approvals.store import APPROVED, WAITING, ApprovalRequest
from services.auth.roles import Action, Actor, allowed
from services.desk import BillingDesk, RequestReview
from services.formatting import day
from services.tables import plan_name

from . import guard, reads
from .present import escape_markdown, short_id
from .widgets import show_error

STATUS_LABELS = {"waiting": "Waiting", "approved": "Approved", "rejected": "Rejected", "withdrawn": "Withdrawn",
                 "expired": "Expired"}


def when(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%d %b %Y, %H:%M UTC") if moment else "—"


@guard.callback
def _withdraw(desk: BillingDesk, request_id: str, actor: Actor) -> None:
    try:
        desk.withdraw_request(actor, request_id)
    except Exception as problem:
        st.session_state["approval_problem"] = problem
    else:
        reads.forget_reads()


def waiting_notice(desk: BillingDesk, actor: Actor, organization_id: str) -> list[ApprovalRequest]:
    """Says, on the Customer and Subscription pages, that a request on this organization waits for a second
    approver: what, who asked and when; the requester may withdraw it, an approver may open it. Returns them."""
    try:
        waiting = desk.requests_waiting_for(actor, organization_id)
    except Exception as problem:
        show_error(problem, "check for approval requests")
        return []
    problem = st.session_state.pop("approval_problem", None)
    if problem is not None:
        show_error(problem, "withdraw the request")
    for request in waiting:
        with st.container(border=True, horizontal=True, vertical_alignment="center"):
            st.warning(f"**Waiting for a second approver** ({desk.policy.approvers_text}): "
                       f"{escape_markdown(request.summary)}  \nAsked by **{escape_markdown(request.requested_by)}** on "
                       f"{when(request.created_at)}: “{escape_markdown(request.reason)}”. Expires "
                       f"{when(request.expires_at)}.", icon=":material/hourglass_top:", width="stretch")
            if request.asked_by(actor.username, actor.subject):
                st.button("Withdraw", key=f"withdraw_{request.id}", icon=":material/undo:", on_click=_withdraw,
                          args=(desk, request.id), help="Take the request back; nothing is sent.")
            elif allowed(actor.role, Action.APPROVE_REQUESTS) and desk.policy.may_approve(actor.role):
                st.page_link("pages/approvals.py", label="Review", icon=":material/fact_check:",
                             query_params={"request": request.id})
    return waiting


def requests_frame(requests: list[ApprovalRequest]) -> pd.DataFrame:
    return pd.DataFrame([{
        "request": short_id(request.id), "organization": request.organization_id, "what": request.summary,
        "asked_by": request.requested_by, "asked_at": request.created_at, "reason": request.reason,
        "expires_at": request.expires_at, "status": STATUS_LABELS.get(request.status, request.status),
        "decided_by": request.decided_by or "", "outcome": request.outcome or "",
    } for request in requests], columns=["request", "organization", "what", "asked_by", "asked_at", "reason",
                                         "expires_at", "status", "decided_by", "outcome"])


REQUEST_COLUMNS = {
    "request": st.column_config.TextColumn("Request", width="small"),
    "organization": "Organization", "what": st.column_config.TextColumn("What it will do", width="large"),
    "asked_by": "Asked by", "asked_at": st.column_config.DatetimeColumn("Asked (UTC)", format="D MMM, HH:mm"),
    "reason": st.column_config.TextColumn("Reason", width="medium"),
    "expires_at": st.column_config.DatetimeColumn("Expires (UTC)", format="D MMM, HH:mm"),
    "status": "Status", "decided_by": "Decided by", "outcome": "Write",
}


def request_facts(review: RequestReview) -> None:
    request = review.request
    st.markdown(f"**{escape_markdown(request.summary)}**")
    st.markdown(f"Asked by **{escape_markdown(request.requested_by)}** ({request.requester_role}) on "
                f"{when(request.created_at)}: “{escape_markdown(request.reason)}”  \n"
                f"Status **{STATUS_LABELS.get(request.status, request.status)}**"
                + (f" · expires {when(request.expires_at)}" if request.status == WAITING else "")
                + (f" · {request.status} by **{escape_markdown(request.decided_by)}** on {when(request.decided_at)}"
                   if request.decided_by and request.status != WAITING else "")
                + (f": “{escape_markdown(request.decision_reason)}”" if request.decision_reason else ""))
    if request.status == APPROVED and request.outcome:
        detail = escape_markdown(request.outcome_error) if request.outcome_error else ""
        said = {"succeeded": (st.success, "The write succeeded."),
                "failed": (st.error, f"The write failed: {detail}" if detail else "The write failed."),
                "unknown": (st.warning, "The write's outcome is unknown: re-read the customer on the Subscription "
                                        "page before anything else" + (f": {detail}" if detail else ".")),
                # the outcome's text is then who re-read it and what they saw ("fiona: status active, plan Growth")
                "settled": (st.info, f"The write's outcome was unknown until the customer was re-read by {detail}.")}
        show, sentence = said.get(request.outcome, (st.info, f"The write: {request.outcome}."))
        show(sentence)


def customer_now(review: RequestReview) -> None:
    """The customer as the API says now, beside the request: what will change."""
    if review.customer is None:
        show_error(review.read_error or RuntimeError("no answer"), "re-read the customer")
        return
    customer = review.customer
    subscription = customer.subscription
    with st.container(border=True):
        st.caption("The customer now (read from the Payments API as this page opened)")
        name, status, plan, period = st.columns(4)
        name.markdown(f":gray[:small[Organization]]  \n{escape_markdown(customer.display_name)}")
        status.markdown(f":gray[:small[Status]]  \n{escape_markdown(customer.status)}"
                        + (" · cancelling" if subscription and subscription.cancel_at_period_end else ""))
        plan.markdown(f":gray[:small[Plan]]  \n{escape_markdown(plan_name(customer, None) or 'No plan')}")
        period.markdown(f":gray[:small[Period ends]]  \n{day(subscription.current_period_end) if subscription else '—'}")
    if review.stale:
        st.error(f"Stale: {escape_markdown(review.stale)}. This request can't be approved; reject it, and the "
                 "requester can ask again if the change is still wanted.", icon=":material/sync_problem:")
