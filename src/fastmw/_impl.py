"""Picks the core implementation once, at import.

``FASTMW_NO_EXTENSIONS`` set to 1/true/yes/on forces the pure-Python twin, as
does any interpreter other than CPython; a missing or broken compiled module
falls back to the pure twin. ``COMPILED`` says which one is live.

The middleware layer asks ``layer_core()`` which core a middleware is built on: ``core``,
unless a ``building_on(twin)`` block says otherwise (how the tests run one process's
middlewares on both twins, with one package and one set of context variables).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import ModuleType
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

# The core a ``building_on`` block chose for the middlewares built inside it (None: ``core``).
_BUILDING_ON: ContextVar[ModuleType | None] = ContextVar("fastmw_building_on", default=None)


def layer_core() -> ModuleType:
    """The core the middleware built now runs on: ``core``, or the one ``building_on`` chose."""
    chosen = _BUILDING_ON.get()
    return core if chosen is None else chosen


@contextmanager
def building_on(twin: ModuleType) -> Iterator[ModuleType]:
    """Build the middlewares made inside the block on ``twin`` (``fastmw._core`` or ``fastmw._core_py``)."""
    if getattr(twin, "Pipeline", None) is None or getattr(twin, "run_pipeline", None) is None:
        raise TypeError(f"building_on() needs a fastmw core module, not {twin!r}")
    token = _BUILDING_ON.set(twin)
    try:
        yield twin
    finally:
        _BUILDING_ON.reset(token)


__all__ = ["COMPILED", "building_on", "core", "env_flag", "extensions_disabled", "layer_core"]
