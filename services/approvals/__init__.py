"""Four-eyes approvals: the policy (policy.py: which writes wait for a second person, who may approve, how long)
and the requests kept in the store (store.py). The desk (services/desk/four_eyes.py) files, decides and
performs them; this package holds no role checks of its own. Nothing is imported here, so that reading the
policy (services/config.py) doesn't import the requests' table and the store with it."""
