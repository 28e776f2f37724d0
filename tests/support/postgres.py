"""A throwaway PostgreSQL server for the store tests: one per test session, one fresh database per test.

The server refuses to run as root, and tests and CI run as root, so as root everything runs through
`runuser -u postgres` in a temporary folder that user owns (as any other user, as that user). It listens on
a free loopback port with trust authentication (nothing but this machine can reach it), and durability is
off: the data is thrown away, and fsync is what makes small databases slow. Nothing here depends on pytest.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from deploy.postgres import PostgresMissing, server_binaries as _installed_binaries  # noqa: F401 (PostgresMissing: re-exported)

INSTALL_HINT = ("PostgreSQL's server isn't installed (no /usr/lib/postgresql/*/bin/initdb): `make test` installs "
                "Debian's postgresql, or run `apt-get install -y postgresql`.")
# Fast and throwaway: the data dies with the test session.
SERVER_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=200",
                   "listen_addresses=127.0.0.1")


def server_binaries() -> Path:
    return _installed_binaries(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    folder: Path
    port: int
    bin: Path
    started_in: float = 0.0  # seconds initdb + start took
    _admin: psycopg.Connection | None = field(default=None, repr=False)
    _count: int = 0

    # --- the server -------------------------------------------------------------------------------------
    @classmethod
    def start(cls) -> PostgresServer:
        began = time.perf_counter()
        binaries = server_binaries()
        folder = Path(tempfile.mkdtemp(prefix="billing-desk-pg-"))
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        server = cls(folder, 0, binaries)
        try:
            server._run("initdb", "-D", str(folder / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                        "--locale=C.UTF-8", "--no-sync")
            server._listen()
            server._admin = psycopg.connect(server.admin_dsn, autocommit=True)
        except BaseException:
            server.stop()
            raise
        server.started_in = time.perf_counter() - began
        return server

    def _listen(self) -> None:
        for attempt in range(3):  # a free port may be taken by someone else before the server binds it
            self.port = _free_port()
            options = " ".join([f"-p {self.port}", f"-k {self.folder}",
                                *(f"-c {setting}" for setting in SERVER_SETTINGS)])
            try:
                self._run("pg_ctl", "-D", str(self.folder / "data"), "-o", options, "-l",
                          str(self.folder / "server.log"), "-w", "-t", "60", "start")
                return
            except RuntimeError as problem:
                if attempt == 2:
                    server_log = self.folder / "server.log"
                    log = server_log.read_text(errors="replace")[-2000:] if server_log.exists() else ""
                    raise RuntimeError(f"{problem}\n{log}") from None

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        try:
            if (self.folder / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program: str, *arguments: str) -> None:
        command = [str(self.bin / program), *arguments]
        if os.geteuid() == 0:  # the server won't run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    # --- databases --------------------------------------------------------------------------------------
    @property
    def admin_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str = "template0") -> str:
        """A new, empty database; returns its SQLAlchemy URL. FILE_COPY copies the template's files (no WAL per
        page), the fast way for small databases."""
        assert self._admin is not None, "the server is stopped"
        self._count += 1
        name = f"store_{self._count}"
        self._admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        """WITH (FORCE) ends what a test left connected (pools, lease threads)."""
        if self._admin is not None:
            self._admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[-1]}" WITH (FORCE)')
