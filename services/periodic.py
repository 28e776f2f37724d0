"""A check run every so often in a daemon thread until stopped: the daily schedules' loop (the directory's
refresh, the revenue snapshot). A failed check is logged and tried again at the next one."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any


class PeriodicCheck:
    def __init__(self, check: Callable[[], Any], every: float, name: str, failure: str,
                 log: logging.Logger) -> None:
        """`failure`: the warning logged when a check raises (the store is down, …)."""
        self.check, self.every, self.name, self.failure, self.log = check, every, name, failure, log
        self._stop = threading.Event()

    def start(self) -> PeriodicCheck:
        threading.Thread(target=self._run, name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:
                self.log.warning(self.failure, exc_info=True)
            self._stop.wait(self.every)
