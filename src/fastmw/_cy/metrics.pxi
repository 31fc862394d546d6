# The metrics stage: per request, counts into per-series counters in shared memory.
# Included by _core.pyx after trace_context.pxi; the pure twin is the module of the same name in _core_py/.
#
# A MetricsTable maps a series (method, route, status) to its counters, memory its provider
# hands out (fastmw.metrics: a memory-mapped file per process), found again per request in
# an open-addressing table of C pointers. Series layout, in 8-byte words (series_words):
# the duration sum (double), the request and response body byte sums, the duration
# buckets, the request and response size buckets (non-cumulative, the last one +Inf),
# then one exemplar per duration bucket (trace and span id as hex, the value, the wall time).

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyObject_GetBuffer, PyBuffer_Release
from cpython.dict cimport PyDict_Contains
from libc.stdint cimport int64_t, uint64_t

METRIC_METHODS = ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "_OTHER")
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
SIZE_BUCKETS = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0)
UNMATCHED_ROUTE = ""
OVERFLOW_ROUTE = "_OTHER"
DEFAULT_MAX_ROUTES = 2000
ROUTE_CACHE_LIMIT = 1024
EXEMPLAR_MODES = ("sampled", "all", None)
SERIES_HEAD = 3
EXEMPLAR_WORDS = 8
COUNTER_WORDS = 11

cdef enum:
    OTHER_METHOD = 9
    DROPPED_WORD = 9 + 1
    METRIC_COUNTER_WORDS = 9 + 2
    MAX_BUCKETS = 64
    C_SERIES_HEAD = 3
    C_EXEMPLAR_WORDS = 8
    MAX_STATUS = 999
    EXEMPLARS_NONE = 0
    EXEMPLARS_SAMPLED = 1
    EXEMPLARS_ALL = 2
    # The stage's route cache: at most C_ROUTE_CACHE_LIMIT routes in twice as many slots.
    C_ROUTE_CACHE_LIMIT = 1024
    ROUTE_SLOTS = 2048

cdef object _metrics_logger = logging.getLogger("fastmw.metrics")
cdef str _APP_ROOT_PATH = "app_root_path"
cdef str _PATH_TEMPLATE = "path_template"
cdef str _ROUTE = "route"
cdef str _PATH = "path"
cdef str _METHOD = "method"


cpdef Py_ssize_t series_words(Py_ssize_t duration_buckets, Py_ssize_t size_buckets):
    """Words (8 bytes) of one series with that many finite bucket bounds."""
    return C_SERIES_HEAD + (duration_buckets + 1) * (1 + C_EXEMPLAR_WORDS) + 2 * (size_buckets + 1)


cdef inline bint _is_text(const char* data, const char* text, Py_ssize_t n) noexcept:
    return memcmp(data, text, n) == 0


cdef Py_ssize_t _method_index(method) except -1:
    if not PyUnicode_CheckExact(method) or not PyUnicode_IS_ASCII(method):
        return OTHER_METHOD
    cdef const char* p = <const char*>PyUnicode_DATA(method)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(method)
    if n == 3:
        if _is_text(p, b"GET", 3):
            return 2
        if _is_text(p, b"PUT", 3):
            return 7
    elif n == 4:
        if _is_text(p, b"POST", 4):
            return 6
        if _is_text(p, b"HEAD", 4):
            return 3
    elif n == 5:
        if _is_text(p, b"PATCH", 5):
            return 5
        if _is_text(p, b"TRACE", 5):
            return 8
    elif n == 6:
        if _is_text(p, b"DELETE", 6):
            return 1
    elif n == 7:
        if _is_text(p, b"OPTIONS", 7):
            return 4
        if _is_text(p, b"CONNECT", 7):
            return 0
    return OTHER_METHOD


def method_index(method):
    """The index of ``method`` in ``METRIC_METHODS`` (case-sensitive; 9 for anything else)."""
    return _method_index(method)


cdef tuple _metric_bounds(values, str name):
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of numbers, not {_type_name(values)}")
    cdef list result = []
    last = None
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must hold numbers, not {_type_name(value)}")
        if not isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        if result and value <= last:
            raise ValueError(f"{name} must be strictly increasing, got {value!r} after {last!r}")
        last = float(value)
        result.append(last)
    if not 1 <= len(result) <= MAX_BUCKETS:
        raise ValueError(f"{name} must have 1 to {MAX_BUCKETS} bounds, got {len(result)}")
    return tuple(result)


