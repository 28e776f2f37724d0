"""Log in. The only page that exists before login."""

from __future__ import annotations

import streamlit as st

from services.auth.users import DEMO_PASSWORDS
from ui import session
from ui.routing import ensure_router_runs
from ui.console import get_console

ROLE_SUMMARY = {"support": "look up customers and plans, send checkout and portal links",
                "finance": "also change plans, cancel, process checkouts, read the audit log",
                "admin": "everything"}

ensure_router_runs()
console = get_console()
_, middle, _ = st.columns([1, 1.3, 1])
with middle:
    st.title("Billing Desk")
    st.caption("Subscriptions console for finance and support staff.")
    with st.form("login"):
        st.text_input("Username", key="login_username", autocomplete="username")
        st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
        st.form_submit_button("Log in", type="primary", on_click=session.attempt_login, width="stretch")
    if error := st.session_state.get("login_error"):
        st.error(error, icon=":material/lock:")
    if console.config.sandbox:
        with st.container(border=True):
            st.badge("TEST · SANDBOX", color="orange", icon=":material/science:")
            st.markdown("Connected to the built-in sandbox: test data, no real money. Demo users:")
            st.markdown("\n".join(f"- `{name}` / `{password}` — {ROLE_SUMMARY[name]}"
                                   for name, password in DEMO_PASSWORDS.items()))
    elif console.environment == "live":
        st.badge("LIVE", color="red", icon=":material/bolt:")
