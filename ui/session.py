"""Who is signed in to this browser tab, checked on every run.

Password sign-in: the login form's callback asks services/auth/password.py, which starts a stored session and
returns its token. The tab keeps the token in its session state; the browser keeps it in a cookie so a reload,
a new tab or a deep link signs in again. Every run (and every fragment run that acts) checks the token against
the store (services/auth/sessions.py): a logout anywhere, a changed or removed user, the idle timeout or the
absolute lifetime ends it, and the next click shows the sign-in page with one sentence saying why.

No `st.rerun()` follows the login callback: the router builds the signed-in navigation in that same run,
which also writes the cookie, so the page that writes it reaches the browser.
"""

from __future__ import annotations

import hashlib
import html
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any, Callable, TypeVar

import streamlit as st
from streamlit_authenticator.utilities.hasher import Hasher

from services.auth.roles import Actor, Page, pages_for
from services.auth.sessions import SessionCheck, ride_out
from services.auth.sso import actor_from, identity, provider_answers
from services.auth.users import User

from .console import get_console
from .routing import ensure_router_runs

COOKIE_NAME = "billing_desk_auth"
TOKEN_KEY = "_session_token"
F = TypeVar("F", bound=Callable[..., Any])
LAST_CONFIRMED_KEY = "_session_confirmed"  # (token or identity, the store's last good verdict): rides out an outage


def _check_password(user: User, password: str) -> bool:
    """streamlit-authenticator's bcrypt check (the users file holds its hashes)."""
    return Hasher.check_pw(password, user.password_hash)


def before_sign_in(function: F) -> F:
    """Marks a callback that must work with no session (signing in, signing out; ui/guard.py checks every
    other): tests/test_session_guard.py reads the decorator."""
    return function


def current_actor(touch: bool = True) -> Actor | None:
    """The signed-in person, or None. Checks the session in the store every time it is called; `touch=False`
    for a run nobody asked for (polling), which doesn't count as activity against the idle limit."""
    console = get_console()
    if console.config.sso is not None:
        return _sso_actor(touch)
    token = st.session_state.get(TOKEN_KEY)
    if token is None and not st.session_state.get("just_logged_out"):  # a logout's cookie may still be there
        token = st.context.cookies.get(COOKIE_NAME)  # a reload, a new tab, a deep link
    check = _remember(token, console.sessions.check(token, console.users, touch=touch))
    if check.store_unreachable:  # the store is down: not signed out, just not confirmed; the cookie stays
        st.session_state["login_error"] = check.ended_because
        return None
    if check.actor is None:
        if st.session_state.get(TOKEN_KEY):  # this tab was signed in: the session has just ended
            _forget_everything()
            st.session_state["login_error"] = check.ended_because
            st.session_state["just_logged_out"] = True  # the stale cookie goes too
        return None
    st.session_state[TOKEN_KEY] = token
    return check.actor


def _sso_actor(touch: bool = True) -> Actor | None:
    """With single sign-on: the identity provider's word (st.user), its groups mapped to a role, and the
    console's own session limits."""
    console = get_console()
    if not st.user.is_logged_in:
        return None
    claims = st.user.to_dict()
    actor = actor_from(claims, console.config.sso)  # type: ignore[arg-type]
    if actor is None:
        return None  # signed in, but no mapped group: the router shows the no-access page
    check = _remember((actor.subject, _signed_in_at(claims)), console.sessions.check_sso(
        actor, _signed_in_at(claims), touch=touch, max_age=console.config.sso.max_age))  # type: ignore[union-attr]
    if check.actor is None:
        st.session_state["login_error"] = check.ended_because
    return check.actor


def recheck_later() -> Callable[[], Actor | None]:
    """For work Streamlit runs later on another thread, with no session state to read (a download button's
    deferred data): a function that checks this tab's session against the store again *when called*, from
    the credentials this run holds (the token, or the provider's identity), never from an Actor kept since."""
    console = get_console()
    sso = console.config.sso
    if sso is not None:
        claims = st.user.to_dict() if st.user.is_logged_in else {}

        def check_identity() -> Actor | None:  # the provider's claims as this run had them, checked anew
            who = actor_from(claims, sso) if claims else None
            return (console.sessions.check_sso(who, _signed_in_at(claims), max_age=sso.max_age).actor
                    if who is not None else None)
        return check_identity
    token = st.session_state.get(TOKEN_KEY)
    return lambda: console.sessions.check(token, console.users).actor


def _remember(identity: object, check: SessionCheck) -> SessionCheck:
    """Keeps this tab's last verdict the store confirmed, and uses it while the store can't be asked."""
    previous = st.session_state.get(LAST_CONFIRMED_KEY)
    check = ride_out(previous[1] if previous and previous[0] == identity else None, check)
    if check.actor is not None and check.confirmed_at is not None:
        st.session_state[LAST_CONFIRMED_KEY] = (identity, check)
    return check


def _signed_in_at(claims: dict) -> float | None:  # type: ignore[type-arg]
    """When this sign-in's ID token was issued: new at every `st.login`, unlike `auth_time`, which a provider's
    own long session keeps from the morning (and which would make the maximum age refuse every sign-in)."""
    for name in ("iat", "auth_time"):
        if isinstance(claims.get(name), (int, float)):
            return float(claims[name])
    return None


