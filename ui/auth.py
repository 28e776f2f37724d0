"""Login state for a browser session, on streamlit-authenticator.

The login form's submit callback verifies the password before the script runs, so the router builds the
signed-in navigation in that same run and the re-authentication cookie is set then, with no `st.rerun()`
after it (the authenticator's cookie component must reach the browser).
"""

from __future__ import annotations

import time
from typing import Any

import jwt
import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.controllers import AuthenticationController

from services.desk import Actor
from services.roles import Page, pages_for, parse_role
from services.users import credentials

from .routing import ensure_router_runs
from .runtime import get_runtime

COOKIE_NAME = "billing_desk_auth"
COOKIE_DAYS = 1.0
# Per-person state dropped at logout, so the next person on this browser starts clean.
_PERSONAL_KEYS = ("organization_id", "recent_organizations", "fresh_link", "dialog", "write_result",
                  "_intent_keys", "login_error")


def _session_credentials() -> dict[str, Any]:
    if "_credentials" not in st.session_state:
        st.session_state["_credentials"] = credentials(get_runtime().users)
    return st.session_state["_credentials"]


def authenticator() -> stauth.Authenticate:
    """For the main run only: constructing it renders the authenticator's cookie component."""
    return stauth.Authenticate(_session_credentials(), COOKIE_NAME, get_runtime().cookie_key, COOKIE_DAYS,
                               auto_hash=False)


def _controller() -> AuthenticationController:
    """For callbacks: verifies and clears login state without rendering anything."""
    return AuthenticationController(_session_credentials(), auto_hash=False)


def restore_from_cookie() -> None:
    """A new browser session (reload, new tab, deep link) signs in again from a valid cookie.

    The cookie is read server-side and verified with the authenticator's own key and algorithm, so no run
    needs to render the authenticator's cookie component except the one that sets or deletes the cookie.
    """
    if st.session_state.get("authentication_status") or st.session_state.get("logout"):
        return
    raw = st.context.cookies.get(COOKIE_NAME)
    if not raw:
        return
    try:
        token = jwt.decode(raw, get_runtime().cookie_key, algorithms=["HS256"])
    except jwt.PyJWTError:
        return
    username = token.get("username") if isinstance(token, dict) else None
    expires = float(token.get("exp_date", 0)) if isinstance(token, dict) else 0.0
    if username not in get_runtime().users or expires <= time.time():
        return
    # A logout ends every session of that person: a cookie issued before it no longer signs anyone in,
    # even if the browser kept it.
    issued_at = expires - COOKIE_DAYS * 86400
    last_logout = get_runtime().audit.last_logout(username)
    if last_logout is not None and issued_at <= last_logout.timestamp():
        return
    _controller().login(token=token)


def current_actor() -> Actor | None:
    if not st.session_state.get("authentication_status"):
        return None
    username = st.session_state.get("username")
    user = get_runtime().users.get(username or "")
    roles = st.session_state.get("roles") or []
    role = parse_role(roles[0]) if roles else None
    if user is None or role is None or role != user.role:  # session state that disagrees with the users file
        return None
    return Actor(user.username, role)


def attempt_login() -> None:
    """Submit callback of the login form."""
    runtime = get_runtime()
    username = str(st.session_state.get("login_username", "")).strip().lower()
    password = str(st.session_state.get("login_password", ""))
    st.session_state["login_password"] = ""
    if not username or not password:
        st.session_state["login_error"] = "Enter your username and password."
        return
    throttle = runtime.throttle.state(username)
    if throttle.locked:
        st.session_state["login_error"] = (f"Too many failed attempts: this account is locked until "
                                           f"{throttle.unlocks_at:%H:%M} UTC.")  # type: ignore[union-attr]
        return
    user = runtime.users.get(username)
    try:
        ok = bool(user) and bool(_controller().login(username, password))
    except Exception:  # the library raises on odd input; to the person it is a failed login
        ok = False
    if ok:
        runtime.throttle.succeeded(username)
        st.session_state["login_error"] = None
        st.session_state["just_logged_in"] = True
        return
    st.session_state["authentication_status"] = None
    state = runtime.throttle.failed(username, user.role.value if user else "unknown")
    st.session_state["login_error"] = (
        "Too many failed attempts: this account is locked for 15 minutes." if state.locked
        else "Wrong username or password.")


def logout() -> None:
    """Logout button callback: clears the session and revokes its cookie; the router deletes the cookie."""
    username = st.session_state.get("username")
    if username:
        get_runtime().audit.record_logout(username)
    _controller().logout()
    for key in _PERSONAL_KEYS:
        st.session_state.pop(key, None)
    st.session_state["just_logged_out"] = True


def settle_cookie() -> None:
    """Sets or deletes the re-authentication cookie after a login or logout (never followed by a rerun).

    The cookie component lives in a slot that every run creates, empty or not: the component reruns the
    script once it reaches the browser, and if it took a place of its own, everything below it would move
    one place down in that rerun and be drawn twice (once faded) until the rerun ended.
    """
    logged_in = st.session_state.pop("just_logged_in", False)
    logged_out = st.session_state.pop("just_logged_out", False)
    slot = st.container()
    if logged_in or logged_out:
        with slot:
            auth = authenticator()
            if logged_in:
                auth.cookie_controller.set_cookie()
            else:
                auth.cookie_controller.delete_cookie()


def personal(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def require_page(page: Page) -> Actor:
    """Every page starts here: a page a role may not use is refused even if reached some other way."""
    ensure_router_runs()
    actor = current_actor()
    if actor is None or page not in pages_for(actor.role):
        st.error("You don't have access to this page.", icon=":material/lock:")
        st.stop()
    assert actor is not None
    return actor
