"""The organization being worked on: shared by every page, carried in `?org=` deep links, with recent lookups."""

from __future__ import annotations

import streamlit as st

from services.payments import validation
from services.payments.errors import InvalidInputError

from . import guard

MAX_RECENT = 8


def _select(organization_id: str) -> None:
    st.session_state["organization_id"] = organization_id
    st.query_params["org"] = organization_id  # the address follows the choice, or it would win it back
    recent = [org for org in st.session_state.get("recent_organizations", []) if org != organization_id]
    st.session_state["recent_organizations"] = [organization_id, *recent][:MAX_RECENT]


def current() -> str | None:
    """The current organization, taking a deep link first; keeps `?org=` in the address bar in step."""
    requested = st.query_params.get("org")  # the address keeps it through the login form
    if requested and requested != st.session_state.get("organization_id"):
        try:
            _select(validation.organization_id(requested))
        except InvalidInputError as problem:
            st.session_state["lookup_error"] = f"The link's organization id is not valid: {problem.message}"
    organization_id = st.session_state.get("organization_id")
    if organization_id and st.query_params.get("org") != organization_id:
        st.query_params["org"] = organization_id
    return organization_id


@guard.callback
def _submit_lookup() -> None:
    raw = st.session_state.get("lookup_input", "")
    try:
        _select(validation.organization_id(raw))
        st.session_state["lookup_error"] = None
        st.session_state["lookup_input"] = ""
    except InvalidInputError as problem:
        st.session_state["lookup_error"] = problem.message


@guard.callback
def _pick_recent() -> None:
    choice = st.session_state.get("recent_pick")
    if choice:
        _select(choice)
    st.session_state["recent_pick"] = None


def picker() -> str | None:
    """The lookup box and recent lookups. Returns the current organization id.

    All of it sits in one container, so what follows on the page keeps its place whether or not an error or
    the recent lookups are shown: a widget that moved would be drawn anew and lose its state (an open tab).
    """
    with st.container():
        return _picker()


def _picker() -> str | None:
    organization_id = current()
    # A row rather than columns: one block instead of three, so fewer messages to the browser on each lookup.
    with st.form("lookup", border=False, enter_to_submit=True), st.container(horizontal=True,
                                                                               vertical_alignment="bottom"):
        st.text_input("Organization id", key="lookup_input", placeholder=organization_id or "org_abc123",
                      help="Paste the organization id, e.g. org_abc123. Links with ?org= open it directly.")
        st.form_submit_button("Look up", type="primary", on_click=_submit_lookup, icon=":material/search:")
    if error := st.session_state.pop("lookup_error", None):  # once, after the lookup that caused it
        st.error(error, icon=":material/edit:")
    recent = [org for org in st.session_state.get("recent_organizations", []) if org != organization_id]
    if recent:
        st.pills("Recent", recent, key="recent_pick", on_change=_pick_recent, label_visibility="collapsed")
    return st.session_state.get("organization_id")


def chosen_or_stop(hint: str) -> str:
    """The picker; with no organization chosen yet, a hint and the end of the page."""
    organization_id = picker()
    if not organization_id:
        st.info(hint, icon=":material/search:")
        st.stop()
    return organization_id
