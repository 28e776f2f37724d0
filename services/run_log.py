"""The console's logging, and how long each page run takes on the server.

Every run is logged at DEBUG (page, wall time, the run's own CPU time); a run slower than SLOW_RUN_SECONDS is
logged as a warning, so an operator sees a slow console in the logs before people report it. The wall time is
what the person waits for the server; the CPU time tells whether it went to the console's own work or to
waiting (for the API, or for a busy machine). The load test reads these lines to report the console's share.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timezone
from dataclasses import dataclass, field

LOG_LEVEL_VARIABLE = "BILLING_DESK_LOG_LEVEL"
LOG_FORMAT_VARIABLE = "BILLING_DESK_LOG_FORMAT"  # "json": one JSON object per line
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
SLOW_RUN_SECONDS = 2.0
RUN_LOGGER = logging.getLogger("billing_desk.runs")
# One line per run, parsed by tests/e2e/test_load.py: keep the shape.
RUN_LINE = "run page=%s wall_ms=%.1f cpu_ms=%.1f"


_configured = False


class JsonLines(logging.Formatter):
    """One JSON object per line (BILLING_DESK_LOG_FORMAT=json), for a log collector: time (UTC), level, logger,
    message, the exception if any, and the fields a line carries for machines (an API call's request id,
    endpoint, status and time: services/payments/client.py)."""

    FIELDS = ("request_id", "method", "endpoint", "status", "elapsed_ms")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        entry.update({name: getattr(record, name) for name in self.FIELDS if hasattr(record, name)})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(text_format: str = LOG_FORMAT) -> None:
    """Once per process (the console's and the job worker's). The console's own loggers (`billing_desk.*`) log
    at INFO unless BILLING_DESK_LOG_LEVEL names another level (DEBUG adds a line per page run); libraries stay at
    INFO, so DEBUG is not their noise. BILLING_DESK_LOG_FORMAT=json writes JSON lines instead of text."""
    global _configured
    if _configured:
        return
    _configured = True
    handler = logging.StreamHandler()
    wanted = os.environ.get(LOG_FORMAT_VARIABLE, "text").strip().lower()
    handler.setFormatter(JsonLines() if wanted == "json" else logging.Formatter(text_format))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    if wanted not in ("json", "text"):
        logging.getLogger("billing_desk").warning("%s=%r is not a log format (json or text); using text",
                                                  LOG_FORMAT_VARIABLE, wanted[:20])
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
