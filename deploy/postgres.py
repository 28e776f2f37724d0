"""The cluster's PostgreSQL: Debian's server in a data folder of its own (`.data/cluster/postgres/`), kept between
runs, on a loopback port, with the two roles of docs/deployment.md (an owner that migrates, a console role that
can only append to the audit log).

PostgreSQL refuses to run as root, and `make cluster` often runs as root on a fresh machine: then the folder
belongs to the `postgres` user and the server runs as that user. The server is the cluster's own child (not
daemonized by `pg_ctl`), with a parent-death signal: a `make cluster` killed with SIGKILL takes it down too (a
fast shutdown), instead of leaving it holding the folder's lock for the next start. A server left running by a
killed run of an older release is found at start and stopped, with a line saying so. Authentication is `trust` on
127.0.0.1 only: this is one machine's rehearsal of production, not production (docs/deployment.md says what a
real server needs: passwords, TLS, backups).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg

from .supervision import die_with_parent

DATABASE, OWNER, CONSOLE_ROLE = "billing_desk", "billing_desk_owner", "billing_desk_console"
INSTALL_HINT = "PostgreSQL's server isn't installed: `make cluster` installs Debian's postgresql (apt-get)."


class PostgresMissing(RuntimeError):
    pass


def server_binaries(install_hint: str = INSTALL_HINT) -> Path:
    """The newest installed server's bin folder (Debian keeps one per major version); the tests' throwaway
    server (tests/support/postgres.py) finds it here too, with its own hint."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(Path(path).parts[-3]))
    if found:
        return Path(found[-1]).parent
    if on_path := shutil.which("initdb"):
        return Path(on_path).resolve().parent
    raise PostgresMissing(install_hint)


SHUTDOWN = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}  # PostgreSQL's own


@dataclass
class ClusterPostgres:
    folder: Path  # holds data/, the socket and postgres.log
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, role: str = OWNER, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://{role}@127.0.0.1:{self.port}/{database}"

    # --- the server -------------------------------------------------------------------------------------
    def start(self) -> ClusterPostgres:
        """Creates the data folder the first time, then starts the server and waits until it accepts."""
        self.folder.mkdir(parents=True, exist_ok=True)
        root = os.geteuid() == 0
        if root:
            shutil.chown(self.folder, "postgres", "postgres")
            reach = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-w", str(self.folder)])
            if reach.returncode != 0:
                raise RuntimeError(f"PostgreSQL runs as the postgres user, which can't reach {self.folder} (a "
                                   "folder above it is private): choose a --folder it can reach, e.g. under /var/tmp.")
        if not (self.data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--encoding=UTF8",
                      "--no-instructions")
        if (self.data / "postmaster.pid").exists():
            if self._running():  # a killed run's server (or another cluster on this folder): stop it first
                print(f"A PostgreSQL left running in {self.data} by an earlier run was stopped.", file=sys.stderr,
                      flush=True)
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            else:
                (self.data / "postmaster.pid").unlink(missing_ok=True)  # left by a machine that went down with it
        self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [str(server_binaries() / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.folder),
             "-c", "listen_addresses=127.0.0.1"], cwd=self.folder, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True, user="postgres" if root else None, group="postgres" if root else None,
            extra_groups=[] if root else None, preexec_fn=die_with_parent(signal.SIGINT))  # SIGINT: fast shutdown
        try:
            self._wait_until_it_accepts()
        except BaseException:
            self.stop("immediate")
            raise
        return self

    def stop(self, mode: str = "fast") -> None:
        """`fast`: sessions are ended and the data is flushed; `immediate` is a crash, for tests."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(SHUTDOWN[mode])
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGQUIT)
                self.process.wait(10)
        elif (self.data / "postmaster.pid").exists() and self._running():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        if self._log is not None:
            self._log.close()
            self._log = None

    def _running(self) -> bool:
        done = subprocess.run(self._command("pg_ctl", "-D", str(self.data), "status"), capture_output=True)
        return done.returncode == 0

    def _wait_until_it_accepts(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                psycopg.connect(self._admin_dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"PostgreSQL exited ({self.process.returncode}) before it accepted "
                                       f"connections (see {self.log_file}).") from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _command(self, program: str, *arguments: str) -> list[str]:
        command = [str(server_binaries() / program), *arguments]
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def _run(self, program: str, *arguments: str) -> None:
        done = subprocess.run(self._command(program, *arguments), capture_output=True, text=True, timeout=120,
                              cwd=self.folder)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
                               f" (see {self.log_file})")

    # --- the database and its roles ----------------------------------------------------------------------
    @property
    def _admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def ensure_database(self) -> None:
        """The roles and database of docs/deployment.md, created once (the schema comes from the migrations,
        run as the owner; the console role's grants after them)."""
        with psycopg.connect(self._admin_dsn, autocommit=True) as admin:
            for role in (OWNER, CONSOLE_ROLE):
                if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    admin.execute(f"CREATE ROLE {role} LOGIN")
            if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                admin.execute(f"CREATE DATABASE {DATABASE} OWNER {OWNER}")
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname={DATABASE}",
                             autocommit=True) as database:
            database.execute(f"ALTER SCHEMA public OWNER TO {OWNER}")
            database.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
