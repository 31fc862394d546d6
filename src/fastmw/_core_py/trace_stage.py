"""The trace stage: the caller's W3C trace continued (or a new one), this service's span current."""

from __future__ import annotations

from typing import Any, cast

from fastmw._core_py._common import RawHeaders, _type_name
from fastmw._core_py.engine import Stage
from fastmw._core_py.headers import header_set
from fastmw._core_py.recorders import ReceiveRecorder, SendRecorder
from fastmw._core_py.trace_context import TraceContext, replace_trace_headers, trace_from_headers
from fastmw.types import PathFilter, Scope

TRACERESPONSE = b"traceresponse"
# Per request: the outer trace, back in place on leave, with this request's trace for
# the traceresponse header (only the outer one without it).
ResponseState = tuple[TraceContext | None, TraceContext]


class TraceStage(Stage):
    """Per request: ``adopt()`` (an OpenTelemetry span current at the request, when set) or
    the request's ``traceparent``/``tracestate`` give the ``TraceContext`` made current for
    the request (``fastmw.trace.current()``). ``rewrite`` puts this span in the scope's
    ``traceparent``/``tracestate`` (a copied header list); ``traceresponse`` names it in a
    ``traceresponse`` response header; ``sample_new`` samples the traces it starts."""

    def __init__(
        self,
        *,
        traceresponse: bool = False,
        sample_new: bool = False,
        adopt: Any = None,
        rewrite: bool = False,
        paths: PathFilter | None = None,
    ) -> None:
        Stage.__init__(self, paths=paths)
        if adopt is not None and not callable(adopt):
            raise TypeError(f"adopt must be callable or None, not {_type_name(adopt)}")
        self.traceresponse = bool(traceresponse)
        self.sample_new = bool(sample_new)
        self.adopt = adopt
        self.rewrite = bool(rewrite)
        self.starts = self.traceresponse
        self.publishes = True
        self._freeze()

    def enter(self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, index: int) -> int:
        headers = scope.get("headers") or ()
        context = None if self.adopt is None else self.adopt()
        if context is None:
            context = trace_from_headers(headers, self.sample_new)
        elif not isinstance(context, TraceContext):
            raise TypeError(f"adopt() must give a TraceContext or None, not {_type_name(context)}")
        if self.rewrite:
            scope["headers"] = replace_trace_headers(headers, context)
        published, states = ex._published, ex._states
        assert published is not None and states is not None  # set by the engine for the request
        states[index] = (published._trace, context) if self.traceresponse else published._trace
        published._trace = context
        return 0

    def start(self, ex: SendRecorder, state: object, message: dict[str, Any], headers: RawHeaders) -> int:
        header_set(headers, TRACERESPONSE, cast(ResponseState, state)[1].traceparent.encode("ascii"))
        return 0

    def leave(
        self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Scope, state: object, exc: BaseException | None
    ) -> BaseException | None:
        published = ex._published
        assert published is not None
        published._trace = cast(ResponseState, state)[0] if self.traceresponse else cast("TraceContext | None", state)
        return exc
