"""What a middleware works out once, at construction: which hooks are the user's and which
path its requests take (``docs/middleware.md`` has the table of what each override changes).

``overridden()`` (and ``defines()``) is the one place that compares a class's methods with the defaults; every
middleware and plugin reads its answer from the ``Route`` (or ``PluginRoute``) it built in
``__init__``, never from a method-identity check of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["AWAITED", "CORE", "ENGINE", "OWN_CALL", "SYNC", "PluginRoute", "Route", "defines", "overridden"]

# The paths a request can take through one middleware.
ENGINE = "engine"  # its core stage runs in the engine, fused with adjacent fastmw middlewares
AWAITED = "awaited"  # a Python layer awaits the user's hooks, then the engine runs the stage
OWN_CALL = "own __call__"  # the class defines __call__: it runs as written, a layer of its own

# How a context plugin's value is read.
CORE = "core"  # a core reader, from the raw headers
SYNC = "sync"  # the plugin's own synchronous steps, from the raw headers (no request object)


def overridden(cls: type, base: type, names: Iterable[str]) -> frozenset[str]:
    """The names among ``names`` that ``cls`` defines differently from ``base``."""
    return frozenset(name for name in names if getattr(cls, name, None) is not getattr(base, name, None))


def defines(cls: type, name: str, skip: Callable[[type], bool]) -> bool:
    """Whether a class of ``cls``'s MRO, other than those ``skip`` names, defines ``name`` itself
    (a method a library patched onto the class counts)."""
    return any(name in vars(klass) for klass in cls.__mro__ if not skip(klass))


@dataclass(frozen=True)
class Route:
    """One middleware's decision: the user's hooks it calls and the path of its requests."""

    path: str = ENGINE
    # The hooks the user's class overrides (method names).
    hooks: frozenset[str] = frozenset()
    # Whether a Python layer awaits the user's hooks before the stage runs (path AWAITED, or
    # OWN_CALL for such a class with its own ``__call__``).
    awaits: bool = False

    @property
    def fuses(self) -> bool:
        """Whether the engine may run this middleware's stage in an outer middleware's pipeline."""
        return self.path == ENGINE


@dataclass(frozen=True)
class PluginRoute:
    """One context plugin's decision: how its value is read and whether its response hook is awaited."""

    read: str = CORE  # CORE, SYNC or AWAITED
    # The built-in echo of the UUID plugins, done by the context stage.
    echo: bool = False
    # A user ``enrich_response``, awaited on the response start.
    enrich: bool = False
    hooks: frozenset[str] = frozenset()