@cython.final
cdef class _Memory:
    """Writable memory from a provider, held (its buffer exported) while the table uses it."""

    cdef Py_buffer view
    cdef bint held

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)


cdef _Memory _provider_memory(memory, Py_ssize_t size, str what):
    raw = memoryview(memory)
    if raw.readonly or not raw.c_contiguous or raw.nbytes != size:
        raise ValueError(f"the provider must give {size} writable bytes{what}, got {raw.nbytes}")
    cdef _Memory result = _Memory.__new__(_Memory)
    PyObject_GetBuffer(raw, &result.view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)
    result.held = True
    return result


cdef inline Py_ssize_t _bucket(const double* bounds, Py_ssize_t n, double value) noexcept:
    """The first bound ``value`` does not exceed (``n``: above them all)."""
    cdef Py_ssize_t i = 0
    while i < n and value > bounds[i]:
        i += 1
    return i


cdef class MetricsTable:
    """The counters of one process's series, in memory from ``provider``: ``provider.open()``
    gives the active-requests words (one per method), ``provider.allocate(method, route,
    status)`` a new series' words (zeroed). Route labels beyond ``max_routes`` count as
    ``OVERFLOW_ROUTE``. ``clear()`` forgets the memory (a forked child gets its own).
    ``dropped``: requests that could not be counted here (no memory for them)."""

    cdef readonly tuple duration_buckets, size_buckets
    cdef readonly object provider
    cdef readonly Py_ssize_t max_routes, series_words
    cdef public Py_ssize_t dropped
    cdef double _dbounds[64]
    cdef double _sbounds[64]
    cdef Py_ssize_t _nd, _ns
    cdef dict _labels
    cdef list _names
    # The series: keys + 1 (0: empty) and their counters, by open addressing.
    cdef uint64_t* _keys
    cdef char** _counters
    cdef Py_ssize_t _capacity, _count_used
    cdef list _held
    cdef int64_t* _active
    cdef _Memory _active_memory

    def __init__(self, duration_buckets, size_buckets, provider, *, max_routes=DEFAULT_MAX_ROUTES):
        cdef Py_ssize_t i
        self.duration_buckets = _metric_bounds(duration_buckets, "duration_buckets")
        self.size_buckets = _metric_bounds(size_buckets, "size_buckets")
        for name in ("open", "allocate"):
            if not callable(getattr(provider, name, None)):
                raise TypeError(f"provider must have open() and allocate(), not {_type_name(provider)}")
        if type(max_routes) is not int or max_routes < 1:
            raise ValueError(f"max_routes must be a positive int, got {max_routes!r}")
        self.provider = provider
        self.max_routes = max_routes
        self._nd = len(self.duration_buckets)
        self._ns = len(self.size_buckets)
        for i in range(self._nd):
            self._dbounds[i] = self.duration_buckets[i]
        for i in range(self._ns):
            self._sbounds[i] = self.size_buckets[i]
        self.series_words = series_words(self._nd, self._ns)
        self.dropped = 0
        self._labels = {UNMATCHED_ROUTE: 0}
        self._names = [UNMATCHED_ROUTE]
        self._forget()

    def __dealloc__(self):
        PyMem_Free(self._keys)
        PyMem_Free(self._counters)

    @property
    def routes(self):
        """How many route labels the table knows (the unmatched one included)."""
        return len(self._names)

    cdef void _forget(self) noexcept:
        PyMem_Free(self._keys)
        PyMem_Free(self._counters)
        self._keys = NULL
        self._counters = NULL
        self._capacity = 0
        self._count_used = 0
        self._held = []
        self._active = NULL
        self._active_memory = None

    def clear(self):
        """Forget the provider's memory: the next request asks it again."""
        self._forget()

    def record(self, method, route, status, duration, request_bytes=0, response_bytes=0, trace_id=None,
               span_id=None, wall_time=0.0):
        """Count one request (what the stage does per request), with an exemplar when ``trace_id`` is given."""
        if route is not None and not isinstance(route, str):
            raise TypeError(f"route must be a str or None, not {_type_name(route)}")
        if type(status) is not int:
            raise TypeError(f"status must be an int, not {_type_name(status)}")
        if not isinstance(duration, (int, float)) or isinstance(duration, bool):
            raise TypeError(f"duration must be a number, not {_type_name(duration)}")
        for name, value in (("request_bytes", request_bytes), ("response_bytes", response_bytes)):
            if type(value) is not int or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        cdef bytes trace = None, span = None
        if trace_id is not None:
            trace = _metric_hex(trace_id, 32, "trace_id")
            span = _metric_hex(span_id, 16, "span_id")
        rid = self._label_id(UNMATCHED_ROUTE if route is None else route)
        self._count(_method_index(method), rid, _status_key(status), float(duration), request_bytes,
                    response_bytes, NULL if trace is None else PyBytes_AS_STRING(trace),
                    NULL if span is None else PyBytes_AS_STRING(span), float(wall_time))

    # ------------------------------------------------------------------ the stage's steps

    cdef int64_t* _active_words(self) except NULL:
        if self._active == NULL:
            memory = _provider_memory(self.provider.open(), METRIC_COUNTER_WORDS * 8, " from open()")
            self._active_memory = memory
            self._active = <int64_t*>memory.view.buf
        return self._active

    cdef void _drop(self) noexcept:
        if self._active != NULL:
            self._active[DROPPED_WORD] += 1
        else:
            self.dropped += 1

    cdef Py_ssize_t _label_id(self, str label) except -1:
        cdef PyObject* found = PyDict_GetItemWithError(self._labels, label)
        if found != NULL:
            return <Py_ssize_t>(<object>found)
        return self._new_label(label)

    cdef Py_ssize_t _new_label(self, str label) except -1:
        if len(self._names) >= self.max_routes:
            label = OVERFLOW_ROUTE
            found = self._labels.get(label)
            if found is not None:
                return found
        rid = len(self._names)
        self._labels[label] = rid
        self._names.append(label)
        return rid

    cdef char* _new_series(self, Py_ssize_t method, Py_ssize_t rid, Py_ssize_t status, uint64_t key) except NULL:
        memory = _provider_memory(self.provider.allocate(method, self._names[rid], status),
                                  self.series_words * 8, "")
        self._held.append(memory)
        if (self._count_used + 1) * 2 > self._capacity:
            self._resize(max(16, self._capacity * 2))
        cdef Py_ssize_t mask = self._capacity - 1
        cdef Py_ssize_t at = <Py_ssize_t>((key * 0x9E3779B97F4A7C15ULL) >> 40) & mask
        while self._keys[at]:
            at = (at + 1) & mask
        self._keys[at] = key
        self._counters[at] = <char*>memory.view.buf
        self._count_used += 1
        return self._counters[at]

    cdef int _resize(self, Py_ssize_t capacity) except -1:
        cdef uint64_t* keys = <uint64_t*>PyMem_Malloc(capacity * sizeof(uint64_t))
        cdef char** counters = <char**>PyMem_Malloc(capacity * sizeof(char*))
        cdef Py_ssize_t i, at, mask = capacity - 1
        if keys == NULL or counters == NULL:
            PyMem_Free(keys)
            PyMem_Free(counters)
            raise MemoryError()
        memset(keys, 0, capacity * sizeof(uint64_t))
        for i in range(self._capacity):
            if self._keys[i]:
                at = <Py_ssize_t>((self._keys[i] * 0x9E3779B97F4A7C15ULL) >> 40) & mask
                while keys[at]:
                    at = (at + 1) & mask
                keys[at] = self._keys[i]
                counters[at] = self._counters[i]
        PyMem_Free(self._keys)
        PyMem_Free(self._counters)
        self._keys = keys
        self._counters = counters
        self._capacity = capacity
        return 0

    cdef int _count(self, Py_ssize_t method, Py_ssize_t rid, Py_ssize_t status, double duration,
                    Py_ssize_t request_bytes, Py_ssize_t response_bytes, const char* trace, const char* span,
                    double wall_time) except -1:
        cdef uint64_t key = ((<uint64_t>rid << 16) | (<uint64_t>method << 10) | <uint64_t>status) + 1
        cdef char* series = _find_series(self, key)
        if series == NULL:
            series = self._new_series(method, rid, status, key)
        cdef uint64_t* words = <uint64_t*>series
        cdef double* real = <double*>series
        cdef Py_ssize_t d = self._nd + 1, s = self._ns + 1
        cdef Py_ssize_t bucket = _bucket(self._dbounds, self._nd, duration), at
        real[0] += duration
        words[1] += <uint64_t>request_bytes
        words[2] += <uint64_t>response_bytes
        words[C_SERIES_HEAD + bucket] += 1
        words[C_SERIES_HEAD + d + _bucket(self._sbounds, self._ns, <double>request_bytes)] += 1
        words[C_SERIES_HEAD + d + s + _bucket(self._sbounds, self._ns, <double>response_bytes)] += 1
        if trace != NULL:
            at = C_SERIES_HEAD + d + 2 * s + bucket * C_EXEMPLAR_WORDS
            memcpy(series + at * 8, trace, 32)
            memcpy(series + at * 8 + 32, span, 16)
            real[at + 6] = duration
            real[at + 7] = wall_time
        return 0


