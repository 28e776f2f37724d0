"""Helpers for browsers on the cluster (deploy/cluster.py) through its nginx, shared by tests and benchmarks:
pin a browser to one replica, sign in, ask which replica answered."""

from __future__ import annotations

import requests
from playwright.sync_api import Browser, BrowserContext, Page

from deploy.cluster import Cluster

from .browser import login

ROUTE_COOKIE, REPLICA_HEADER = "billing_desk_route", "X-Billing-Desk-Replica"


def route_to(cluster: Cluster, replica: str) -> str:
    """A route cookie value nginx's consistent hash sends to `replica` (asked of nginx itself)."""
    for attempt in range(200):
        value = f"{attempt:032x}"  # nginx accepts only a 32-hex route
        answer = requests.get(f"{cluster.url}/_stcore/health", cookies={ROUTE_COOKIE: value}, timeout=5)
        if answer.headers.get(REPLICA_HEADER) == replica:
            return value
    raise AssertionError(f"no route cookie value reaches {replica}")


def pinned(browser: Browser, cluster: Cluster, replica: str) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_cookies([{"name": ROUTE_COOKIE, "value": route_to(cluster, replica), "url": cluster.url}])
    return context


def sign_in(page: Page, cluster: Cluster, path: str, username: str = "finance") -> None:
    """The login helper every browser test uses, with the cluster's own passwords (random, made at its start)."""
    login(page, cluster, username, path, password=cluster.passwords[username])  # type: ignore[arg-type]


def served_by(page: Page, cluster: Cluster) -> str:
    answer = page.request.get(f"{cluster.url}/_stcore/health")
    return answer.headers.get(REPLICA_HEADER.lower(), "")
