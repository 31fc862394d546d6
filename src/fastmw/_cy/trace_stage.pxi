# The trace stage: the caller's W3C trace continued (or a new one), this service's span current.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.


@cython.final
cdef class TraceStage(Stage):
    """Per request: ``adopt()`` (an OpenTelemetry span current at the request, when set) or
    the request's ``traceparent``/``tracestate`` give the ``TraceContext`` made current for
    the request (``fastmw.trace.current()``). ``rewrite`` puts this span in the scope's
    ``traceparent``/``tracestate`` (a copied header list); ``traceresponse`` names it in a
    ``traceresponse`` response header; ``sample_new`` samples the traces it starts."""

    cdef readonly bint traceresponse, sample_new, rewrite
    cdef readonly object adopt

    def __init__(self, *, traceresponse=False, sample_new=False, adopt=None, rewrite=False, paths=None):
        Stage.__init__(self, paths=paths)
        if adopt is not None and not callable(adopt):
            raise TypeError(f"adopt must be callable or None, not {_type_name(adopt)}")
        self.traceresponse = bool(traceresponse)
        self.sample_new = bool(sample_new)
        self.adopt = adopt
        self.rewrite = bool(rewrite)
        self.starts = self.traceresponse
        self.publishes = True

    cdef int enter(self, SendRecorder ex, ReceiveRecorder rx, scope, Py_ssize_t index) except -1:
        headers = _scope_get(scope, "headers", None) or ()
        context = None if self.adopt is None else self.adopt()
        if context is None:
            context = _trace_from_headers(headers, self.sample_new)
        elif not isinstance(context, TraceContext):
            raise TypeError(f"adopt() must give a TraceContext or None, not {_type_name(context)}")
        if self.rewrite:
            scope["headers"] = replace_trace_headers(headers, context)
        cdef Published published = <Published>ex._published
        # The outer trace, back in place on leave (and this one for the traceresponse).
        ex._states[index] = (published.trace, context) if self.traceresponse else published.trace
        published.trace = context
        return 0

    cdef int start(self, SendRecorder ex, state, dict message, list headers) except -1:
        _set(headers, TRACERESPONSE, _traceparent_bytes(<TraceContext>(<tuple>state)[1]))
        return 0

    cdef object leave(self, SendRecorder ex, ReceiveRecorder rx, scope, state, exc):
        (<Published>ex._published).trace = (<tuple>state)[0] if self.traceresponse else state
        return exc