cdef inline char* _find_series(MetricsTable table, uint64_t key) noexcept:
    """The counters of the series ``key`` (its table key), or NULL."""
    cdef Py_ssize_t mask = table._capacity - 1, at
    if table._capacity:
        at = <Py_ssize_t>((key * 0x9E3779B97F4A7C15ULL) >> 40) & mask
        while table._keys[at]:
            if table._keys[at] == key:
                return table._counters[at]
            at = (at + 1) & mask
    return NULL


cdef inline Py_ssize_t _status_key(status) except? -1:
    cdef int overflow = 0
    cdef long long value = PyLong_AsLongLongAndOverflow(status, &overflow)
    if overflow or not 0 <= value <= MAX_STATUS:
        return 0
    return <Py_ssize_t>value


cdef bytes _metric_hex(value, Py_ssize_t size, str name):
    if type(value) is not str or len(value) != size or (<str>value).strip("0123456789abcdef"):
        raise ValueError(f"{name} must be {size} lower-case hex characters, got {value!r}")
    return (<str>value).encode("ascii")


def _mounted_route(scope, route):
    """The label of a route inside a mounted app: the mount's matched prefix and the route's path."""
    root, app_root = scope.get("root_path", ""), scope.get("app_root_path", "")
    path = getattr(route, "path", None)
    if type(root) is not str or type(app_root) is not str or type(path) is not str:
        return None
    prefix = root[len(app_root):] if root.startswith(app_root) else ""
    # A mount whose app is no router: the prefix already holds the mount's path.
    if getattr(route, "routes", None) is not None or path == prefix:
        return prefix or path
    return prefix + path


