"""What frames every page: the environment banner and the sidebar (who, role, environment, logout)."""

from __future__ import annotations

import streamlit as st

from services.desk import Actor
from services.formatting import ENVIRONMENT_STYLE, escape_markdown
from services.console import ConsoleRuntime

from . import session


def environment_banner(runtime: ConsoleRuntime) -> None:
    if runtime.environment == "live":
        st.error("**LIVE** — real customers, real money. Every change here is charged or refunded for real.",
                 icon=":material/warning:")


def sidebar(actor: Actor, runtime: ConsoleRuntime) -> None:
    label, colour = ENVIRONMENT_STYLE[runtime.environment]
    with st.sidebar:
        st.badge(label, color=colour, icon=":material/science:" if runtime.environment != "live"
                 else ":material/bolt:")  # type: ignore[arg-type]
        if runtime.environment == "sandbox":
            st.caption("Connected to the built-in sandbox: test data, no real money.")
        user = runtime.users[actor.username]
        st.markdown(f"**{escape_markdown(user.name)}**")
        st.caption(f"Role: {actor.role.value.capitalize()}")
        st.button("Log out", on_click=session.logout, icon=":material/logout:", width="stretch")
