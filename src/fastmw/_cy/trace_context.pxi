# Trace context: the TraceContext type and the kernel a request's trace comes from.
# Included by _core.pyx after trace.pxi; the pure twin is the module of the same name in _core_py/.


# --------------------------------------------------------------------------- trace context


@cython.final
@cython.freelist(16)
@cython.no_gc
cdef class TraceContext:
    """This service's span in a trace: read-only, hex ``str`` ids.

    ``parent_id`` is the caller's span id (None when this service started the trace);
    ``flags`` are the trace flags this service propagates; ``tracestate`` is the kept
    tracestate (None when there is none). A given tracestate is checked and normalized.
    """

    # The ids as hex characters; their str objects are made on first read (most requests
    # never read them), then kept. Only str and None are held: no cycles, so no GC.
    cdef char _trace[32]
    cdef char _span[16]
    cdef char _parent[16]
    cdef bint _has_parent
    cdef object _trace_str
    cdef object _span_str
    cdef object _parent_str
    cdef readonly int flags
    # The kept tracestate: str, None, or the request's header bytes (in normal form) until read;
    # with _ts_unchecked, the request's one tracestate header, checked when first needed.
    cdef object _ts
    cdef bint _ts_unchecked

    def __init__(self, trace_id, span_id, parent_id=None, flags=0, tracestate=None):
        memcpy(self._trace, _checked_id(trace_id, 32, "trace_id"), 32)
        memcpy(self._span, _checked_id(span_id, 16, "span_id"), 16)
        self._has_parent = parent_id is not None
        if self._has_parent:
            memcpy(self._parent, _checked_id(parent_id, 16, "parent_id"), 16)
        self.flags = _checked_flags(flags)
        if tracestate is not None and not isinstance(tracestate, str):
            raise TypeError(f"tracestate must be a str or None, not {_type_name(tracestate)}")
        self._ts = None if tracestate is None else _tracestate_of_values((tracestate,), True)
        self._trace_str = self._span_str = self._parent_str = None

    @property
    def tracestate(self):
        """The kept tracestate (normalized), or None."""
        kept = self._kept_tracestate()
        if type(kept) is bytes:
            self._ts = kept = (<bytes>kept).decode("ascii")
        return kept

    cdef object _kept_tracestate(self):
        """The kept tracestate: str, None or normal-form bytes (checked now if it was not yet)."""
        if self._ts_unchecked:
            # Most requests never propagate or log it: the grammar is checked on first need.
            self._ts_unchecked = False
            self._ts = _ts_of(self._ts, None)
        return self._ts

    @property
    def trace_id(self):
        """The trace id: 32 lower-case hex characters."""
        if self._trace_str is None:
            self._trace_str = _ascii_str(<const unsigned char*>self._trace, 32)
        return self._trace_str

    @property
    def span_id(self):
        """This service's span id: 16 lower-case hex characters."""
        if self._span_str is None:
            self._span_str = _ascii_str(<const unsigned char*>self._span, 16)
        return self._span_str

    @property
    def parent_id(self):
        """The caller's span id (16 lower-case hex characters), or None."""
        if not self._has_parent:
            return None
        if self._parent_str is None:
            self._parent_str = _ascii_str(<const unsigned char*>self._parent, 16)
        return self._parent_str

    @property
    def sampled(self):
        """Whether the sampled flag (0x01) is set."""
        return bool(self.flags & TP_SAMPLED)

    @property
    def traceparent(self):
        """The ``traceparent`` value naming this span (e.g. for ``traceresponse``)."""
        cdef str result = PyUnicode_New(TP_LENGTH, 127)
        _write_traceparent(<char*>PyUnicode_DATA(result), self._trace, self._span, self.flags)
        return result

    def child_traceparent(self):
        """A ``traceparent`` for an outgoing call: this trace and flags, a new span id."""
        cdef char span[16]
        _random_hex_into(span, 8)
        cdef str result = PyUnicode_New(TP_LENGTH, 127)
        _write_traceparent(<char*>PyUnicode_DATA(result), self._trace, span, self.flags)
        return result

    def __repr__(self):
        return (
            f"TraceContext(trace_id={self.trace_id!r}, span_id={self.span_id!r}, parent_id={self.parent_id!r}, "
            f"flags={self.flags!r}, tracestate={self.tracestate!r})"
        )

    def __eq__(self, other):
        if type(other) is not TraceContext:
            return NotImplemented
        cdef TraceContext that = <TraceContext>other
        return (
            memcmp(self._trace, that._trace, 32) == 0 and memcmp(self._span, that._span, 16) == 0
            and self._has_parent == that._has_parent
            and (not self._has_parent or memcmp(self._parent, that._parent, 16) == 0)
            and self.flags == that.flags and self.tracestate == that.tracestate
        )

    def __hash__(self):
        return hash((self.trace_id, self.span_id, self.parent_id, self.flags, self.tracestate))

    def __reduce__(self):
        return (TraceContext, (self.trace_id, self.span_id, self.parent_id, self.flags, self.tracestate))


