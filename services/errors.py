"""The error every part of the console raises when it can't start as configured: the bottom layer, imported by
the store, the sign-in layer and the configuration alike, so none of them imports another for it."""

from __future__ import annotations


class ConfigError(Exception):
    """The console can't start with this configuration; the message says what to change (it is logged; a
    visitor sees only that the console is not configured)."""
