"""Fault injection: make chosen API paths slow, failing, hanging or malformed, on demand.

Faults come from start-up flags (latency and error rate for every call) and from the control endpoint
`/sandbox/faults`, which tests use to set one up precisely (a status on a path, N times).
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, field

from .store import new_id


@dataclass
class Fault:
    path: str = "*"  # an operation's last path segment, e.g. "customer-info", or "*" for all
    method: str | None = None
    status: int | None = None  # answer with this status and the error envelope
    code: str | None = None
    message: str | None = None
    latency_ms: int = 0
    hang_seconds: float = 0.0  # sleep this long; longer than the client's read timeout = a hang
    hang_after: bool = False  # hang after the operation ran (its effect lands, the answer is late)
    malformed: bool = False  # answer 200 with a body that is not JSON
    rate: float = 1.0  # probability that a matching request is hit
    remaining: int | None = None  # how many more requests it hits; None = until cleared
    id: str = field(default_factory=lambda: new_id("flt_", 10))
    hits: int = 0

    def matches(self, operation: str, method: str) -> bool:
        return (self.path in ("*", operation)) and (self.method is None or self.method.upper() == method)


class FaultRegistry:
    def __init__(self, latency_ms: int = 0, error_rate: float = 0.0, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self.base_latency_ms = latency_ms
        if error_rate > 0:
            self._faults.append(Fault(status=500, code="internal_error", rate=error_rate, id="flt_startup"))

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, object]]:
        with self._lock:
            return [asdict(fault) for fault in self._faults]

    def draw(self, operation: str, method: str) -> Fault | None:
        """The fault that hits this request, if any (consuming one of its `remaining` uses)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(operation, method) and self._random.random() < fault.rate:
                    fault.hits += 1
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None
