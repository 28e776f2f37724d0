"""Four-eyes approvals: the policy (policy.py: which writes wait for a second person, who may approve, how long)
and the requests kept in the store (store.py). The desk (services/desk.py) files, decides and performs them;
this package holds no role checks of its own. Nothing is imported here: services/config.py reads the policy
while services/store.py (which the requests' table needs) is still being imported."""
