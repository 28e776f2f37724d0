"""Billing Desk's logic, with no Streamlit in it, so every piece is usable (and tested) from plain Python.

- `desk.py`: every operation a person can make, role-checked, writes audited and re-read (start here);
- `payments/`: the Payments API client (knows nothing of the console);
- `auth/`: roles and the actor, the users file, password and single sign-on sessions, sign-in throttling;
- `console.py`: the composition root, which builds all of it from `config.py`;
- `audit.py`, `store.py`: the audit log and the database it lives in;
- `bulk.py`, `plan_change.py`, `intents.py`, `tables.py`, `formatting.py`, `inputs.py`, `exports.py`, `run_log.py`.
"""
