"""`python -m ui.serve [streamlit run options]`: the console's server, `streamlit run app.py` plus one thing.

Streamlit builds an app's resources when the first browser opens a page, so a console restarted after a crash
would leave its bulk jobs waiting until somebody looked. Started through this module, the server builds the
console (its store, sandbox and bulk-job workers: ui/console.py) as soon as Streamlit's runtime exists, with
the configuration Streamlit itself read (flags, `.streamlit/config.toml`, secrets), so jobs resume at once.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence

from streamlit.runtime import Runtime
from streamlit.web import cli

log = logging.getLogger("billing_desk")

SCRIPT = "app.py"
RUNTIME_WAIT_SECONDS = 120.0
THREAD_NAME = "billing-desk-start"
RUN_CONTEXT_LOGGER = "streamlit.runtime.scriptrunner_utils.script_run_context"


class _NotARunWarning(logging.Filter):
    """Streamlit warns when a cached function runs outside a page's run; this thread does so on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.threadName == THREAD_NAME and "ScriptRunContext" in record.getMessage())


def _build_when_the_runtime_exists() -> None:
    deadline = time.monotonic() + RUNTIME_WAIT_SECONDS
    while not Runtime.exists():  # exists once the CLI has read its flags and config and built the server
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    from .console import start_console_now  # imported late: it reads Streamlit's configuration

    logging.getLogger(RUN_CONTEXT_LOGGER).addFilter(_NotARunWarning())
    start_console_now()


def main(argv: Sequence[str] | None = None) -> int:
    threading.Thread(target=_build_when_the_runtime_exists, name=THREAD_NAME, daemon=True).start()
    arguments = list(sys.argv[1:] if argv is None else argv)
    return cli.main(args=["run", SCRIPT, *arguments], prog_name="streamlit") or 0


if __name__ == "__main__":
    raise SystemExit(main())
