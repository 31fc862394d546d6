"""W3C Trace Context for the current request: ``current()``, ``inject()``, httpx hooks.

``TraceContextMiddleware`` makes the request's ``TraceContext`` current; ``inject()`` puts
a ``traceparent`` for an outgoing call (same trace id and flags, a new span id on every
call) and the kept ``tracestate`` into a header mapping. Outside a request ``inject()``
starts a fresh trace for each call.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

from fastmw._impl import core

if TYPE_CHECKING:
    from fastmw._core_py.trace_context import TraceContext
else:
    TraceContext = core.TraceContext

__all__ = [
    "FLAG_RANDOM",
    "FLAG_SAMPLED",
    "TraceContext",
    "current",
    "httpx_hooks",
    "inject",
    "new_span_id",
    "new_trace_id",
]

FLAG_SAMPLED = 0x01
FLAG_RANDOM = 0x02
TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

new_trace_id = core.new_trace_id
new_span_id = core.new_span_id

Headers = TypeVar("Headers", bound=MutableMapping[str, str])


def current() -> TraceContext | None:
    """The current request's ``TraceContext``, or None outside a traced request."""
    context: TraceContext | None = core.current_trace()
    return context


@overload
def inject(headers: None = None) -> dict[str, str]: ...
@overload
def inject(headers: Headers) -> Headers: ...
def inject(headers: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Put ``traceparent`` (and the kept ``tracestate``) for an outgoing call into ``headers``.

    Returns ``headers`` (a new dict when None). Any ``traceparent``/``tracestate`` already
    there, in any case, is replaced.
    """
    target: MutableMapping[str, str] = {} if headers is None else headers
    stale = [key for key in target if key.lower() in (TRACEPARENT, TRACESTATE)]
    for key in stale:
        del target[key]
    context: TraceContext | None = core.current_trace()
    if context is None:
        target[TRACEPARENT] = core.format_traceparent(new_trace_id(), new_span_id(), FLAG_RANDOM)
        return target
    target[TRACEPARENT] = context.child_traceparent()
    if context.tracestate is not None:
        target[TRACESTATE] = context.tracestate
    return target


class _Done:
    """An already-finished awaitable: httpx's AsyncClient awaits a hook's result, Client drops it."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # makes this a generator that finishes at once


_DONE = _Done()


def _inject_request(request: Any) -> _Done:
    inject(request.headers)
    return _DONE


def httpx_hooks() -> dict[str, list[Callable[[Any], Any]]]:
    """``event_hooks`` for ``httpx.Client`` and ``httpx.AsyncClient``: every request gets ``inject()``.

    ``httpx.Client(event_hooks=fastmw.trace.httpx_hooks())``; the hook works for both clients.
    """
    return {"request": [_inject_request]}
