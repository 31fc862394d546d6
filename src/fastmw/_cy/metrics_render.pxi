# The counters files' format and their histograms summed and rendered (a scrape's hot loop).
# Included by _core.pyx after metrics.pxi; the pure twin is the module of the same name in _core_py/.
#
# Series are found in each file's entries, summed in a C hash table keyed by (route bytes,
# method, status) and sorted once, at construction; the text is then written in chunks, one
# family header or series block after another into a reused buffer, so a scrape of ten
# thousand series (tens of megabytes of text) never holds more than a chunk of it.

cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* type) except NULL
    int Py_DTSF_ADD_DOT_0

COUNTERS_HEADER = 4096
W_USED = 4
ENTRY_ROUTE = 1
ENTRY_SERIES = 2
ENTRY_PAD = 3
CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 1 << 30

cdef enum:
    C_COUNTERS_HEADER = 4096
    C_W_USED = 4
    C_ENTRY_ROUTE = 1
    C_ENTRY_SERIES = 2
    C_ENTRY_PAD = 3
    # Room for one line's numbers and exemplar beyond its name, labels and bound.
    C_LINE_SLACK = 200

cdef tuple _HISTOGRAMS = (
    (b"http_server_request_duration_seconds", b"Duration of HTTP server requests.", b"seconds"),
    (b"http_server_request_body_size_bytes", b"Size of HTTP server request bodies.", b"bytes"),
    (b"http_server_response_body_size_bytes", b"Size of HTTP server response bodies.", b"bytes"),
)


cdef struct _Text:
    char* data
    Py_ssize_t size, capacity


cdef int _grow(_Text* out, Py_ssize_t more) except -1:
    cdef Py_ssize_t capacity = out.capacity if out.capacity else 1 << 16
    cdef char* data
    while capacity < out.size + more:
        capacity *= 2
    data = <char*>PyMem_Realloc(out.data, capacity)
    if data == NULL:
        raise MemoryError()
    out.data = data
    out.capacity = capacity
    return 0


cdef inline int _reserve(_Text* out, Py_ssize_t more) except -1:
    """Room for ``more`` bytes: the puts that follow copy without checking."""
    if out.size + more > out.capacity:
        return _grow(out, more)
    return 0


cdef inline void _put(_Text* out, const char* data, Py_ssize_t n) noexcept:
    memcpy(out.data + out.size, data, n)
    out.size += n


cdef inline void _put_bytes(_Text* out, bytes data) noexcept:
    _put(out, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))


cdef inline void _put_u64(_Text* out, uint64_t value) noexcept:
    cdef char digits[24]
    cdef int at = 24
    while True:
        at -= 1
        digits[at] = 48 + <int>(value % 10)
        value //= 10
        if value == 0:
            break
    _put(out, digits + at, 24 - at)


cdef int _put_repr(_Text* out, double value) except -1:
    """``repr(value)`` of a float (at most 24 characters)."""
    cdef char* text = PyOS_double_to_string(value, b"r", 0, Py_DTSF_ADD_DOT_0, NULL)
    _put(out, text, <Py_ssize_t>strlen(text))
    PyMem_Free(text)
    return 0


