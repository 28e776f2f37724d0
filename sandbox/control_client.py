"""A small client for the sandbox's own endpoints: test clock, faults, counters, and paying on hosted pages.

Tests and benchmarks use it to arrange what a real API can't be made to do on demand.
"""

from __future__ import annotations

from typing import Any

import requests


class SandboxControl:
    def __init__(self, root_url: str, api_key: str) -> None:
        self.root_url = root_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = api_key

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.root_url}/sandbox/control{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def advance_clock(self, *, days: float = 0, seconds: float = 0) -> dict[str, Any]:
        return self._call("POST", "/clock/advance", json={"days": days, "seconds": seconds})

    def now(self) -> str:
        return self._call("GET", "/clock")["now"]

    def add_fault(self, path: str = "*", **spec: Any) -> str:
        return self._call("POST", "/faults", json={"path": path, **spec})["id"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/faults")

    def mutations(self, operation: str | None = None) -> list[dict[str, Any]]:
        rows = self._call("GET", "/mutations")
        return [row for row in rows if operation is None or row["operation"] == operation]

    def stats(self) -> dict[str, int]:
        return self._call("GET", "/stats")

    def calls(self, contains: str = "") -> dict[str, int]:
        """API requests let through the rate limit, by path and query (those containing `contains`), e.g.
        `calls("customer-info")` counts each organization's lookups."""
        return {path: count for path, count in self._call("GET", "/calls").items() if contains in path}

    def organizations(self, status: str | None = None, canceling: bool | None = None) -> list[dict[str, Any]]:
        rows = self._call("GET", "/organizations")
        return [row for row in rows
                if (status is None or row["status"] == status)
                and (canceling is None or bool(row["canceling"]) == canceling)]

    def mailbox(self) -> list[dict[str, Any]]:
        """Every e-mail the sandbox's mailbox received, newest first: rcpt_to, subject, body, …"""
        return self._call("GET", "/mailbox")

    def set_profile(self, organization_id: str, **profile: Any) -> None:
        """What the customer typed about themselves: organizationName, name, email, address (a dict)."""
        self._call("POST", f"/organizations/{organization_id}/profile", json=profile)

    def pay(self, checkout_url: str, card: str = "4242 4242 4242 4242", expiry: str = "12 / 34",
            cvc: str = "123") -> requests.Response:
        """Posts the hosted checkout form as a browser would; the answer is the redirect (or the page again)."""
        return self.session.post(f"{checkout_url}/pay", data={"card_number": card, "expiry": expiry, "cvc": cvc},
                                 allow_redirects=False, timeout=10)
