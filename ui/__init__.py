"""Streamlit glue shared by the pages: the cached console, sign-in state checked on every run, cached reads around
the desk, dialogs, presentation (markdown-safe text, badge colours, chart specs) and common widgets.

Logic stays in services/; this package only connects it to Streamlit.
"""
