"""The address of the login form once signed in (a bookmark, the back button): go to the first page."""

from __future__ import annotations

import streamlit as st

from services.roles import pages_for
from ui import auth

actor = auth.current_actor()
if actor is not None:
    first = pages_for(actor.role)[0]
    st.switch_page(f"pages/{'audit_log' if first.value == 'audit' else first.value}.py")
