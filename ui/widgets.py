"""Widgets every page shares: errors, badges, field rows, the once-only link panel."""

from __future__ import annotations

import logging

import streamlit as st

from services import intents
from services.audit import AuditUnavailable
from .present import escape_markdown, markdown_literal, status_style
from services.auth.roles import PermissionDenied
from services.inputs import InputRefused
from services.payments.errors import InvalidInputError, PaymentsError
from services.payments.models import CustomerInfo, SessionLink

from . import guard, reads

log = logging.getLogger("billing_desk.ui")


def show_error(error: BaseException, doing: str) -> None:
    """One clear sentence: what failed and what to do. Never a traceback, never a URL or key."""
    # Shown literally: the console's own sentences may name a person or a status (markdown_literal); the API's
    # may hold anything, addresses included (escape_markdown).
    if isinstance(error, (InvalidInputError, InputRefused)):
        st.error(markdown_literal(error.user_message), icon=":material/edit:")
    elif isinstance(error, PermissionDenied):
        st.error(markdown_literal(error.user_message), icon=":material/lock:")
    elif isinstance(error, AuditUnavailable):
        st.error(markdown_literal(error.user_message), icon=":material/history:")
    elif isinstance(error, PaymentsError):
        st.error(f"Couldn't {doing}. {escape_markdown(error.user_message)}", icon=":material/error:")
        if error.request_id:
            st.caption(f"Request id for the engineering team: {error.request_id}")
    else:
        log.exception("Unexpected error while trying to %s", doing)
        st.error(f"Couldn't {doing}: something unexpected went wrong in Billing Desk. Try again; if it "
                 "persists, tell the engineering team.", icon=":material/error:")


def stop_on_read_error(error: BaseException, doing: str) -> None:
    """A page that can't show anything without this read: the error, a way to try again, and nothing else."""
    show_error(error, doing)
    if st.button("Try again", key="retry_read", icon=":material/refresh:"):
        reads.forget_reads()
        st.rerun()
    st.stop()


def status_badge(customer: CustomerInfo) -> None:
    label, colour = status_style(customer.status)
    st.badge(label, color=colour)  # type: ignore[arg-type]


def field(label: str, value: object) -> None:
    """A label over a value, the value shown literally (API data may contain markdown or HTML)."""
    st.caption(label)
    st.markdown(escape_markdown(value) if value not in (None, "") else "—")


def remember_fresh_link(kind: str, organization_id: str, link: SessionLink,
                        intent: tuple[str, dict[str, str]]) -> None:
    """Keeps a just-created link in this person's session for `fresh_link_panel`, with the intent whose
    idempotency key made it (retired when the person hides it, so the next link is a new write)."""
    st.session_state["fresh_link"] = {
        "kind": kind, "organization_id": organization_id, "url": link.url, "intent": intent,
        "expires_at": link.expires_at, "expires": f"{link.expires_at:%d %b %H:%M} UTC" if link.expires_at else None}


def fresh_link_panel(kind: str, organization_id: str) -> None:
    """Shows a just-created checkout or portal link to the person who made it, once; it is never stored."""
    link = st.session_state.get("fresh_link")
    if not link or link["kind"] != kind or link["organization_id"] != organization_id:
        return
    with st.container(border=True):
        st.markdown(f"**{kind.capitalize()} link for {escape_markdown(organization_id)}**")
        st.caption("Shown only to you, only now: copy it or open it. It isn't saved anywhere."
                   + (f" It expires {link['expires']}." if link.get("expires") else ""))
        st.code(link["url"], language=None, wrap_lines=True)
        left, right = st.columns([1, 1])
        left.link_button(f"Open {kind} page", link["url"], icon=":material/open_in_new:")
        # A callback, not `st.rerun()`: the panel goes in the click's own run, with no second run after it.
        right.button("Done, hide it", key=f"hide_{kind}_link", on_click=_hide_fresh_link)


@guard.callback
def _hide_fresh_link() -> None:
    link = st.session_state.pop("fresh_link", None)
    if link:
        intents.retire(st.session_state, *link["intent"])  # the next link is a new write
