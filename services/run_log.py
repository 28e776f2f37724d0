"""The console's logging, and how long each page run takes on the server.

Every run is logged at DEBUG (page, wall time, the run's own CPU time); a run slower than SLOW_RUN_SECONDS is
logged as a warning, so an operator sees a slow console in the logs before people report it. The wall time is
what the person waits for the server; the CPU time tells whether it went to the console's own work or to
waiting (for the API, or for a busy machine). The load test reads these lines to report the console's share.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

LOG_LEVEL_VARIABLE = "BILLING_DESK_LOG_LEVEL"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
SLOW_RUN_SECONDS = 2.0
RUN_LOGGER = logging.getLogger("billing_desk.runs")
# One line per run, parsed by tests/e2e/test_load.py: keep the shape.
RUN_LINE = "run page=%s wall_ms=%.1f cpu_ms=%.1f"


_configured = False


def configure_logging() -> None:
    """Once per process. The console's own loggers (`billing_desk.*`) log at INFO unless BILLING_DESK_LOG_LEVEL
    names another level (DEBUG adds a line per page run); libraries stay at INFO, so DEBUG is not their noise."""
    global _configured
    if _configured:
        return
    _configured = True
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    requested = os.environ.get(LOG_LEVEL_VARIABLE, "INFO").strip().upper()
    level = logging.getLevelName(requested)
    console_logger = logging.getLogger("billing_desk")
    if isinstance(level, int):
        console_logger.setLevel(level)
    else:  # an unknown name: say so and keep INFO, rather than refuse to start over a log setting
        console_logger.warning("%s=%r is not a log level; using INFO", LOG_LEVEL_VARIABLE, requested[:20])


@dataclass
class RunTimer:
    """Started as a run begins; `finish` logs the run once it ends, however it ends."""

    started: float = field(default_factory=time.perf_counter)
    started_cpu: float = field(default_factory=time.thread_time)  # each session's runs have their own thread

    def finish(self, page_title: str) -> tuple[float, float]:
        wall = time.perf_counter() - self.started
        cpu = time.thread_time() - self.started_cpu
        RUN_LOGGER.debug(RUN_LINE, page_title.replace(" ", "_"), wall * 1000, cpu * 1000)
        if wall > SLOW_RUN_SECONDS:
            RUN_LOGGER.warning("Slow run: page %s took %.1f s (%.1f s of it the console's own work)", page_title,
                               wall, cpu)
        return wall, cpu
