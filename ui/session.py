"""Login state for a browser session, on streamlit-authenticator.

The login form's submit callback verifies the password (with the authenticator's controller) before the
script runs, so the router builds the signed-in navigation in that same run, which also writes the
re-authentication cookie; no `st.rerun()` follows, so the page that writes it reaches the browser.
"""

from __future__ import annotations

import copy
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import streamlit as st
from streamlit_authenticator.controllers import AuthenticationController

from services.auth.roles import Actor, Page, pages_for, parse_role
from services.auth.users import User

from .routing import ensure_router_runs
from .console import get_console

COOKIE_NAME = "billing_desk_auth"
COOKIE_DAYS = 1.0
# Per-person state dropped at logout, so the next person on this browser starts clean.
_PERSONAL_KEYS = ("organization_id", "recent_organizations", "fresh_link", "dialog", "write_result",
                  "_intent_keys", "login_error")


def _credentials(users: dict[str, User]) -> dict[str, Any]:
    """The dict streamlit-authenticator takes (a fresh copy per session: it records state in it; passed as a
    dict, never a path, so the library can't rewrite the users file)."""
    return copy.deepcopy({"usernames": {
        user.username: {"name": user.name, "email": user.email, "password": user.password_hash,
                        "roles": [user.role.value], "failed_login_attempts": 0, "logged_in": False}
        for user in users.values()}})


def _session_credentials() -> dict[str, Any]:
    if "_credentials" not in st.session_state:
        st.session_state["_credentials"] = _credentials(get_console().users)
    return st.session_state["_credentials"]


def _controller() -> AuthenticationController:
    """For callbacks: verifies and clears login state without rendering anything."""
    return AuthenticationController(_session_credentials(), auto_hash=False)


def restore_from_cookie() -> None:
    """A new browser session (reload, new tab, deep link) signs in again from a valid cookie.

    The cookie is read server-side and verified with the same key and algorithm `settle_cookie` signs it
    with, so restoring a session renders nothing.
    """
    if st.session_state.get("authentication_status") or st.session_state.get("logout"):
        return
    raw = st.context.cookies.get(COOKIE_NAME)
    if not raw:
        return
    try:
        token = jwt.decode(raw, get_console().cookie_key, algorithms=["HS256"])
    except jwt.PyJWTError:
        return
    username = token.get("username") if isinstance(token, dict) else None
    expires = float(token.get("exp_date", 0)) if isinstance(token, dict) else 0.0
    if username not in get_console().users or expires <= time.time():
        return
    # A logout ends every session of that person: a cookie issued before it no longer signs anyone in,
    # even if the browser kept it.
    issued_at = expires - COOKIE_DAYS * 86400
    last_logout = get_console().sign_ins.last_logout(username)
    if last_logout is not None and issued_at <= last_logout.timestamp():
        return
    _controller().login(token=token)


def current_actor() -> Actor | None:
    if not st.session_state.get("authentication_status"):
        return None
    username = st.session_state.get("username")
    user = get_console().users.get(username or "")
    roles = st.session_state.get("roles") or []
    role = parse_role(roles[0]) if roles else None
    if user is None or role is None or role != user.role:  # session state that disagrees with the users file
        return None
    return Actor(user.username, role)


def attempt_login() -> None:
    """Submit callback of the login form."""
    console = get_console()
    username = str(st.session_state.get("login_username", "")).strip().lower()
    password = str(st.session_state.get("login_password", ""))
    st.session_state["login_password"] = ""
    if not username or not password:
        st.session_state["login_error"] = "Enter your username and password."
        return
    throttle = console.throttle.state(username)
    if throttle.locked:
        st.session_state["login_error"] = (f"Too many failed attempts: this account is locked until "
                                           f"{throttle.unlocks_at:%H:%M} UTC.")  # type: ignore[union-attr]
        return
    user = console.users.get(username)
    try:
        ok = bool(user) and bool(_controller().login(username, password))
    except Exception:  # the library raises on odd input; to the person it is a failed login
        ok = False
    if ok:
        console.throttle.succeeded(username)
        st.session_state["login_error"] = None
        st.session_state["just_logged_in"] = True
        return
    st.session_state["authentication_status"] = None
    state = console.throttle.failed(username, user.role.value if user else "unknown")
    st.session_state["login_error"] = (
        "Too many failed attempts: this account is locked for 15 minutes." if state.locked
        else "Wrong username or password.")


def logout() -> None:
    """Logout button callback: clears the session and revokes its cookie; the router deletes the cookie."""
    username = st.session_state.get("username")
    if username:
        get_console().sign_ins.record_logout(username)
    _controller().logout()
    for key in _PERSONAL_KEYS:
        st.session_state.pop(key, None)
    st.session_state["just_logged_out"] = True


def _cookie_script(value: str, expires: datetime) -> str:
    """JavaScript that writes the re-authentication cookie in the browser (an expiry in the past deletes it)."""
    cookie = f"{COOKIE_NAME}={value}; expires={expires:%a, %d %b %Y %H:%M:%S} GMT; path=/; SameSite=Strict"
    return (f"<script>document.cookie = {json.dumps(cookie)}"
            " + (location.protocol === 'https:' ? '; Secure' : '');</script>")


def settle_cookie() -> None:
    """Writes or deletes the re-authentication cookie after a login or logout.

    A few lines of script in the page itself, run as soon as they arrive: no component to load and report
    back, so no extra run after login or logout and nothing to lose if another run comes first. The token is
    the authenticator's own (HS256 over username and expiry), which `restore_from_cookie` verifies. The slot
    is created on every run, so the page below it never moves.
    """
    logged_in = st.session_state.pop("just_logged_in", False)
    logged_out = st.session_state.pop("just_logged_out", False)
    slot = st.container()
    if logged_in and st.session_state.get("username"):
        expires = datetime.now(timezone.utc) + timedelta(days=COOKIE_DAYS)
        token = jwt.encode({"username": st.session_state["username"], "exp_date": expires.timestamp()},
                           get_console().cookie_key, algorithm="HS256")
        slot.html(_cookie_script(token, expires), unsafe_allow_javascript=True)
    elif logged_out:
        slot.html(_cookie_script("", datetime(1970, 1, 1, tzinfo=timezone.utc)), unsafe_allow_javascript=True)


def require_page(page: Page) -> Actor:
    """Every page starts here: a page a role may not use is refused even if reached some other way."""
    ensure_router_runs()
    actor = current_actor()
    if actor is None or page not in pages_for(actor.role):
        st.error("You don't have access to this page.", icon=":material/lock:")
        st.stop()
    assert actor is not None
    return actor
