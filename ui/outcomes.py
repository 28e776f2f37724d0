"""What the Subscription page says about writes: the last write's result as re-read afterwards, and any
write whose outcome is unknown (the API never answered), with a button to settle it by re-reading."""

from __future__ import annotations

import streamlit as st

from services.auth.roles import Action, Actor, allowed
from services.desk import BillingDesk, WriteResult
from services.formatting import customer_notices, day

from . import guard, reads
from .present import escape_markdown
from .widgets import show_error


def write_notices(desk: BillingDesk, actor: Actor, organization_id: str) -> None:
    """In one container, so notices that come and go don't move what follows (an open tab would reset)."""
    notices = st.container()
    outcome = st.session_state.get("write_result")
    if outcome and outcome["organization_id"] == organization_id:
        with notices.container(border=True):
            _last_write(outcome["headline"], outcome["result"])
    try:
        unsettled = desk.unsettled_writes(actor, organization_id)
    except Exception as problem:
        show_error(problem, "read the audit log for unfinished writes")
        return
    may_settle = allowed(actor.role, Action.SETTLE_UNKNOWN_OUTCOME)
    for row in unsettled:
        with notices.container(border=True):
            st.warning(f"Outcome unknown: {escape_markdown(row['action'])} by {escape_markdown(row['user'])} "
                       f"at {row['at']:%d %b %H:%M} UTC was interrupted before the API answered.")
            if may_settle and st.button("Re-read the customer to settle it", key=f"settle_{row['id']}"):
                try:
                    reads.forget_reads()
                    desk.settle_unknown(actor, row["id"], organization_id)
                except Exception as problem:
                    show_error(problem, "re-read the customer")
                else:
                    st.rerun()


def _last_write(headline: str, result: WriteResult) -> None:
    st.success(escape_markdown(headline), icon=":material/check_circle:")
    if result.customer is not None:
        after = result.customer
        sub = after.subscription
        st.markdown(f"**Now:** {escape_markdown(sub.plan_name if sub and sub.plan_name else 'no plan')} · "
                    f"{escape_markdown(after.status.replace('_', ' '))} · period ends "
                    f"{escape_markdown(day(sub.current_period_end if sub else None))}")
        for _, sentence in customer_notices(after):
            st.caption(escape_markdown(sentence))
    elif result.reread_error is not None:
        show_error(result.reread_error, "re-read the customer after the change")
    st.button("Dismiss", on_click=_dismiss)


@guard.callback
def _dismiss() -> None:
    st.session_state.pop("write_result", None)
