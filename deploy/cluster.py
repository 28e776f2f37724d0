"""`make cluster` (`python -m deploy.cluster`): the production shape on this machine, in the foreground.

    PostgreSQL (.data/cluster/postgres) ─ migrations (as the owner) ─ grants for the console role
    the Payments API sandbox (one process, so every replica sees the same customers)
    console replica-1, replica-2 ── nginx on one port (sticky sessions, deploy/nginx/)
    a bulk-job worker (`python -m services.jobs worker`) beside the replicas' own worker threads

Every replica gets the settings replicas must share (the cookie key, the users file, the store URL, the API
URL and key) and is checked with `python -m services.preflight` before it starts, as systemd's ExecStartPre
does in docs/deployment.md. It prints `Billing Desk cluster on http://127.0.0.1:PORT` when nginx answers, and
stops everything on Ctrl-C or SIGTERM, in order; a SIGKILL of it still takes every part down (each has a
parent-death signal, deploy/supervision.py), and a PostgreSQL left by an older killed run is stopped at the next
start. A replica (or the worker) that dies is reported and started again (as systemd's
`Restart=always` would), unless `--no-restart`.

The tests (tests/e2e/test_cluster.py) start the same `Cluster` in a temporary folder and kill its parts.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import requests

from .nginx import site_config, standalone_config
from .postgres import CONSOLE_ROLE, ClusterPostgres
from .supervision import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
NGINX = Path("/usr/sbin/nginx")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(url: str, what: str, process: subprocess.Popen[bytes] | None, seconds: float = 60) -> None:
    """Until `url` answers 200; fails early if the process behind it has exited."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode}) before it answered.")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer at {url} within {seconds:.0f} s.")


