"""What keeps `make cluster`'s children from outliving it: Linux's parent-death signal.

Each child is started in a session of its own (Ctrl-C in the terminal reaches only the supervisor, which stops
the parts in order), so a SIGKILL of the supervisor's process group would otherwise leave them all running:
PostgreSQL holding its folder's lock, the replicas and the sandbox holding their ports. With
`prctl(PR_SET_PDEATHSIG)` the kernel sends each child a signal the moment the supervisor dies, however it dies.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A `preexec_fn`: the child gets `sig` when the process that started it dies. Runs after Popen has changed
    the child's user (a change of user clears the setting, so it must come last)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def arrange() -> None:
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")

    return arrange
