"""Trace context: the TraceContext type and the kernel a request's trace comes from."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastmw._core_py._common import _type_name
from fastmw._core_py.headers import _entry
from fastmw._core_py.trace import (
    FLAG_RANDOM,
    FLAG_SAMPLED,
    KNOWN_FLAGS,
    TRACEPARENT,
    TRACESTATE,
    _checked_flags,
    _checked_id,
    _fields,
    _random_hex,
)
from fastmw._core_py.tracestate import _tracestate_of_raw, _tracestate_of_values

# --------------------------------------------------------------------------- trace context


class TraceContext:
    """This service's span in a trace: read-only, hex ``str`` ids.

    ``parent_id`` is the caller's span id (None when this service started the trace);
    ``flags`` are the trace flags this service propagates; ``tracestate`` is the kept
    tracestate (None when there is none). A given tracestate is checked and normalized.
    """

    __slots__ = ("flags", "parent_id", "span_id", "trace_id", "tracestate")
    trace_id: str
    span_id: str
    parent_id: str | None
    flags: int
    tracestate: str | None

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        parent_id: str | None = None,
        flags: int = 0,
        tracestate: str | None = None,
    ) -> None:
        init = object.__setattr__
        init(self, "trace_id", _checked_id(trace_id, 32, "trace_id"))
        init(self, "span_id", _checked_id(span_id, 16, "span_id"))
        init(self, "parent_id", None if parent_id is None else _checked_id(parent_id, 16, "parent_id"))
        init(self, "flags", _checked_flags(flags))
        if tracestate is not None and not isinstance(tracestate, str):
            raise TypeError(f"tracestate must be a str or None, not {_type_name(tracestate)}")
        init(self, "tracestate", None if tracestate is None else _tracestate_of_values((tracestate,), True))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"attribute '{name}' of '{__name__}.TraceContext' objects is not writable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"attribute '{name}' of '{__name__}.TraceContext' objects is not writable")

    @property
    def sampled(self) -> bool:
        """Whether the sampled flag (0x01) is set."""
        return bool(self.flags & FLAG_SAMPLED)

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` value naming this span (e.g. for ``traceresponse``)."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def child_traceparent(self) -> str:
        """A ``traceparent`` for an outgoing call: this trace and flags, a new span id."""
        return f"00-{self.trace_id}-{_random_hex(8)}-{self.flags:02x}"

    def __repr__(self) -> str:
        return (
            f"TraceContext(trace_id={self.trace_id!r}, span_id={self.span_id!r}, parent_id={self.parent_id!r}, "
            f"flags={self.flags!r}, tracestate={self.tracestate!r})"
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not TraceContext:
            return NotImplemented
        return (
            self.trace_id == other.trace_id
            and self.span_id == other.span_id
            and self.parent_id == other.parent_id
            and self.flags == other.flags
            and self.tracestate == other.tracestate
        )

    def __hash__(self) -> int:
        return hash((self.trace_id, self.span_id, self.parent_id, self.flags, self.tracestate))

    def __reduce__(self) -> tuple[Any, ...]:
        return (TraceContext, (self.trace_id, self.span_id, self.parent_id, self.flags, self.tracestate))


def _context(trace_id: str, span_id: str, parent_id: str | None, flags: int, tracestate: str | None) -> TraceContext:
    """A TraceContext from values the kernel has already checked."""
    context = object.__new__(TraceContext)
    init = object.__setattr__
    init(context, "trace_id", trace_id)
    init(context, "span_id", span_id)
    init(context, "parent_id", parent_id)
    init(context, "flags", flags)
    init(context, "tracestate", tracestate)
    return context


# --------------------------------------------------------------------------- the kernel


def trace_from_headers(headers: Iterable[Any], sample_new: bool = False) -> TraceContext:
    """The request's ``TraceContext`` from raw ASGI headers, with a new span id.

    A valid ``traceparent`` (exactly one) is continued with its tracestate; otherwise a new
    trace starts (random flag set, sampled when ``sample_new``) and any tracestate is dropped.
    """
    new_flags = FLAG_RANDOM | FLAG_SAMPLED if sample_new else FLAG_RANDOM
    traceparent = b""
    count = 0
    tracestates: list[bytes] = []
    for entry in headers:
        # _entry's check of the servers' (bytes, bytes) tuples, inlined: this loop runs per request.
        if type(entry) is tuple and len(entry) == 2:
            name, value = entry
            if type(name) is not bytes or type(value) is not bytes:
                name, value = _entry(entry)
        else:
            name, value = _entry(entry)
        size = len(name)
        if size == 11 and (name == TRACEPARENT or name.lower() == TRACEPARENT):
            count += 1
            traceparent = value
        elif size == 10 and (name == TRACESTATE or name.lower() == TRACESTATE):
            tracestates.append(value)
    fields = _fields(traceparent) if count == 1 else None
    if fields is None:
        # Our trace ids are all random: the random flag is set.
        return _context(_random_hex(16), _random_hex(8), None, new_flags, None)
    trace_id, parent_id, flags = fields
    tracestate = _tracestate_of_raw(tracestates) if tracestates else None
    return _context(trace_id, _random_hex(8), parent_id, flags & KNOWN_FLAGS, tracestate)


def replace_trace_headers(headers: Iterable[Any], context: TraceContext) -> list[Any]:
    """A copy of ``headers`` whose traceparent and tracestate name ``context``'s span."""
    if type(context) is not TraceContext:
        raise TypeError(f"context must be a TraceContext, not {_type_name(context)}")
    result = []
    for entry in headers:
        name, _ = _entry(entry)
        key = name.lower()
        if key != TRACEPARENT and key != TRACESTATE:
            result.append(entry)
    result.append((TRACEPARENT, context.traceparent.encode("latin-1")))
    if context.tracestate is not None:
        result.append((TRACESTATE, context.tracestate.encode("latin-1")))
    return result