cdef void _put_escaped(_Text* out, const char* data, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        if data[i] == 92:
            _put(out, b"\\\\", 2)
        elif data[i] == 10:
            _put(out, b"\\n", 2)
        elif data[i] == 34:
            _put(out, b'\\"', 2)
        else:
            out.data[out.size] = data[i]
            out.size += 1


cdef struct _Summed:
    const char* route
    Py_ssize_t route_size
    int method, status
    double duration_sum
    uint64_t request_sum, response_sum
    Py_ssize_t label_start, label_size


# The series being sorted (qsort has no context argument; the GIL is held).
cdef _Summed* _sorting


cdef int _compare_series(const void* a, const void* b) noexcept nogil:
    cdef _Summed* x = &_sorting[(<Py_ssize_t*>a)[0]]
    cdef _Summed* y = &_sorting[(<Py_ssize_t*>b)[0]]
    cdef Py_ssize_t n = x.route_size if x.route_size < y.route_size else y.route_size
    cdef int order = memcmp(x.route, y.route, n) if n else 0
    if order:
        return order
    if x.route_size != y.route_size:
        return -1 if x.route_size < y.route_size else 1
    if x.method != y.method:
        return x.method - y.method
    return x.status - y.status


cdef inline uint64_t _read_word(const char* data, Py_ssize_t at) noexcept:
    cdef uint64_t word
    memcpy(&word, data + at, 8)
    return word


cdef inline double _read_real(const char* data, Py_ssize_t at) noexcept:
    cdef double value
    memcpy(&value, data + at, 8)
    return value


cdef inline Py_ssize_t _pad_bytes(uint64_t head) noexcept:
    """The bytes a pad entry with this head word skips, or 0 when it is no pad: entries are
    whole words, so an unaligned pad is damage, not a shorter chunk."""
    if head & 0xFF == C_ENTRY_PAD and (head >> 32) >= 8 and (head >> 32) % 8 == 0:
        return <Py_ssize_t>(head >> 32)
    return 0


cdef inline uint64_t _series_hash(const char* route, Py_ssize_t n, int method, int status) noexcept:
    cdef uint64_t h = 1469598103934665603ULL
    cdef Py_ssize_t i
    for i in range(n):
        h = (h ^ <unsigned char>route[i]) * 1099511628211ULL
    return (h ^ <uint64_t>(method << 16 | status)) * 0x9E3779B97F4A7C15ULL


cdef bint _hex_ids(const char* data) noexcept:
    cdef int i
    cdef unsigned char c
    for i in range(48):
        c = <unsigned char>data[i]
        if not (48 <= c <= 57 or 97 <= c <= 102):
            return False
    return True


cdef struct _Layout:
    Py_ssize_t nd, ns, width, found
    bint openmetrics
    _Summed* summed
    uint64_t* counts
    double* exemplar_times
    const char** exemplar_ids
    Py_ssize_t* order
    # The label set of each series (``_Summed.label_start``, ``label_size``), written once.
    _Text labels
    const char* le[65]
    Py_ssize_t le_size[65]
    const char* size_le[65]
    Py_ssize_t size_le_size[65]
    Py_ssize_t le_most, size_le_most


cdef void _free_layout(_Layout* layout) noexcept:
    PyMem_Free(layout.labels.data)
    PyMem_Free(layout.summed)
    PyMem_Free(layout.counts)
    PyMem_Free(layout.exemplar_times)
    PyMem_Free(layout.exemplar_ids)
    PyMem_Free(layout.order)
    memset(layout, 0, sizeof(_Layout))


cdef Py_ssize_t _checked_chunk_size(chunk_size) except -1:
    if type(chunk_size) is not int:
        raise TypeError(f"chunk_size must be an int, not {_type_name(chunk_size)}")
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be from 1 to {MAX_CHUNK_SIZE}, got {chunk_size}")
    return chunk_size


@cython.final
cdef class HistogramChunks:
    """The three request histograms summed over ``files`` (counters files of one layout:
    ``len(duration_le)`` and ``len(size_le)`` finite bounds, whose ``le`` texts they are), in
    Prometheus text 0.0.4 or OpenMetrics 1.0 (with the duration exemplars), as an iterator of
    ``bytes`` chunks: each ends at the first family header or series block that brings it to
    ``chunk_size`` bytes or more. ``methods`` is the bit mask of the methods seen. Series sort
    by route, method, status; a malformed entry ends its file. ``close()`` frees it early."""

    cdef object __weakref__
    # The files the series' routes and exemplar ids point into, and the bounds' texts.
    cdef tuple _files
    cdef list _texts
    cdef _Layout _layout
    cdef _Text _out
    cdef Py_ssize_t _chunk_size, _family, _index
    cdef unsigned long long _methods
    cdef bint _ready

    def __init__(self, files, duration_le, size_le, openmetrics, chunk_size=CHUNK_SIZE):
        # Read once, as tuples: what is checked is what is used (a list subclass's __len__ or
        # __iter__ cannot give other sizes later), and the bounds fit the layout's arrays.
        files, duration_le, size_le = tuple(files), tuple(duration_le), tuple(size_le)
        for name, texts in (("duration_le", duration_le), ("size_le", size_le)):
            if len(texts) > MAX_BUCKETS:
                raise ValueError(f"{name} must have at most {MAX_BUCKETS} bounds, got {len(texts)}")
            if not all(type(text) is str and text.isascii() for text in texts):
                raise TypeError(f"{name} must hold ASCII str")
        for data in files:
            if type(data) is not bytes:
                raise TypeError(f"files must hold bytes, not {_type_name(data)}")
        self._chunk_size = _checked_chunk_size(chunk_size)
        self._release()
        self._ready = True
        self._family = 3  # nothing to yield unless the build completes
        cdef list les = [text.encode("ascii") for text in duration_le] + [b"+Inf"]
        cdef list size_les = [text.encode("ascii") for text in size_le] + [b"+Inf"]
        self._texts = les + size_les
        self._files = files
        _build(&self._layout, files, les, size_les, bool(openmetrics))
        self._methods = 0
        cdef Py_ssize_t i
        for i in range(self._layout.found):
            self._methods |= 1ULL << self._layout.summed[i].method
        self._family = 0
        self._index = -1

    def __dealloc__(self):
        _free_layout(&self._layout)
        PyMem_Free(self._out.data)

    @property
    def methods(self):
        """The bit mask of the methods (``METRIC_METHODS`` indices) of the series."""
        if not self._ready:
            raise AttributeError("'HistogramChunks' object has no attribute '_methods'")
        return self._methods

    def __iter__(self):
        return self

    def __next__(self):
        if not self._ready:
            raise AttributeError("'HistogramChunks' object has no attribute '_chunks'")
        cdef _Text* out = &self._out
        cdef _Layout* layout = &self._layout
        out.size = 0
        while self._family < 3:
            if self._index < 0:
                _write_header(out, layout, self._family)
            elif self._index < layout.found:
                _write_series(out, layout, self._family, self._index)
            else:
                self._family += 1
                self._index = -1
                continue
            self._index += 1
            if out.size >= self._chunk_size:
                break
        if out.size == 0:
            self._release()
            raise StopIteration
        return PyBytes_FromStringAndSize(out.data, out.size)

    def close(self):
        """Free what it holds; it yields nothing more."""
        if not self._ready:
            raise AttributeError("'HistogramChunks' object has no attribute '_chunks'")
        self._release()
        self._family = 3

    cdef void _release(self) noexcept:
        _free_layout(&self._layout)
        PyMem_Free(self._out.data)
        memset(&self._out, 0, sizeof(_Text))
        self._files = None
        self._texts = None


cdef int _build(_Layout* layout, tuple files, list les, list size_les, bint openmetrics) except -1:
    """Sum and sort the series of ``files`` into ``layout``, with each one's label set."""
    cdef Py_ssize_t i
    layout.nd = len(les)
    layout.ns = len(size_les)
    layout.width = layout.nd + 2 * layout.ns
    layout.openmetrics = openmetrics
    for i in range(layout.nd):
        layout.le[i] = PyBytes_AS_STRING(les[i])
        layout.le_size[i] = PyBytes_GET_SIZE(les[i])
        layout.le_most = max(layout.le_most, layout.le_size[i])
    for i in range(layout.ns):
        layout.size_le[i] = PyBytes_AS_STRING(size_les[i])
        layout.size_le_size[i] = PyBytes_GET_SIZE(size_les[i])
        layout.size_le_most = max(layout.size_le_most, layout.size_le_size[i])
    cdef Py_ssize_t size = series_words(layout.nd - 1, layout.ns - 1) * 8
    # Upper bounds: every series entry of every file is a different series.
    cdef Py_ssize_t total = 0, length, routes_most = 0
    for data in files:
        total += _walk(<bytes>data, size, &length)
        if length > routes_most:
            routes_most = length
    cdef Py_ssize_t capacity = 16
    while capacity < 2 * total + 2:
        capacity *= 2
    cdef Py_ssize_t nd = layout.nd, width = layout.width
    layout.summed = <_Summed*>PyMem_Malloc((total + 1) * sizeof(_Summed))
    layout.counts = <uint64_t*>PyMem_Calloc((total + 1) * width, sizeof(uint64_t))
    # Per series and duration bucket: (time, value) and the ids' address.
    layout.exemplar_times = <double*>PyMem_Calloc((total + 1) * nd * 2, sizeof(double))
    layout.exemplar_ids = <const char**>PyMem_Malloc((total + 1) * nd * sizeof(char*))
    layout.order = <Py_ssize_t*>PyMem_Malloc((total + 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t* table = <Py_ssize_t*>PyMem_Malloc(capacity * sizeof(Py_ssize_t))
    cdef const char** route_data = <const char**>PyMem_Malloc((routes_most + 1) * sizeof(char*))
    cdef Py_ssize_t* route_sizes = <Py_ssize_t*>PyMem_Malloc((routes_most + 1) * sizeof(Py_ssize_t))
    cdef _Summed* series
    cdef _Text* labels = &layout.labels
    try:
        if (layout.summed == NULL or layout.counts == NULL or layout.exemplar_times == NULL
                or layout.exemplar_ids == NULL or table == NULL or layout.order == NULL or route_data == NULL
                or route_sizes == NULL):
            raise MemoryError()
        for i in range(capacity):
            table[i] = -1
        layout.found = 0
        for data in files:
            layout.found = _sum_file(<bytes>data, size, nd, width, route_data, route_sizes, routes_most,
                                     layout.summed, layout.counts, layout.exemplar_times, layout.exemplar_ids,
                                     table, capacity, layout.found)
        for i in range(layout.found):
            layout.order[i] = i
        global _sorting
        _sorting = layout.summed
        qsort(layout.order, layout.found, sizeof(Py_ssize_t), _compare_series)
        for i in range(layout.found):
            series = &layout.summed[layout.order[i]]
            _reserve(labels, 96 + 2 * series.route_size)
            series.label_start = labels.size
            _put(labels, b'http_request_method="', 21)
            _put_bytes(labels, (<str>METRIC_METHODS[series.method]).encode("ascii"))
            _put(labels, b'"', 1)
            if series.status:
                _put(labels, b',http_response_status_code="', 28)
                _put_u64(labels, <uint64_t>series.status)
                _put(labels, b'"', 1)
            if series.route_size:
                _put(labels, b',http_route="', 13)
                _put_escaped(labels, series.route, series.route_size)
                _put(labels, b'"', 1)
            series.label_size = labels.size - series.label_start
    finally:
        PyMem_Free(table)
        PyMem_Free(route_data)
        PyMem_Free(route_sizes)
    return 0


cdef int _write_header(_Text* out, _Layout* layout, Py_ssize_t family) except -1:
    """The TYPE, UNIT (OpenMetrics) and HELP lines of histogram ``family``."""
    cdef tuple names = <tuple>_HISTOGRAMS[family]
    cdef bytes name = <bytes>names[0]
    cdef Py_ssize_t name_size = PyBytes_GET_SIZE(name)
    _reserve(out, 3 * name_size + 128)
    _put(out, b"# TYPE ", 7)
    _put(out, name, name_size)
    _put(out, b" histogram\n", 11)
    if layout.openmetrics:
        _put(out, b"# UNIT ", 7)
        _put(out, name, name_size)
        _put(out, b" ", 1)
        _put_bytes(out, <bytes>names[2])
        _put(out, b"\n", 1)
    _put(out, b"# HELP ", 7)
    _put(out, name, name_size)
    _put(out, b" ", 1)
    _put_bytes(out, <bytes>names[1])
    _put(out, b"\n", 1)
    return 0


cdef int _write_series(_Text* out, _Layout* layout, Py_ssize_t family, Py_ssize_t i) except -1:
    """The bucket, count and sum lines of the ``i``-th series (in order) in histogram ``family``."""
    cdef bytes name_bytes = <bytes>(<tuple>_HISTOGRAMS[family])[0]
    cdef const char* name = PyBytes_AS_STRING(name_bytes)
    cdef Py_ssize_t name_size = PyBytes_GET_SIZE(name_bytes)
    cdef Py_ssize_t nd = layout.nd, width = layout.width, k, j
    cdef Py_ssize_t start = 0 if family == 0 else nd if family == 1 else nd + layout.ns
    cdef Py_ssize_t stop = nd if family == 0 else start + layout.ns
    cdef const char** bounds = &layout.le[0] if family == 0 else &layout.size_le[0]
    cdef Py_ssize_t* bound_sizes = &layout.le_size[0] if family == 0 else &layout.size_le_size[0]
    cdef Py_ssize_t bound_most = layout.le_most if family == 0 else layout.size_le_most
    cdef Py_ssize_t slot = layout.order[i]
    cdef _Summed* series = &layout.summed[slot]
    cdef const char* label = layout.labels.data + series.label_start
    cdef Py_ssize_t label_size = series.label_size
    cdef uint64_t running = 0
    cdef uint64_t* counts = layout.counts + slot * width + start
    cdef bint exemplars = layout.openmetrics and family == 0
    _reserve(out, (stop - start + 2) * (name_size + label_size + bound_most + C_LINE_SLACK))
    for k in range(stop - start):
        running += counts[k]
        _put(out, name, name_size)
        _put(out, b"_bucket{", 8)
        _put(out, label, label_size)
        _put(out, b',le="', 5)
        _put(out, bounds[k], bound_sizes[k])
        _put(out, b'"} ', 3)
        _put_u64(out, running)
        j = (slot * nd + k) * 2
        if exemplars and layout.exemplar_times[j] > 0:
            _put(out, b' # {trace_id="', 14)
            _put(out, layout.exemplar_ids[slot * nd + k], 32)
            _put(out, b'",span_id="', 11)
            _put(out, layout.exemplar_ids[slot * nd + k] + 32, 16)
            _put(out, b'"} ', 3)
            _put_repr(out, layout.exemplar_times[j + 1])
            _put(out, b" ", 1)
            _put_repr(out, layout.exemplar_times[j])
        _put(out, b"\n", 1)
    for k in range(2):
        _put(out, name, name_size)
        if (k == 0) == layout.openmetrics:
            _put(out, b"_count{", 7)
            _put(out, label, label_size)
            _put(out, b"} ", 2)
            _put_u64(out, running)
        else:
            _put(out, b"_sum{", 5)
            _put(out, label, label_size)
            _put(out, b"} ", 2)
            if family == 0:
                _put_repr(out, series.duration_sum)
            else:
                _put_u64(out, series.request_sum if family == 1 else series.response_sum)
        _put(out, b"\n", 1)
    return 0


cdef Py_ssize_t _walk(bytes data, Py_ssize_t size, Py_ssize_t* routes) except -1:
    """Count one file's series entries (and its routes in ``routes``), up to the first
    malformed entry, as ``_sum_file`` reads them."""
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), at = C_COUNTERS_HEADER, used, length, series = 0
    cdef uint64_t head, second
    cdef int method
    routes[0] = 0
    if n < C_COUNTERS_HEADER:
        return 0
    head = _read_word(p, C_W_USED * 8)
    used = n if head > <uint64_t>n else <Py_ssize_t>head
    while at + 16 <= used:
        head = _read_word(p, at)
        second = _read_word(p, at + 8)
        if head & 0xFF == C_ENTRY_ROUTE:
            length = <Py_ssize_t>(head >> 32)
            if at + 16 + length > used or second != <uint64_t>routes[0]:
                break
            routes[0] += 1
            at += 16 + length + ((8 - length % 8) % 8)
        elif head & 0xFF == C_ENTRY_SERIES:
            method = <int>((head >> 8) & 0xFF)
            if at + 16 + size > used or method >= 10 or second >= <uint64_t>routes[0]:
                break
            series += 1
            at += 16 + size
        elif _pad_bytes(head):
            at += _pad_bytes(head)
        else:
            break
    return series


cdef Py_ssize_t _sum_file(bytes data, Py_ssize_t size, Py_ssize_t nd, Py_ssize_t width, const char** route_data,
                          Py_ssize_t* route_sizes, Py_ssize_t routes_most, _Summed* summed, uint64_t* counts,
                          double* exemplar_times, const char** exemplar_ids, Py_ssize_t* table,
                          Py_ssize_t capacity, Py_ssize_t found) except -1:
    """Add one file's series into ``summed``/``counts`` (``found`` so far); the new ``found``."""
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), at = C_COUNTERS_HEADER, used, length, routes = 0
    cdef Py_ssize_t slot, k, base, word, mask = capacity - 1, route_size, index
    cdef uint64_t head, second
    cdef int method, status
    cdef const char* route
    cdef _Summed* series
    cdef double when
    if n < C_COUNTERS_HEADER:
        return found
    head = _read_word(p, C_W_USED * 8)
    used = n if head > <uint64_t>n else <Py_ssize_t>head
    while at + 16 <= used:
        head = _read_word(p, at)
        second = _read_word(p, at + 8)
        if head & 0xFF == C_ENTRY_ROUTE:
            length = <Py_ssize_t>(head >> 32)
            # Route ids count up from 0 in a file, each written before its series.
            if at + 16 + length > used or second != <uint64_t>routes or routes >= routes_most:
                break
            route_data[routes] = p + at + 16
            route_sizes[routes] = length
            routes += 1
            at += 16 + length + ((8 - length % 8) % 8)
        elif head & 0xFF == C_ENTRY_SERIES:
            method = <int>((head >> 8) & 0xFF)
            status = <int>((head >> 16) & 0xFFFF)
            if at + 16 + size > used or method >= 10 or second >= <uint64_t>routes:
                break
            route = route_data[second]
            route_size = route_sizes[second]
            index = <Py_ssize_t>(_series_hash(route, route_size, method, status) >> 20) & mask
            while True:
                slot = table[index]
                if slot < 0:
                    slot = table[index] = found
                    found += 1
                    series = &summed[slot]
                    series.route = route
                    series.route_size = route_size
                    series.method = method
                    series.status = status
                    series.duration_sum = 0.0
                    series.request_sum = series.response_sum = 0
                    break
                series = &summed[slot]
                if (series.method == method and series.status == status and series.route_size == route_size
                        and memcmp(series.route, route, route_size) == 0):
                    break
                index = (index + 1) & mask
            base = at + 16
            series.duration_sum += _read_real(p, base)
            series.request_sum += _read_word(p, base + 8)
            series.response_sum += _read_word(p, base + 16)
            for k in range(width):
                counts[slot * width + k] += _read_word(p, base + (C_SERIES_HEAD + k) * 8)
            base += (C_SERIES_HEAD + width) * 8
            for k in range(nd):
                word = base + k * C_EXEMPLAR_WORDS * 8
                when = _read_real(p, word + 56)
                if when > 0 and (exemplar_times[(slot * nd + k) * 2] == 0 or when > exemplar_times[(slot * nd + k) * 2]):
                    if _hex_ids(p + word):
                        exemplar_times[(slot * nd + k) * 2] = when
                        exemplar_times[(slot * nd + k) * 2 + 1] = _read_real(p, word + 48)
                        exemplar_ids[slot * nd + k] = p + word
            at += 16 + size
        elif _pad_bytes(head):
            at += _pad_bytes(head)
        else:
            break
    return found
