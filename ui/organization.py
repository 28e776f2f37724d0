"""The organization being worked on: shared by every page, carried in `?org=` deep links, with recent lookups.

The box takes whatever a person has (services/directory/search.py): an exact id, or a search with one match,
opens that customer; more matches are listed, and choosing one opens it; no match tries the text against the API
if it is an organization id, else says so. Opening a customer always reads it from the API.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import streamlit as st

from services.auth.roles import Actor
from services.directory import DirectoryEntry
from services.formatting import search_result_line
from services.inputs import InputRefused
from services.payments import validation
from services.payments.errors import InvalidInputError

from . import guard
from .console import get_console
from .present import escape_markdown

MAX_RECENT = 8
log = logging.getLogger("billing_desk.search")


def _select(organization_id: str) -> None:
    st.session_state["organization_id"] = organization_id
    st.query_params["org"] = organization_id  # the address follows the choice, or it would win it back
    recent = [org for org in st.session_state.get("recent_organizations", []) if org != organization_id]
    st.session_state["recent_organizations"] = [organization_id, *recent][:MAX_RECENT]


def close(organization_id: str) -> None:
    """No organization open any more (it was just forgotten: reading it again would bring it back)."""
    if st.session_state.get("organization_id") == organization_id:
        st.session_state["organization_id"] = None
        st.query_params.pop("org", None)
    st.session_state["recent_organizations"] = [
        org for org in st.session_state.get("recent_organizations", []) if org != organization_id]


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
def _submit_lookup(actor: Actor) -> None:
    typed = " ".join(str(st.session_state.get("lookup_input", "")).split())
    st.session_state["search_results"] = None
    try:
        found = get_console().desk.search_customers(actor, typed)
    except InputRefused as refused:
        st.session_state["lookup_error"] = refused.message  # the text stays in the box to be mended
        return
    except Exception:  # the directory can't be read: an id still opens
        log.warning("The customer directory could not be searched.", exc_info=True)
        found = []
    exact = [entry for entry in found if entry.match == "exact"]
    if len(exact) == 1 or len(found) == 1:
        _open((exact or found)[0].organization_id)
    elif found:
        st.session_state["search_results"] = (typed, found)
    else:
        try:  # not in the directory: an organization id is still tried against the API
            _open(validation.organization_id(typed))
        except InvalidInputError:
            st.session_state["lookup_error"] = no_match(typed)


def no_match(typed: str) -> str:
    shown = escape_markdown(typed if len(typed) <= 60 else typed[:60] + "…")
    if validation.other_id_kind(typed):  # a customer id, a price id…: the API can't be asked by it
        return (f"No customer the console has read matches “{shown}”, and the Payments API looks customers up "
                "only by organization id.")
    return (f"No customer the console has read matches “{shown}”. Try the organization id, the customer id, the "
            "e-mail or part of the name.")


def _open(organization_id: str) -> None:
    _select(organization_id)
    st.session_state["lookup_error"] = None
    st.session_state["search_results"] = None
    st.session_state["lookup_input"] = ""


@guard.callback
def _open_result(organization_id: str) -> None:
    _open(organization_id)


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
        st.text_input("Find a customer", key="lookup_input", max_chars=200,
                      placeholder="Organization id, customer id, e-mail or name",
                      help="An organization id (whole or its start), a customer id (cus_…), an e-mail or part of "
                           "it, or part of the name, misspelt or not. Links with ?org= open a customer directly.")
        st.form_submit_button("Look up", type="primary", on_click=_submit_lookup, icon=":material/search:")
    if error := st.session_state.pop("lookup_error", None):  # once, after the lookup that caused it
        st.error(error, icon=":material/edit:")
    if results := st.session_state.get("search_results"):
        _results(*results)
    recent = [org for org in st.session_state.get("recent_organizations", []) if org != organization_id]
    if recent:
        st.pills("Recent", recent, key="recent_pick", on_change=_pick_recent, label_visibility="collapsed")
    return st.session_state.get("organization_id")


def _results(typed: str, found: list[DirectoryEntry]) -> None:
    """The matches, best first: the name opens the customer; under it, what tells two apart and how fresh it is."""
    now = datetime.now(timezone.utc)
    more = "" if len(found) < 20 else " (the best 20; type more to narrow it)"
    with st.container(border=True, gap="small"):
        st.caption(f"{len(found)} customers match “{escape_markdown(typed)}”{more}. Choose one to read it from the "
                   "API.")
        for entry in found:  # one element a result (a button, its details in the label): a long list draws fast
            st.button(f"**{escape_markdown(entry.name or entry.organization_id)}** "
                      f":gray[{escape_markdown(search_result_line(entry, now))}]",
                      key=f"result_{entry.organization_id}", on_click=_open_result, args=(entry.organization_id,),
                      icon=":material/person:", type="tertiary")


def chosen_or_stop(hint: str) -> str:
    """The picker; with no organization chosen yet, a hint and the end of the page."""
    organization_id = picker()
    if not organization_id:
        st.info(hint, icon=":material/search:")
        st.stop()
    return organization_id
