"""The twins side by side: one call made on each, equal outcomes demanded."""

from __future__ import annotations

import re
from collections.abc import Callable
from types import ModuleType
from typing import Any

from fastmw import _core as COMPILED
from fastmw import _core_py as PURE

# A result this deep is cut: a hostile list can be made to contain itself.
MAX_DEPTH = 6
# The random ids the core makes (new_request_id, new_trace_id, new_span_id): compared by shape.
RANDOM_ID = re.compile(r"(?<![0-9a-f])(?:[0-9a-f]{32}|[0-9a-f]{16})(?![0-9a-f])", re.IGNORECASE)
Call = Callable[[ModuleType], Any]


class Mismatch(AssertionError):
    """The compiled twin and the pure twin gave different outcomes for one call."""


def describe(value: Any, depth: int = 0) -> Any:
    """A comparable rendering of a result: exact types as they are, others by type name and
    content (read without running their own methods), floats by repr (NaN equals NaN)."""
    kind = type(value)
    if value is None or kind in (bool, int, str, bytes):
        return value
    if depth >= MAX_DEPTH:
        return (kind.__name__, "...")
    if kind is float:
        return ("float", repr(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return (kind.__name__, bytes(memoryview(value)))
    if isinstance(value, str):
        return (kind.__name__, str.__str__(value))
    if isinstance(value, (int, float)):
        return (kind.__name__, repr(float(value)) if isinstance(value, float) else int.__index__(value))
    if isinstance(value, list):
        return (kind.__name__, [describe(item, depth + 1) for item in list.__iter__(value)])
    if isinstance(value, tuple):
        return (kind.__name__, [describe(item, depth + 1) for item in tuple.__iter__(value)])
    if kind is COMPILED.TraceContext or kind is PURE.TraceContext:
        return ("TraceContext", *(describe(getattr(value, field)) for field in TRACE_FIELDS))
    return (kind.__name__,)


TRACE_FIELDS = ("trace_id", "span_id", "parent_id", "flags", "tracestate")


def random_ids_hidden(value: Any, given: str) -> Any:
    """``value`` with every id the core made up (32 or 16 hex characters that are not in the
    input ``given``, itself lower-cased) replaced by its shape, in str and bytes alike."""
    if type(value) is bytes:
        value = value.decode("latin-1")
    if type(value) is str:
        return RANDOM_ID.sub(lambda match: match[0] if match[0].lower() in given else f"<{len(match[0])} hex>", value)
    if type(value) is tuple or type(value) is list:
        return type(value)(random_ids_hidden(item, given) for item in value)
    return value


def outcome(call: Call, core: ModuleType) -> tuple[Any, ...]:
    """What ``call(core)`` did: its described result, or its exception's type and message."""
    try:
        result = call(core)
    except Exception as exc:  # every exception is an outcome to compare, not a failure
        return ("raised", type(exc), str(exc))
    return ("returned", describe(result))


def compare(what: str, call: Call, *, random_ids: bytes | None = None) -> None:
    """Run ``call`` on both twins; raise ``Mismatch`` unless the outcomes are equal.

    ``call`` builds its own arguments each time, so each twin gets fresh (equal) objects.
    With ``random_ids`` (the fuzz input and the words the target adds to it), ids the core
    made up are compared by shape only.
    """
    compiled = outcome(call, COMPILED)
    pure = outcome(call, PURE)
    if random_ids is not None:
        given = random_ids.decode("latin-1").lower()
        compiled, pure = random_ids_hidden(compiled, given), random_ids_hidden(pure, given)
    if compiled != pure:
        raise Mismatch(f"{what}\n  compiled: {compiled!r}\n  pure:     {pure!r}")
