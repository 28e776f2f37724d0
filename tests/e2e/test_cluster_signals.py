"""`make cluster` (python -m deploy.cluster) on any signal: a SIGKILL of its whole process group leaves nothing
running (each part has a parent-death signal), the next start works at once, and SIGTERM stops every part in
order. Run as `make cluster` runs it, in a process group of its own, with real PostgreSQL, nginx and replicas."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deploy.cluster import ROOT, free_port

READY = "Billing Desk cluster on"


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _processes_under(folder: Path) -> list[int]:
    """Every live process whose command line or environment names the cluster's folder: PostgreSQL, nginx and
    the sandbox by their arguments, the replicas and the worker by their BILLING_DESK_DATA_DIR."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            text = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(folder).encode() in text and state != "Z":
            found.append(int(entry.name))
    return found


def _tree(root: int) -> set[int]:
    """The process and all its descendants now (the replicas and the worker name no folder on their command
    line): taken before a kill, since afterwards they belong to init."""
    rows = [line.split() for line in subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True,
                                                     text=True).stdout.splitlines()[1:]]
    found, grew = {root}, True
    while grew:
        more = {int(pid) for pid, parent in rows if int(parent) in found} - found
        found |= more
        grew = bool(more)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "X"
        if state != "Z":  # a zombie has exited, only not yet been reaped
            alive.add(pid)
    return alive


class Run:
    def __init__(self, folder: Path, ports: dict[str, int]) -> None:
        self.folder, self.ports = folder, ports
        self.output = folder.parent / f"{folder.name}-run.log"
        command = [sys.executable, "-m", "deploy.cluster", "--folder", str(folder), "--port", str(ports["nginx"]),
                   "--replica-port", str(ports["replica"]), "--postgres-port", str(ports["postgres"]),
                   "--sandbox-port", str(ports["sandbox"]), "--mailbox-port", str(ports["mailbox"])]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=self.output.open("w"), stderr=subprocess.STDOUT,
                                        process_group=0)  # as make runs it: its own group, to be signalled whole

    def wait_ready(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while READY not in self.output.read_text():
            assert self.process.poll() is None, self.output.read_text()[-3000:]
            assert time.monotonic() < deadline, self.output.read_text()[-3000:]
            time.sleep(0.3)
        assert requests.get(f"http://127.0.0.1:{self.ports['nginx']}/_stcore/health", timeout=5).text == "ok"

    def signal_group(self, sig: int) -> None:
        os.killpg(self.process.pid, sig)


def _all_ports(ports: dict[str, int]) -> list[int]:
    return [ports["nginx"], ports["postgres"], ports["sandbox"], ports["replica"], ports["replica"] + 1, ports["mailbox"]]


def _wait_until_gone(folder: Path, ports: dict[str, int], pids: set[int], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while _processes_under(folder) or _alive(pids) or any(_listening(port) for port in _all_ports(ports)):
        assert time.monotonic() < deadline, (_processes_under(folder), _alive(pids),
                                             [port for port in _all_ports(ports) if _listening(port)])
        time.sleep(0.3)


@pytest.fixture
def place() -> Iterator[tuple[Path, dict[str, int]]]:
    parent = Path(tempfile.mkdtemp(prefix="billing-desk-signals-"))  # PostgreSQL's user must reach it
    parent.chmod(0o755)
    replica = free_port()
    while _listening(replica + 1):
        replica = free_port()
    ports = {"nginx": free_port(), "postgres": free_port(), "sandbox": free_port(), "replica": replica,
             "mailbox": free_port()}
    yield parent / "cluster", ports
    for pid in _processes_under(parent):  # whatever a failed test left
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(parent, ignore_errors=True)


def test_a_sigkilled_cluster_leaves_nothing_running_and_starts_again(place: tuple[Path, dict[str, int]]) -> None:
    folder, ports = place
    first = Run(folder, ports)
    first.wait_ready()
    parts = _tree(first.process.pid)
    assert len(parts) >= 8  # it, PostgreSQL (and its own processes), the sandbox, two replicas, the worker, nginx
    assert len(_processes_under(folder)) >= 7  # the same, found by the folder they name
    first.signal_group(signal.SIGTERM)  # what a service manager sends first …
    time.sleep(0.2)
    first.signal_group(signal.SIGKILL)  # … and then, before the orderly stop can finish
    first.process.wait(10)
    _wait_until_gone(folder, ports, parts)

    second = Run(folder, ports)  # the same folder and ports: no lock file or port is left taken
    second.wait_ready()
    parts = _tree(second.process.pid)
    second.signal_group(signal.SIGTERM)
    assert second.process.wait(90) == 0
    assert "Stopped." in second.output.read_text()
    _wait_until_gone(folder, ports, parts, seconds=5)


def test_a_postgresql_left_by_an_older_release_is_stopped_at_start(place: tuple[Path, dict[str, int]]) -> None:
    """An older release ran PostgreSQL through `pg_ctl start` (daemonized): a killed run left it holding the folder.
    The next start stops it and says so, instead of failing on its lock file."""
    from deploy.postgres import ClusterPostgres

    folder, ports = place
    postgres = ClusterPostgres(folder / "postgres", ports["postgres"]).start()  # its data folder, made once
    postgres.stop()
    postgres._run("pg_ctl", "-D", str(postgres.data), "-l", str(postgres.folder / "daemon.log"), "-w", "-o",
                  f"-p {ports['postgres']} -k {postgres.folder} -c listen_addresses=127.0.0.1", "start")
    assert _listening(ports["postgres"])  # a daemon, as the older release started it, outliving its cluster
    run = Run(folder, ports)
    run.wait_ready()
    assert "left running" in run.output.read_text()
    parts = _tree(run.process.pid)
    run.signal_group(signal.SIGTERM)
    assert run.process.wait(90) == 0
    _wait_until_gone(folder, ports, parts, seconds=10)