@cython.final
cdef class MetricsStage(Stage):
    """Counts each http request into ``table`` when it ends: the duration (start to last
    byte), the body bytes both ways, the status, the route template (``route_label(scope)``
    when given, else what the framework left in the scope), and an exemplar from the
    current trace (``exemplars``: "sampled" traces, "all", or None). Also keeps the
    active-requests gauge. A failure is counted in ``table.dropped`` and logged."""

    cdef readonly MetricsTable table
    cdef readonly object route_label, exemplars
    cdef int _exemplar_mode
    # The route ids of the first ROUTE_CACHE_LIMIT route objects seen outside a mount, by
    # address: _routes holds them, so an address cannot be reused while it is cached.
    cdef list _routes
    cdef void** _route_keys
    cdef Py_ssize_t* _route_ids

    def __init__(self, table, *, route_label=None, exemplars="sampled", paths=None):
        Stage.__init__(self, paths=paths)
        if not isinstance(table, MetricsTable):
            raise TypeError(f"table must be a MetricsTable, not {_type_name(table)}")
        if route_label is not None and not callable(route_label):
            raise TypeError(f"route_label must be callable or None, not {_type_name(route_label)}")
        if exemplars not in EXEMPLAR_MODES:
            raise ValueError(f"exemplars must be one of {EXEMPLAR_MODES}, got {exemplars!r}")
        self.table = table
        self.route_label = route_label
        self.exemplars = exemplars
        self._exemplar_mode = (EXEMPLARS_NONE if exemplars is None else
                               EXEMPLARS_ALL if exemplars == "all" else EXEMPLARS_SAMPLED)
        self.http_only = True
        self.wraps_receive = True
        self.timed = True
        self._routes = None
        if self._route_keys == NULL or self._route_ids == NULL:
            PyMem_Free(self._route_keys)
            PyMem_Free(self._route_ids)
            self._route_keys = <void**>PyMem_Malloc(ROUTE_SLOTS * sizeof(void*))
            self._route_ids = <Py_ssize_t*>PyMem_Malloc(ROUTE_SLOTS * sizeof(Py_ssize_t))
            if self._route_keys == NULL or self._route_ids == NULL:
                raise MemoryError()
        memset(self._route_keys, 0, ROUTE_SLOTS * sizeof(void*))
        self._routes = []

    def __dealloc__(self):
        PyMem_Free(self._route_keys)
        PyMem_Free(self._route_ids)

    cdef int enter(self, SendRecorder ex, ReceiveRecorder rx, scope, Py_ssize_t index) except -1:
        if self.table is None:  # made with __new__ alone: refused, as the pure twin's has no table either
            raise AttributeError("'MetricsStage' object has no attribute 'table'")
        cdef Py_ssize_t method = _method_index(_scope_get(scope, _METHOD, None))
        cdef int64_t* active = self.table._active
        if active == NULL:
            try:
                active = self.table._active_words()
            except Exception:
                _metrics_logger.exception("fastmw metrics could not count an active request")
                method = -1 - method  # counted nowhere: not taken back on leave
        if active != NULL:
            active[method] += 1
        ex._states[index] = method
        return 0

    cdef object leave(self, SendRecorder ex, ReceiveRecorder rx, scope, state, exc):
        # What fails here is dropped by drops_failure (the engine calls it), not propagated.
        cdef MetricsTable table = self.table
        cdef Py_ssize_t method = state, status
        cdef double end, wall = 0.0
        cdef const char* trace_id = NULL
        cdef const char* span_id = NULL
        cdef TraceContext context
        if method >= 0:
            if table._active == NULL:
                raise RuntimeError("the metrics table was cleared during the request")
            table._active[method] -= 1
        else:
            method = -1 - method
        end = ex.t_last_byte or monotonic()
        if ex.complete and ex.started:
            status = _status_key(ex.status)
        else:
            status = _status_key(access_status(scope, ex, rx, exc))
        rid = self._route_id(scope)
        if self._exemplar_mode != EXEMPLARS_NONE:
            # The pipeline's own holder read as the C struct it is (no attribute lookup).
            trace = (<Published>ex._published).trace if ex._published is not None else _published_trace(ex)
            if trace is not None:
                context = <TraceContext>trace
                if self._exemplar_mode == EXEMPLARS_ALL or context.flags & 1:
                    trace_id = context._trace
                    span_id = context._span
                    wall = _wall_time_micros()
        table._count(method, rid, status, end - ex.t_start, 0 if rx is None else rx.body_bytes,
                     ex.body_bytes, trace_id, span_id, wall)
        return exc

    cdef bint drops_failure(self, exc) except -1:
        """A request that could not be counted: counted in ``table.dropped`` and logged."""
        if self.table is not None:
            self.table._drop()
        _metrics_logger.error("fastmw metrics dropped a request", exc_info=exc)
        return True

    cdef Py_ssize_t _labelled_route_id(self, scope) except -1:
        """The route id of what ``route_label(scope)`` answers (0 for None or a failure)."""
        try:
            label = self.route_label(scope)
        except Exception:
            _metrics_logger.exception("fastmw metrics route_label %r failed", self.route_label)
            return 0
        if label is None:
            return 0
        if type(label) is not str:
            _metrics_logger.error("fastmw metrics route_label %r gave %s, not str", self.route_label,
                                  _type_name(label))
            return 0
        return self.table._label_id(label)

    cdef inline Py_ssize_t _route_id(self, scope) except -1:
        cdef MetricsTable table = self.table
        cdef bint mounted
        cdef uint64_t address
        cdef Py_ssize_t at = -1, rid
        cdef list routes
        if self.route_label is not None:
            return self._labelled_route_id(scope)
        route = _scope_get(scope, _ROUTE, None)
        if route is None:
            template = _scope_get(scope, _PATH_TEMPLATE, None)  # Litestar
            return table._label_id(template) if type(template) is str else 0
        mounted = PyDict_Contains(scope, _APP_ROOT_PATH) if type(scope) is dict else _APP_ROOT_PATH in scope
        if mounted:
            label = _mounted_route(scope, route)
            return table._label_id(label) if type(label) is str else 0
        # The label of route.path, read once per route object (the first ROUTE_CACHE_LIMIT
        # of them; later ones every time). Not when the collector cleared the stage.
        routes = self._routes
        if routes is not None:
            address = <uint64_t><size_t><void*>route
            at = <Py_ssize_t>(((address >> 4) * 0x9E3779B97F4A7C15ULL) >> 53)
            while self._route_keys[at] != NULL:
                if self._route_keys[at] == <void*>route:
                    return self._route_ids[at]
                at = (at + 1) & (ROUTE_SLOTS - 1)
        label = getattr(route, _PATH, None)
        rid = table._label_id(label) if type(label) is str else 0
        if at >= 0 and PyList_GET_SIZE(routes) < C_ROUTE_CACHE_LIMIT:
            routes.append(route)
            self._route_keys[at] = <void*>route
            self._route_ids[at] = rid
        return rid