@dataclass
class Child:
    """One server process of the cluster, its output in a log file."""
    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None
    port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> Child:
        self._log = self.log_path.open("ab")
        # A session of its own: Ctrl-C reaches the orchestrator, which stops the parts in order; and a parent-death
        # signal, so a SIGKILL of the orchestrator still stops the part (deploy/supervision.py).
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        preexec_fn=die_with_parent())
        if self.health_url:
            try:
                wait_for(self.health_url, self.name, self.process)
            except RuntimeError as failure:  # what it said last, so the reason isn't lost with its folder
                self._log.flush()
                said = self.log_path.read_text(errors="replace").strip().splitlines()[-12:]
                raise RuntimeError("\n".join([str(failure), *("  " + line for line in said)])) from None
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: a crash, for tests."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)

    def stop(self, sig: int = signal.SIGTERM, seconds: float = 15) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Cluster:
    folder: Path  # everything it keeps: the database, the sandbox's state, the users, the cookie key, logs
    port: int = 8080
    replica_count: int = 2
    replica_ports: list[int] = field(default_factory=list)
    postgres_port: int = 5433
    sandbox_port: int = 8790
    mailbox_port: int = 8725  # the sandbox's SMTP mailbox: the replicas e-mail portal links there
    python: str = sys.executable
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. a shorter lease for tests
    postgres: ClusterPostgres = field(init=False)
    sandbox: Child = field(init=False)
    replicas: list[Child] = field(init=False, default_factory=list)
    worker: Child = field(init=False)  # a bulk-job worker process beside the replicas' own worker threads
    nginx: Child = field(init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}/api/v1"

    def start(self) -> Cluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        if not NGINX.exists():
            raise RuntimeError("nginx isn't installed: `make cluster` installs Debian's nginx (apt-get).")
        try:
            self._start_store()
            self._start_sandbox()
            for number in range(1, self.replica_count + 1):
                self.replicas.append(self._replica(number).start())
            self.worker = self._worker().start()
            self._start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    # --- the parts ----------------------------------------------------------------------------------------
    def _start_store(self) -> None:
        self.postgres = ClusterPostgres(self.folder / "postgres", self.postgres_port).start()
        self.postgres.ensure_database()
        for step in (["upgrade"], ["grant", CONSOLE_ROLE]):  # as the owner, as docs/deployment.md does
            done = subprocess.run([self.python, "-m", "services.store", "--url", self.postgres.url(), *step],
                                  cwd=ROOT, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"services.store {step[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def _start_sandbox(self) -> None:
        key_file = self.folder / "sandbox.key"
        if not key_file.exists():
            key_file.write_text(f"bsk_test_{secrets.token_hex(16)}\n")
        self.api_key = key_file.read_text().strip()
        self.sandbox = Child("sandbox", [self.python, "-m", "sandbox", "--port", str(self.sandbox_port),
                                         "--api-key", self.api_key, "--db", str(self.folder / "sandbox.sqlite3"),
                                         "--smtp-port", str(self.mailbox_port)],
                             {**os.environ}, self.folder / "sandbox.log",
                             health_url=f"http://127.0.0.1:{self.sandbox_port}/openapi.json",
                             port=self.sandbox_port).start()

    def replica_env(self, number: int) -> dict[str, str]:
        """What a replica is started with: the shared settings, and a data folder of its own."""
        users = self.folder / "users.yaml"
        if not users.exists():
            self._make_users(users)
        cookie_key, audit_key = self.folder / "cookie.key", self.folder / "audit.key"
        for key in (cookie_key, audit_key):  # made on the first start, kept: the same for every part
            if not key.exists():
                key.touch(mode=0o600)
                key.write_text(secrets.token_urlsafe(48))
        environ = {name: value for name, value in os.environ.items()
                   if not name.startswith(("PAYMENTS_", "BILLING_DESK_", "AUDIT_", "SANDBOX_"))}
        return {**environ,
                "PAYMENTS_API_URL": self.api_url, "PAYMENTS_API_KEY": self.api_key,
                "AUDIT_DATABASE_URL": self.postgres.url(CONSOLE_ROLE),
                "BILLING_DESK_COOKIE_KEY": cookie_key.read_text().strip(),
                "BILLING_DESK_AUDIT_KEY": audit_key.read_text().strip(),
                "BILLING_DESK_USERS": str(users),
                "BILLING_DESK_PUBLIC_URL": self.url,
                "BILLING_DESK_TRUSTED_PROXIES": "127.0.0.1",
                "BILLING_DESK_DATA_DIR": str(self.folder / f"replica-{number}"),
                "BILLING_DESK_SMTP_HOST": "127.0.0.1", "BILLING_DESK_SMTP_PORT": str(self.mailbox_port),
                "BILLING_DESK_SMTP_TLS": "none", "BILLING_DESK_SMTP_SENDER": "billing@sandbox.invalid",
                **self.extra_env}

    @property
    def passwords(self) -> dict[str, str]:
        """The cluster's three users (one per role) and their passwords, made on its first start."""
        lines = (self.folder / "passwords.txt").read_text().split()
        return dict(line.split(":", 1) for line in lines)

    def _make_users(self, users: Path) -> None:
        """One user per role with a random password: a users file as production has (the demo passwords are
        refused there), the passwords kept beside it for the person who started the cluster."""
        from services.auth.users import add_user

        passwords = {role: secrets.token_urlsafe(12) for role in ("support", "finance", "admin")}
        for role, password in passwords.items():
            add_user(users, role, role, password)
        note = self.folder / "passwords.txt"
        note.touch(mode=0o600)
        note.write_text("".join(f"{role}:{password}\n" for role, password in passwords.items()))

    def _replica(self, number: int) -> Child:
        if len(self.replica_ports) < number:
            self.replica_ports.append(free_port())
        port = self.replica_ports[number - 1]
        env = self.replica_env(number)
        checked = subprocess.run([self.python, "-m", "services.preflight", "--secrets", "/nonexistent"], cwd=ROOT,
                                 env=env, capture_output=True, text=True, timeout=120)
        if checked.returncode != 0:
            raise RuntimeError(f"replica-{number}: {checked.stderr.strip()}")
        return Child(f"replica-{number}",
                     [self.python, "-m", "ui.serve", "--server.address", "127.0.0.1",
                      "--server.port", str(port), "--server.headless", "true"],
                     env, self.folder / f"replica-{number}.log",
                     health_url=f"http://127.0.0.1:{port}/_stcore/health", port=port)

    def _worker(self) -> Child:
        """`python -m services.jobs worker`: runs bulk jobs with the replicas' settings, and takes over a job
        whose replica died."""
        env = {**self.replica_env(0), "BILLING_DESK_DATA_DIR": str(self.folder / "worker")}
        return Child("worker", [self.python, "-m", "services.jobs", "worker"], env, self.folder / "worker.log")

    def restart_replica(self, number: int) -> Child:
        """Starts replica `number` again on its port (after a crash or a rolling upgrade)."""
        old = self.replicas[number - 1]
        old.stop()
        self.replicas[number - 1] = self._replica(number).start()
        return self.replicas[number - 1]

    def _start_nginx(self) -> None:
        prefix = self.folder / "nginx"
        prefix.mkdir(exist_ok=True)
        (prefix / "logs").mkdir(exist_ok=True)
        site = site_config(listen=self.port, listen_address="127.0.0.1",  # this machine only: no TLS here
                           replicas=[f"127.0.0.1:{port}" for port in self.replica_ports])
        conf = prefix / "nginx.conf"
        conf.write_text(standalone_config(prefix=prefix, site=site))
        tested = subprocess.run([str(NGINX), "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True)
        if tested.returncode != 0:
            raise RuntimeError(f"nginx refused its configuration: {tested.stderr.strip()}")
        self.nginx = Child("nginx", [str(NGINX), "-p", str(prefix), "-c", str(conf)], {**os.environ},
                           self.folder / "nginx.log", health_url=f"{self.url}/_stcore/health", port=self.port).start()

    # --- stopping -------------------------------------------------------------------------------------
    def stop(self) -> None:
        """nginx first (no new requests), then the replicas, the sandbox and the database."""
        if hasattr(self, "nginx"):
            self.nginx.stop(signal.SIGQUIT)  # graceful: open websockets are let finish
        for replica in self.replicas:
            replica.stop()
        if hasattr(self, "worker"):
            self.worker.stop()
        if hasattr(self, "sandbox"):
            self.sandbox.stop()
        if hasattr(self, "postgres"):
            try:
                self.postgres.stop()
            except RuntimeError as problem:
                print(f"PostgreSQL did not stop cleanly: {problem}", file=sys.stderr)

    def watch(self, restart: bool = True) -> None:
        """Until stopped: reports a part that died, and starts a dead replica again."""
        while True:
            time.sleep(1)
            for number, replica in enumerate(self.replicas, start=1):
                if not replica.alive():
                    code = replica.process.returncode if replica.process else None
                    print(f"{replica.name} stopped (exit {code}); nginx sends its people to the others."
                          + (" Starting it again…" if restart else ""), flush=True)
                    if restart:
                        self.restart_replica(number)
                        print(f"{replica.name} is back on port {self.replica_ports[number - 1]}.", flush=True)
            if not self.worker.alive():
                print(f"The bulk-job worker stopped (exit {self.worker.process.returncode if self.worker.process else None})"
                      + ("; starting it again…" if restart else "."), flush=True)
                if restart:
                    self.worker = self._worker().start()
            for part in (self.nginx, self.sandbox):
                if not part.alive():
                    raise RuntimeError(f"{part.name} stopped (exit {part.process.returncode if part.process else None});"
                                       f" see {part.log_path}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", 8080)))
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--replica-port", type=int, default=8601, help="the first replica's port; the next ones follow")
    parser.add_argument("--postgres-port", type=int, default=5433)
    parser.add_argument("--sandbox-port", type=int, default=8790)
    parser.add_argument("--mailbox-port", type=int, default=8725, help="the sandbox's SMTP mailbox")
    parser.add_argument("--folder", type=Path, default=ROOT / ".data" / "cluster")
    parser.add_argument("--no-restart", action="store_true", help="leave a replica that dies dead")
    args = parser.parse_args(argv)

    def stop_on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_sigterm)
    cluster = Cluster(args.folder, port=args.port, replica_count=args.replicas,
                      replica_ports=[args.replica_port + number for number in range(args.replicas)],
                      postgres_port=args.postgres_port, sandbox_port=args.sandbox_port, mailbox_port=args.mailbox_port)
    try:
        print(f"Starting PostgreSQL, the sandbox, {args.replicas} console replicas and nginx in {args.folder} …",
              flush=True)
        cluster.start()
        print(f"Billing Desk cluster on {cluster.url}", flush=True)
        print(f"  replicas on ports {', '.join(map(str, cluster.replica_ports))} · PostgreSQL on "
              f"{cluster.postgres_port} · sandbox API (test mode) on {cluster.sandbox_port} · e-mail to customers in "
              f"http://127.0.0.1:{cluster.sandbox_port}/sandbox/mailbox", flush=True)
        print("  sign in as " + ", ".join(f"{name} / {password}" for name, password in cluster.passwords.items())
              + f" (kept in {args.folder / 'passwords.txt'}) · Ctrl-C or SIGTERM stops everything", flush=True)
        cluster.watch(restart=not args.no_restart)
    except KeyboardInterrupt:
        print("Stopping the cluster…", flush=True)
    except RuntimeError as problem:
        print(f"The cluster can't run: {problem}", file=sys.stderr, flush=True)
        cluster.stop()
        return 1
    cluster.stop()
    print("Stopped.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