def display_name(actor: Actor) -> str:
    """The person's name for the sidebar: from the identity provider, or the users file."""
    if actor.subject is not None:
        return str(st.user.get("name") or actor.username)
    user = get_console().users.get(actor.username)
    return user.name if user else actor.username


def signed_in_without_role() -> str | None:
    """With single sign-on, someone the provider signed in whose groups map to no role: who they are."""
    console = get_console()
    if console.config.sso is None or not st.user.is_logged_in:
        return None
    claims = st.user.to_dict()
    if actor_from(claims, console.config.sso) is not None:
        return None
    email, _ = identity(claims)
    return email


@before_sign_in
def start_sso() -> None:
    """The sign-in button's callback: off to the identity provider, unless it isn't answering."""
    auth = st.secrets.get("auth", {})
    if not provider_answers(str(auth.get("server_metadata_url", ""))):
        st.session_state["login_error"] = ("The company sign-in service isn't answering, so you can't sign in right "
                                           "now. Try again in a few minutes; if it persists, tell IT.")
        return
    st.session_state.pop("login_error", None)
    st.login()


@before_sign_in
def attempt_login() -> None:
    """Submit callback of the login form."""
    username = str(st.session_state.get("login_username", ""))
    password = str(st.session_state.get("login_password", ""))
    st.session_state["login_password"] = ""
    result = get_console().password_sign_in.attempt(username, password, client_address(), check=_check_password)
    if result.token is None:
        st.session_state["login_error"] = result.refusal
        return
    st.session_state.pop("login_error", None)
    st.session_state.pop("just_logged_out", None)
    st.session_state[TOKEN_KEY] = result.token
    st.session_state["just_logged_in"] = True


def client_address() -> str | None:
    """The person's address: the peer, or the forwarded address when the peer is a trusted proxy."""
    return get_console().config.client_address(st.context.ip_address, st.context.headers.get("X-Forwarded-For"))


@before_sign_in
def logout() -> None:
    """Logout button callback: ends every session of this person (every tab, every replica) and forgets
    everything this tab held, so the next person here starts clean (bulk lookups are jobs in the store: they
    go on, and are there at the next sign-in). With single sign-on it also ends the provider's session
    (st.logout goes through its end_session_endpoint)."""
    console = get_console()
    actor = current_actor()
    if actor is not None:
        console.sessions.end_everywhere(actor.username)
    _forget_everything()
    if console.config.sso is not None:
        st.logout()
        return
    st.session_state["just_logged_out"] = True


def _forget_everything() -> None:
    for key in list(st.session_state.keys()):
        del st.session_state[key]


COOKIE_SCRIPT = Path(__file__).resolve().parents[1] / "static" / "sign-in-cookie.js"  # writes COOKIE_NAME


@cache
def _cookie_script_url() -> str:
    """Where Streamlit serves static/sign-in-cookie.js ([server] enableStaticServing): an absolute path under
    server.baseUrlPath, so it resolves the same from every page's address; `?v=` changes with the file, so a
    browser never runs an old copy from its cache."""
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    version = hashlib.sha256(COOKIE_SCRIPT.read_bytes()).hexdigest()[:12]
    return f"{'/' + base if base else ''}/app/static/{COOKIE_SCRIPT.name}?v={version}"


def _cookie_script(value: str, expires: datetime, secure: bool) -> str:
    """The script element that writes the sign-in cookie in the browser (an expiry in the past deletes it):
    `billing_desk_auth=<value>; expires=…; path=/; SameSite=Strict`, `; Secure` when `secure` or the page is
    https. A shipped file (static/sign-in-cookie.js), not inline code, so `script-src 'self'` allows it;
    Streamlit's Html element re-creates the script element with all its attributes, so it loads and reads them.
    """
    attributes = {"src": _cookie_script_url(), "data-value": value,
                  "data-expires": f"{expires:%a, %d %b %Y %H:%M:%S} GMT", "data-secure": "1" if secure else "0"}
    return "<script " + " ".join(f'{name}="{html.escape(text)}"' for name, text in attributes.items()) + "></script>"


def settle_cookie() -> None:
    """Writes or deletes the sign-in cookie after a login or logout.

    One script element on the page, run as soon as it arrives: no component to load and report back, so no
    extra run after login or logout and nothing to lose if another run comes first. The slot is created on
    every run, so the page below it never moves.
    """
    console = get_console()
    logged_in = st.session_state.pop("just_logged_in", False)
    logged_out = st.session_state.pop("just_logged_out", False) and TOKEN_KEY not in st.session_state
    slot = st.container()
    secure = console.config.cookie_secure
    if logged_in and st.session_state.get(TOKEN_KEY):
        expires = datetime.now(timezone.utc) + console.sessions.lifetime
        slot.html(_cookie_script(st.session_state[TOKEN_KEY], expires, secure), unsafe_allow_javascript=True)
    elif logged_out:
        slot.html(_cookie_script("", datetime(1970, 1, 1, tzinfo=timezone.utc), secure),
                  unsafe_allow_javascript=True)


def require_page(page: Page) -> Actor:
    """Every page starts here: a page a role may not use is refused even if reached some other way."""
    ensure_router_runs()
    actor = current_actor()
    if actor is None or page not in pages_for(actor.role):
        st.error("You don't have access to this page.", icon=":material/lock:")
        st.stop()
    assert actor is not None
    return actor

