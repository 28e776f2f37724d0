"""A page address the signed-in role may not use: say so plainly instead of showing anything."""

from __future__ import annotations

import streamlit as st

from ui import session

actor = session.current_actor()
st.title("Not available")
st.error(f"Your role ({actor.role.value if actor else 'none'}) can't use this page. Ask a finance lead or an admin "
         "if you need it.", icon=":material/lock:")
