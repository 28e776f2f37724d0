"""A faithful local twin of the Payments API: a stateful HTTP server with hosted checkout and portal pages."""

from .server import RunningSandbox, start_sandbox
from .settings import SandboxSettings, new_test_key

__all__ = ["RunningSandbox", "SandboxSettings", "new_test_key", "start_sandbox"]
