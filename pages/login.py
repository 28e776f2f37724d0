"""Sign in. The only page that exists before sign-in: the password form, or the single sign-on button (and,
for someone the identity provider signed in whose groups give no role, a page saying so)."""

from __future__ import annotations

import streamlit as st

from services.auth.users import DEMO_PASSWORDS
from ui import session
from ui.console import get_console
from ui.present import escape_markdown
from ui.routing import ensure_router_runs

ROLE_SUMMARY = {"support": "look up customers and plans, send checkout and portal links",
                "finance": "also change plans, cancel, process checkouts, read the audit log",
                "admin": "everything"}

ensure_router_runs()
console = get_console()
sso = console.config.sso
_, middle, _ = st.columns([1, 1.3, 1])
with middle:
    st.title("Billing Desk")
    st.caption("Subscriptions console for finance and support staff.")
    if sso is not None and (who := session.signed_in_without_role()):
        st.warning(f"You're signed in as **{escape_markdown(who)}**, but your account has no Billing Desk role, "
                   "so there is nothing here for you yet.", icon=":material/no_accounts:")
        st.caption("Ask your Billing Desk admin for access; once it is given, log out and sign in again.")
        st.button("Log out", on_click=session.logout, icon=":material/logout:")
        st.stop()
    if sso is not None:
        st.button(f"Sign in with {sso.provider_name}", type="primary", on_click=session.start_sso,
                  icon=":material/login:", width="stretch")
    else:
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
