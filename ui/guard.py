"""One session check for every kind of run: page runs, fragment runs (`run_every` polling included), dialog
runs and widget callbacks.

A fragment or a dialog reruns only its own function, with the arguments it was first called with, and a
callback runs before the script: none of them passes the router, which checks the session on a full run. So
none of them may reuse an `Actor` captured when it was drawn: a dialog opened before a logout elsewhere, a
demotion in the users file or the idle limit would otherwise still write as the person it was drawn for.
Everything here asks `session.current_actor()` (the stored session, checked now) on every run instead:

- `@guard.fragment(...)` and `@guard.dialog(...)` wrap `st.fragment` / `st.dialog`; the function receives the
  actor checked for this run as `actor=`. An ended session reruns the whole app, whose router shows the
  sign-in page with the reason; nothing below the check runs.
- `@guard.callback` wraps an `on_click` / `on_change` / `on_dismiss` callback: it runs only for a session that
  is still good (and receives `actor=` if it takes one); otherwise it does nothing and the run that follows
  shows the sign-in page.
- `guard.download(make, *args)` is a download button's deferred data: Streamlit runs it on another thread when
  the file is asked for, so it re-checks the session from this tab's credentials then, and makes nothing for
  a session that has ended.
- `@guard.before_sign_in` marks the few callbacks that must work with no session (the sign-in form, the single
  sign-on button, logging out).

tests/test_session_guard.py walks pages/ and ui/ and fails on a dialog, fragment or callback that is not one of
these, or on a function that reads an `actor` it was not handed.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from services.auth.roles import Actor, Page, pages_for

from . import session

F = TypeVar("F", bound=Callable[..., Any])


def checked_actor(page: Page | None = None, touch: bool = True) -> Actor | None:
    """The person signed in to this tab, checked against the store now, or None (and, with `page`, None when
    their role no longer reaches that page). `touch=False` for runs nobody asked for (a polling fragment): they
    don't count as activity, so an open page that refreshes itself still reaches the idle limit."""
    actor = session.current_actor(touch=touch)
    if actor is None or (page is not None and page not in pages_for(actor.role)):
        return None
    return actor


def _actor_or_sign_in(page: Page | None, touch: bool) -> Actor:
    actor = checked_actor(page, touch)
    if actor is None:
        st.session_state.pop("dialog", None)  # an open confirmation never comes back after signing in again
        st.rerun(scope="app")  # the router shows the sign-in page (or, demoted, what the new role may see)
    assert actor is not None
    return actor


def _wants_actor(function: Callable[..., Any]) -> bool:
    return "actor" in inspect.signature(function).parameters


def _checked(function: F, page: Page | None, touch: bool) -> F:
    wants_actor = _wants_actor(function)

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        actor = _actor_or_sign_in(page, touch)
        return function(*args, **({"actor": actor} if wants_actor else {}), **kwargs)

    return run  # type: ignore[return-value]


def fragment(*, run_every: float | None = None, page: Page | None = None) -> Callable[[F], F]:
    """`st.fragment` whose every run checks the session first (a polling run does not count as activity)."""
    def decorate(function: F) -> F:
        return st.fragment(_checked(function, page, touch=run_every is None), run_every=run_every)  # type: ignore
    return decorate


def dialog(title: str, *, page: Page | None = None, **options: Any) -> Callable[[F], F]:
    """`st.dialog` whose every run (each click inside it) checks the session first."""
    def decorate(function: F) -> F:
        return st.dialog(title, **options)(_checked(function, page, touch=True))  # type: ignore[return-value]
    return decorate


def callback(function: F) -> F:
    """A widget callback that runs only for a session still good now; `actor=` if the function takes one."""
    wants_actor = _wants_actor(function)

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        actor = checked_actor()
        if actor is None:
            return None  # the run that follows this callback shows the sign-in page
        return function(*args, **({"actor": actor} if wants_actor else {}), **kwargs)

    return run  # type: ignore[return-value]


class SessionEnded(PermissionError):
    """A deferred download asked for after the session ended: nothing is made (Streamlit logs it and tells the
    browser the file couldn't be made)."""


def download(make: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """A download button's data, made on the click as `make(actor, *args)` for the session as it is then."""
    recheck = session.recheck_later()

    def made_on_click() -> Any:
        actor = recheck()
        if actor is None:
            raise SessionEnded("The session ended before the download was asked for; nothing was made.")
        return make(actor, *args)

    return made_on_click


before_sign_in = session.before_sign_in  # the sign-in page's own callbacks, which need no session
