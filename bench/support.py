"""What the benchmarks share, below every one of them (bench/run.py composes them): the sandbox as a process of
its own, and the machine's description."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import requests

from sandbox.control_client import SandboxControl
from sandbox.settings import new_test_key

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class SandboxProcess:
    base_url: str
    control: SandboxControl
    key: str


@contextmanager
def sandbox_process(*flags: str, organizations: int = 74) -> Iterator[SandboxProcess]:
    """The sandbox as its own process, like a real API: no shared interpreter with the client."""
    from tests.support.browser import free_port

    port, key = free_port(), new_test_key()
    with tempfile.TemporaryDirectory() as data:
        process = subprocess.Popen([sys.executable, "-m", "sandbox", "--port", str(port), "--api-key", key,
                                    "--db", f"{data}/sandbox.sqlite3", "--organizations", str(organizations),
                                    *flags], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        control = SandboxControl(f"http://127.0.0.1:{port}", key)
        deadline = time.monotonic() + 60
        while True:
            try:
                control.stats()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.1)
        try:
            yield SandboxProcess(f"http://127.0.0.1:{port}/api/v1", control, key)
        finally:
            process.terminate()
            process.wait(timeout=10)


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}


def report(results: dict[str, Any], table: Callable[[dict[str, Any]], str],
           failures: Callable[[dict[str, Any]], list[str]], json_path: Path | None = None) -> int:
    """A section run alone: its results written to `json_path` if given, its table printed, and the exit code
    (1 when a target was missed, each named)."""
    import json

    if json_path:
        json_path.write_text(json.dumps(results, indent=2))
    print(table(results))
    missed = failures(results)
    if missed:
        print(f"Targets missed: {', '.join(missed)}")
    return 1 if missed else 0
