"""The floor `make bench` compares the console's lookup with: a bare Streamlit app, one text box, one button and
a heading, started by the same `streamlit run` command (and .streamlit/config.toml) as the console.

The box and button sit in a form, as the console's lookup does, so a click is one run, and the heading shows
what was submitted: whatever a lookup costs beyond this is the console's own.
"""

import streamlit as st

with st.form("lookup", border=False, enter_to_submit=True):
    value = st.text_input("Organization id")
    st.form_submit_button("Look up")
if value:
    st.subheader(value)
