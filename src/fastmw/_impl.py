"""Picks the core implementation once, at import.

``FASTMW_NO_EXTENSIONS`` set to 1/true/yes/on forces the pure-Python twin, as
does any interpreter other than CPython; a missing or broken compiled module
falls back to the pure twin. ``COMPILED`` says which one is live.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

TRUTHY = frozenset({"1", "true", "yes", "on"})


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to 1/true/yes/on (any case)."""
    return os.environ.get(name, "").strip().lower() in TRUTHY


def extensions_disabled() -> bool:
    """Whether the environment (or the interpreter) asks for the pure-Python core."""
    if sys.implementation.name != "cpython":
        return True
    return env_flag("FASTMW_NO_EXTENSIONS")


if TYPE_CHECKING:
    from fastmw import _core_py as core

    COMPILED = False
elif extensions_disabled():
    from fastmw import _core_py as core

    COMPILED = False
else:
    try:
        from fastmw import _core as core
    except ImportError:
        from fastmw import _core_py as core

        COMPILED = False
    else:
        COMPILED = True

__all__ = ["COMPILED", "core", "env_flag", "extensions_disabled"]
