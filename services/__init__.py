"""Billing Desk's logic: the Payments API client, validation, users, roles and the audit log.

Nothing here imports Streamlit, so every piece is usable (and tested) from plain Python.
"""
