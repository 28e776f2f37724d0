"""Billing Desk's logic, with no Streamlit in it, so every piece is usable (and tested) from plain Python.

A package per concern, each with a small face (its `__init__.py`), in layers: a part uses the parts below it and
never one that uses it, function-level imports included (tests/test_import_graph.py walks them). From the top:

- `console.py`: the composition root, which builds all of it from `config.py` (settings from the environment);
- `schema.py`: the whole schema gathered from every part that owns tables (store/ imports none of them);
- `desk/`: every operation a person can make, role-checked, writes audited and re-read (start here);
- `jobs/`, `outbox/`, `approvals/`, `directory/`: bulk lookups, queued e-mail, four-eyes requests, the customer
  directory, each with its tables;
- `auth/`: roles and the actor, the users file, password and single sign-on sessions, sign-in throttling;
- `audit/`: the audit log, its hash chain and its verification;
- `store/`: the database, its migrations and grants, the process leases and the shared rate budget;
- `payments/`: the Payments API client (knows nothing of the console);
- `errors.py` (ConfigError, below every part), `finance.py`, `bulk.py`, `plan_change.py`, `intents.py`,
  `tables.py`, `formatting.py`, `inputs.py`, `exports.py`, `run_log.py`, `portal_mail.py`, `preflight.py`.
"""
