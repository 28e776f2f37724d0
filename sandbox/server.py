"""Run the sandbox: in this process (a background thread, for the console and tests) or as a command."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import uvicorn

from .app import create_app
from .mailbox import Mailbox
from .settings import SandboxSettings


@dataclass
class RunningSandbox:
    """A sandbox serving on loopback. `base_url` ends in /api/v1, as the real API's does."""

    host: str
    port: int
    api_key: str = field(repr=False)
    settings: SandboxSettings = field(repr=False)
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    mailbox: Mailbox | None = field(default=None, repr=False)  # its SMTP server (sandbox/mailbox.py)

    @property
    def smtp_port(self) -> int | None:
        return self.mailbox.port if self.mailbox else None

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api/v1"

    def stop(self) -> None:
        if self.mailbox is not None:
            self.mailbox.stop()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server_app_store_close()

    def _server_app_store_close(self) -> None:
        app = self._server.config.app
        store = getattr(getattr(app, "state", None), "store", None)
        if store is not None:
            store.close()


def start_sandbox(settings: SandboxSettings | None = None, host: str = "127.0.0.1", port: int = 0,
                  startup_timeout: float = 20.0, smtp_port: int = 0) -> RunningSandbox:
    """Starts the sandbox in a daemon thread and returns once it accepts connections (port 0 = any free), with
    its mailbox's SMTP server on `smtp_port` (0 = any free)."""
    settings = settings or SandboxSettings()
    app = create_app(settings)
    # IPPROTO_TCP named: Python then sets TCP_NODELAY, so kept-alive requests are not held ~40 ms by Nagle.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(app, host=host, port=bound_port, log_level="warning", access_log=False,
                            lifespan="off", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="payments-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("The payments sandbox did not start.")
        time.sleep(0.02)
    mailbox = Mailbox(app.state.store, host, smtp_port).start()
    return RunningSandbox(host, bound_port, settings.api_key, settings, server, thread, mailbox)
