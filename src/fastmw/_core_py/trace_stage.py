"""The trace stage: the caller's W3C trace continued (or a new one), this service's span current."""

from __future__ import annotations

from typing import Any

from fastmw._core_py._common import _type_name
from fastmw._core_py.engine import Stage
from fastmw._core_py.headers import header_set
from fastmw._core_py.recorders import ReceiveRecorder, SendRecorder
from fastmw._core_py.trace_context import TraceContext, replace_trace_headers, trace_from_headers

TRACERESPONSE = b"traceresponse"


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
        paths: Any = None,
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

    def enter(self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Any, index: int) -> int:
        headers = scope.get("headers") or ()
        context = None if self.adopt is None else self.adopt()
        if context is None:
            context = trace_from_headers(headers, self.sample_new)
        elif not isinstance(context, TraceContext):
            raise TypeError(f"adopt() must give a TraceContext or None, not {_type_name(context)}")
        if self.rewrite:
            scope["headers"] = replace_trace_headers(headers, context)
        published = ex._published
        # The outer trace, back in place on leave (and this one for the traceresponse).
        ex._states[index] = (published._trace, context) if self.traceresponse else published._trace  # type: ignore[index]
        published._trace = context
        return 0

    def start(self, ex: SendRecorder, state: Any, message: dict[str, Any], headers: list[Any]) -> int:
        header_set(headers, TRACERESPONSE, state[1].traceparent.encode("ascii"))
        return 0

    def leave(
        self, ex: SendRecorder, rx: ReceiveRecorder | None, scope: Any, state: Any, exc: BaseException | None
    ) -> BaseException | None:
        ex._published._trace = state[0] if self.traceresponse else state
        return exc
