"""Approvals: the cancellations and downgrades waiting for a second person. Opening one re-reads its customer;
approving makes the write at once with the request's idempotency key and shows the customer after it."""

from __future__ import annotations

import streamlit as st

from services.approvals.store import WAITING
from services.auth.roles import Page
from ui import reads, session
from ui.approvals import REQUEST_COLUMNS, customer_now, request_facts, requests_frame
from ui.console import get_console
from ui.present import escape_markdown, short_id
from ui.widgets import show_error, stop_on_read_error

actor = session.require_page(Page.APPROVALS)
desk = get_console().desk
policy = desk.policy

st.title("Approvals")
held = " and ".join(sorted(policy.kinds)) or "nothing (approvals are off)"
st.caption(f"Writes that lose revenue wait here for a second person: {held}"
           + (f" putting at least ${policy.threshold_cents / 100:,.2f} a month at stake" if policy.threshold_cents else "")
           + f". Approved by {policy.approvers_text}, never by the person who asked; a request expires after "
           f"{policy.expiry.total_seconds() / 3600:g} hours.")

try:
    waiting = desk.approval_requests(actor)
except Exception as problem:
    stop_on_read_error(problem, "read the approval requests")

outcome = st.session_state.pop("approval_outcome", None)
if outcome:
    (st.success if outcome["ok"] else st.error)(outcome["text"], icon=":material/task_alt:" if outcome["ok"]
                                                else ":material/error:")

mine = sum(request.asked_by(actor.username, actor.subject) for request in waiting)
st.subheader(f"Waiting ({len(waiting):,})")
if waiting:
    st.caption("Select a request to review it." + (f" {mine} of them you asked for; a second person decides "
                                                     "those." if mine else ""))
    # Keyed on the ids listed: a selection is a row position, so a list that changed starts unselected.
    listed = "-".join(short_id(request.id) or "" for request in waiting)
    chosen = st.dataframe(requests_frame(waiting), hide_index=True, width="stretch",
                          key=f"approvals_waiting_{listed}", on_select="rerun",
                          selection_mode="single-row", column_config=REQUEST_COLUMNS,
                          column_order=["request", "organization", "what", "asked_by", "asked_at", "reason",
                                        "expires_at"])
    rows = chosen.selection.rows if chosen else []
    if rows and waiting[rows[0]].id != st.query_params.get("request"):
        st.query_params["request"] = waiting[rows[0]].id
else:
    st.info("Nothing is waiting for approval.", icon=":material/done_all:")

opened = st.query_params.get("request")
if opened:
    st.divider()
    try:
        review = desk.review_request(actor, opened)
    except Exception as problem:
        show_error(problem, "open the request")
        st.stop()
    request = review.request
    st.subheader(f"Request {short_id(request.id)}: {request.kind} of {escape_markdown(request.organization_id)}")
    request_facts(review)
    customer_now(review)
    if request.status == WAITING and review.mine:
        st.info("You asked for this change, so a second person must decide it. You can withdraw it from the "
                "customer's page.", icon=":material/person:")
    elif request.status == WAITING and policy.may_approve(actor.role):
        with st.form("decide_request", enter_to_submit=False):
            reason = st.text_area("Your reason", key=f"decision_reason_{request.id}", max_chars=500,
                                  placeholder="e.g. Confirmed with the customer by phone.",
                                  help="Required. Recorded in the audit log with your name, beside the request.")
            approve, reject = st.columns(2)
            approved = approve.form_submit_button("Approve and make the change", type="primary", width="stretch",
                                                  icon=":material/gavel:", disabled=bool(review.stale))
            rejected = reject.form_submit_button("Reject", width="stretch", icon=":material/block:")
        if approved or rejected:
            try:
                if approved:
                    result = desk.approve_request(actor, request.id, reason)
                    after = result.customer
                    text = (f"Approved: {request.summary} The customer now reads "
                            f"{after.status if after else 'as before (the re-read failed; refresh)'}"
                            + (", cancelling at period end." if after and after.subscription
                               and after.subscription.cancel_at_period_end else "."))
                else:
                    desk.reject_request(actor, request.id, reason)
                    text = f"Rejected: nothing was sent for {request.organization_id}."
            except Exception as problem:
                show_error(problem, "approve the request" if approved else "reject the request")
            else:
                st.session_state["approval_outcome"] = {"ok": True, "text": escape_markdown(text)}
                reads.forget_reads()
                st.rerun()

with st.expander("Recent requests, decided ones too", icon=":material/history:"):
    try:
        recent = desk.approval_requests(actor, decided=True)
    except Exception as problem:
        show_error(problem, "read the approval requests")
    else:
        st.dataframe(requests_frame(recent), hide_index=True, width="stretch", column_config=REQUEST_COLUMNS)
