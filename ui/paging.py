"""Newest-first pages of the audit log read by cursor (services.audit.AuditCursor): the Audit page and a customer's
history page the same way.

The cursors of the pages seen so far sit in the session under one key, with what they were read for (the filters,
the organization): when that changes, paging starts again at the first page. Back pops a cursor, forward pushes
the one the desk returned, in the buttons' callbacks, so a click is one run.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from services.audit import AuditCursor

from . import guard


def cursors(state_key: str, scope: Any) -> list[AuditCursor | None]:
    """The cursors of the pages seen so far for `scope` (the last is the current page's; None = the first)."""
    paging = st.session_state.get(state_key)
    if not paging or paging.get("scope") != scope:
        paging = st.session_state[state_key] = {"scope": scope, "cursors": [None]}
    return paging["cursors"]


@guard.callback
def _turn(state_key: str, to: AuditCursor | None) -> None:
    """Forward: the page after `to`; back (None): one page back."""
    seen = st.session_state[state_key]["cursors"]
    if to is not None:
        seen.append(to)
    elif len(seen) > 1:
        seen.pop()


def pager(state_key: str, total: int, page_size: int, next_cursor: AuditCursor | None, *,
          labels: tuple[str, str] = ("Previous", "Next"), shown: int | None = None, detail: str = "") -> None:
    """Back, "Page N of M" (and which rows, when `shown` is given), forward: one row under the table."""
    number, pages = len(st.session_state[state_key]["cursors"]), max(1, -(-total // page_size))
    first = (number - 1) * page_size
    where = f"Page {number:,} of {pages:,}" + (f" · {detail} {first + 1:,}–{first + shown:,}, newest first"
                                                if shown else "")
    back, middle, forward = st.columns([1, 4, 1], vertical_alignment="center")
    back.button(labels[0], icon=":material/chevron_left:", disabled=number == 1, on_click=_turn,
                args=(state_key, None), key=f"{state_key}_back", width="stretch")
    middle.caption(where)
    forward.button(labels[1], icon=":material/chevron_right:", disabled=next_cursor is None, on_click=_turn,
                   args=(state_key, next_cursor), key=f"{state_key}_forward", width="stretch")
