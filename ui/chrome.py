"""What frames every page: the environment banner and the sidebar (who, role, environment, logout)."""

from __future__ import annotations

import streamlit as st

from services.auth.roles import Actor
from services.console import Console

from . import reads, session
from .present import ENVIRONMENT_STYLE, escape_markdown


def environment_banner(console: Console) -> None:
    if console.environment == "live":
        st.error("**LIVE** — real customers, real money. Every change here is charged or refunded for real.",
                 icon=":material/warning:")


def waiting_for_me(actor: Actor) -> int:
    """Approval requests this person may decide; 0 when the store can't say (the page itself will)."""
    try:
        return reads.waiting_for_me(actor)
    except Exception:
        return 0


def sidebar(actor: Actor, console: Console, waiting: int = 0) -> None:
    label, colour = ENVIRONMENT_STYLE[console.environment]
    with st.sidebar:
        st.badge(label, color=colour, icon=":material/science:" if console.environment != "live"
                 else ":material/bolt:")  # type: ignore[arg-type]
        if console.environment == "sandbox":
            st.caption("Connected to the built-in sandbox: test data, no real money.")
        st.markdown(f"**{escape_markdown(session.display_name(actor))}**")
        st.caption(f"Role: {actor.role.value.capitalize()}")
        if waiting:
            st.page_link("pages/approvals.py", icon=":material/fact_check:",
                         label=f"{waiting} {'request' if waiting == 1 else 'requests'} waiting for you")
        st.button("Log out", on_click=session.logout, icon=":material/logout:", width="stretch")