cdef bytes _traceparent_bytes(TraceContext ctx):
    """``ctx.traceparent`` as header bytes."""
    cdef bytes result = PyBytes_FromStringAndSize(NULL, TP_LENGTH)
    _write_traceparent(PyBytes_AS_STRING(result), ctx._trace, ctx._span, ctx.flags)
    return result


# --------------------------------------------------------------------------- the kernel


cdef inline object _header_pair(object entry, PyObject** name, PyObject** value):
    """``_entry`` with the servers' (bytes, bytes) tuple checked inline; returns the owner of
    ``name`` and ``value``, to be held while they are used."""
    if fastmw_regular_entry(entry):
        name[0] = PyTuple_GET_ITEM(entry, 0)
        value[0] = PyTuple_GET_ITEM(entry, 1)
        return entry
    return _entry(entry, name, value)


cdef TraceContext _trace_from_headers(object headers, bint sample_new):
    """The trace context of a request: its valid traceparent continued, or a new trace.

    Every entry of ``headers`` is checked (TypeError as in header_get), in one pass as the
    pure twin's loop does; the values kept are held as references."""
    cdef PyObject* name
    cdef PyObject* value
    cdef object traceparent = None, tracestate = None
    cdef list more = None
    cdef Py_ssize_t size, count = 0
    cdef int flags = -1
    cdef const unsigned char* p
    # The usual list, (bytes, bytes) tuples with each name at most once, is searched in plain C
    # (nothing runs between the scan and the reads, so the indexes are in bounds); anything
    # else (a repeated name, an entry to check, another iterable) takes the loop below.
    cdef Py_ssize_t parent_at, state_at
    if type(headers) is list and fastmw_two_headers(
        headers, b"traceparent", 11, b"tracestate", 10, &parent_at, &state_at
    ) == 0:
        if parent_at >= 0:
            count = 1
            traceparent = <object>PyTuple_GET_ITEM(<object>PyList_GET_ITEM(headers, parent_at), 1)
        if state_at >= 0:
            tracestate = <object>PyTuple_GET_ITEM(<object>PyList_GET_ITEM(headers, state_at), 1)
    else:
        for entry in headers:
            owner = _header_pair(entry, &name, &value)
            size = PyBytes_GET_SIZE(<object>name)
            if size == 11 and _same_name(name, _TRACEPARENT):
                count += 1
                traceparent = <object>value
            elif size == 10 and _same_name(name, _TRACESTATE):
                if tracestate is None:
                    tracestate = <object>value
                else:
                    if more is None:
                        more = [tracestate]
                    more.append(<object>value)
    cdef TraceContext ctx = TraceContext.__new__(TraceContext)
    if count == 1:
        size = PyBytes_GET_SIZE(traceparent)
        p = _strip_ows(<const unsigned char*>PyBytes_AS_STRING(traceparent), &size)
        flags = _traceparent_flags(p, size)
    if flags >= 0:
        memcpy(ctx._trace, p + 3, 32)
        memcpy(ctx._parent, p + 36, 16)
        ctx._has_parent = True
        ctx.flags = flags & TP_KNOWN_FLAGS
        if tracestate is not None and more is None and PyBytes_CheckExact(tracestate):
            ctx._ts = tracestate
            ctx._ts_unchecked = True
        elif tracestate is not None:
            ctx._ts = _ts_of(tracestate, more)
    else:
        # Our trace ids are all random: the random flag is set.
        _random_hex_into(ctx._trace, 16)
        ctx._has_parent = False
        ctx.flags = TP_RANDOM | (TP_SAMPLED if sample_new else 0)
    _random_hex_into(ctx._span, 8)
    return ctx


cpdef TraceContext trace_from_headers(headers, bint sample_new=False):
    """The request's ``TraceContext`` from raw ASGI headers, with a new span id.

    A valid ``traceparent`` (exactly one) is continued with its tracestate; otherwise a new
    trace starts (random flag set, sampled when ``sample_new``) and any tracestate is dropped.
    """
    return _trace_from_headers(headers, sample_new)


cpdef list replace_trace_headers(headers, context):
    """A copy of ``headers`` whose traceparent and tracestate name ``context``'s span."""
    if type(context) is not TraceContext:
        raise TypeError(f"context must be a TraceContext, not {_type_name(context)}")
    cdef TraceContext ctx = <TraceContext>context
    cdef list result = []
    cdef PyObject* name
    cdef PyObject* value
    cdef Py_ssize_t size
    for entry in headers:
        owner = _header_pair(entry, &name, &value)
        size = PyBytes_GET_SIZE(<object>name)
        if not ((size == 11 and _same_name(name, _TRACEPARENT)) or (size == 10 and _same_name(name, _TRACESTATE))):
            result.append(entry)
    result.append((_TRACEPARENT, _traceparent_bytes(ctx)))
    kept = ctx._kept_tracestate()
    if type(kept) is bytes:
        result.append((_TRACESTATE, kept))
    elif kept is not None:
        result.append((_TRACESTATE, PyUnicode_AsLatin1String(kept)))
    return result
