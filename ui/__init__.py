"""Streamlit glue shared by the pages: the cached runtime, login state, cached reads, common widgets.

Logic stays in services/; this package only connects it to Streamlit.
"""
