"""Console leases: each console process says, in the store, that it is alive.

Many console processes (replicas) share one store. Each keeps a lease: a row with its id (the boot id its
audit rows carry), process id, host, start and last heartbeat, and the moment it expires. A background
thread renews it every HEARTBEAT_EVERY; if a process dies, its lease runs out EXPIRES_AFTER later. A pending
audit row whose process holds no live lease was cut off mid-write: its outcome is unknown. Every process
looks for such rows when it starts and on every heartbeat (the `on_beat` callback, AuditLog.mark_interrupted),
so a crashed replica's writes read "unknown" about a minute later with no restart, while a live replica's
writes in flight are left alone.

A process need not wait out the lease of one it can see is dead: a lease records the PID namespace its
process id belongs to, and a process in the same one whose process no longer exists has crashed, so its lease
is ended at once. A console restarted on the same machine after a crash (the usual single-host deployment)
settles the crashed one's writes as it starts.

Times come from the store's clock: replicas on different hosts disagree about "now", the database does not.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Column, DateTime, Integer, Select, String, Table, delete, func, select, update
from sqlalchemy.engine import Connection, Engine

from .clock import now
from .engine import metadata

HEARTBEAT_EVERY = timedelta(seconds=10)
EXPIRES_AFTER = timedelta(seconds=60)  # six missed heartbeats: a slow store or a GC pause is not a death
KEEP_EXPIRED = timedelta(days=1)  # an expired lease stays visible this long (which replica died, and when)

log = logging.getLogger("billing_desk.leases")

console_leases = Table(
    "console_leases", metadata,
    Column("lease_id", String(40), primary_key=True),  # the process's boot id, as on its audit rows
    Column("process_id", Integer, nullable=False),
    Column("host", String(255), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("pid_namespace", String(80)),  # where process_id means something (see process_namespace)
)


def process_namespace() -> str | None:
    """The kernel boot and PID namespace this process lives in (Linux), so process ids can be compared: two
    leases with the same value can see each other's process. None where that can't be told."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return None


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, as another user's
        return False
    return False


def store_now(conn: Connection) -> datetime:
    """The store's clock. A SQLite file lives on one host, so that host's clock is the store's."""
    if conn.dialect.name == "postgresql":
        return conn.execute(select(func.now())).scalar_one()
    return now()


def live_lease_ids(conn: Connection) -> Select[tuple[str]]:
    """The ids of leases not yet expired, as a subquery: each lease carries its own expiry, so processes
    configured with different lease lengths still judge each other correctly."""
    return select(console_leases.c.lease_id).where(console_leases.c.expires_at > store_now(conn))


class ConsoleLease:
    def __init__(self, engine: Engine, lease_id: str, *, on_beat: Callable[[], object] = lambda: None,
                 heartbeat_every: timedelta = HEARTBEAT_EVERY, expires_after: timedelta = EXPIRES_AFTER) -> None:
        """`lease_id`: the process's boot id (AuditLog.boot_id). `on_beat` runs after each renewal, start
        included: AuditLog.mark_interrupted, which settles the rows of processes that are gone."""
        if expires_after < 2 * heartbeat_every:
            raise ValueError("A lease must outlive at least two heartbeats, or one late beat kills it.")
        self.engine, self.lease_id, self.on_beat = engine, lease_id, on_beat
        self.heartbeat_every, self.expires_after = heartbeat_every, expires_after
        self.namespace = process_namespace()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> ConsoleLease:
        """Takes the lease and settles what dead processes left (errors propagate: the console can't start
        without its store), then renews it in the background until `stop` or exit."""
        self.beat()
        self._thread = threading.Thread(target=self._run, name=f"console-lease-{self.lease_id[:8]}", daemon=True)
        self._thread.start()
        atexit.register(self.stop)
        return self

    def beat(self) -> None:
        """One heartbeat: renew, end the leases of processes seen dead, then settle what gone processes left."""
        with self.engine.begin() as conn:
            moment = store_now(conn)
            values = {"heartbeat_at": moment, "expires_at": moment + self.expires_after}
            # A lease deleted as expired (this process stalled past its expiry) is taken again.
            if not conn.execute(update(console_leases).where(console_leases.c.lease_id == self.lease_id)
                                .values(**values)).rowcount:
                conn.execute(console_leases.insert().values(
                    lease_id=self.lease_id, process_id=os.getpid(), host=socket.gethostname()[:255],
                    started_at=moment, pid_namespace=self.namespace, **values))
            self._end_dead_neighbours(conn, moment)
            conn.execute(delete(console_leases).where(console_leases.c.expires_at < moment - KEEP_EXPIRED))
        self.on_beat()

    def _end_dead_neighbours(self, conn: Connection, moment: datetime) -> None:
        """Live leases of processes in this PID namespace that no longer exist: they crashed, so their leases
        end now. (A process id reused by another process looks alive: that lease just runs its course.)"""
        if self.namespace is None:
            return
        neighbours = conn.execute(select(console_leases.c.lease_id, console_leases.c.process_id).where(
            (console_leases.c.pid_namespace == self.namespace) & (console_leases.c.lease_id != self.lease_id)
            & (console_leases.c.expires_at > moment))).all()
        dead = [lease_id for lease_id, pid in neighbours if process_gone(pid)]
        if dead:
            conn.execute(update(console_leases).where(console_leases.c.lease_id.in_(dead)).values(expires_at=moment))

    def stop(self, release: bool = True) -> None:
        """Stops the heartbeat. `release` ends the lease now, so other processes settle this one's pending
        rows at their next beat (it can no longer complete them); tests pass False to play a crash."""
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.heartbeat_every.total_seconds() + 5)
        atexit.unregister(self.stop)
        if release:
            try:
                with self.engine.begin() as conn:
                    conn.execute(delete(console_leases).where(console_leases.c.lease_id == self.lease_id))
            except Exception:  # at exit the store may be gone: the lease then simply expires
                log.warning("Could not release console lease %s; it expires on its own.", self.lease_id)

    def _run(self) -> None:
        while not self._stopped.wait(self.heartbeat_every.total_seconds()):
            try:
                self.beat()
            except Exception:  # the thread must outlive a store outage; say so once per outage
                if not self._failing:
                    log.warning("Console lease %s could not be renewed; if this lasts %s, other consoles "
                                "will mark this one's writes in flight as unknown.", self.lease_id,
                                self.expires_after, exc_info=True)
                self._failing = True
            else:
                if self._failing:
                    log.info("Console lease %s renewed again.", self.lease_id)
                self._failing = False
