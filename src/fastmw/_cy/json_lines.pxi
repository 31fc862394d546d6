# JSON-lines access records: one flat ASCII JSON object per line.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.

# --------------------------------------------------------------------------- JSON-lines access records
# Used by the access log's fast sink: one flat JSON object per line, ASCII only
# (json.dumps' ensure_ascii escaping), so any header bytes give a valid line.



# The letter after the backslash for \b \t \n \f \r (indexes 8, 9, 10, 12, 13).
cdef const char* ESCAPE_LETTER = b"........btn.fr"


cdef struct _JsonBuf:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int _jb_reserve(_JsonBuf* buf, Py_ssize_t extra) except -1:
    cdef Py_ssize_t wanted = buf.size + extra, capacity = buf.capacity
    cdef char* grown
    if wanted <= capacity:
        return 0
    while capacity < wanted:
        capacity = capacity * 2 if capacity else 256
    grown = <char*>PyMem_Realloc(buf.data, capacity)
    if grown == NULL:
        raise MemoryError()
    buf.data = grown
    buf.capacity = capacity
    return 0


cdef int _jb_put(_JsonBuf* buf, const char* text, Py_ssize_t n) except -1:
    _jb_reserve(buf, n)
    memcpy(buf.data + buf.size, text, n)
    buf.size += n
    return 0


cdef inline void _jb_unit(char* out, unsigned int unit) noexcept:
    # "\\uXXXX" with lower-case hex, like json.dumps.
    out[0] = 92
    out[1] = 117
    out[2] = HEX_CHARS[(unit >> 12) & 0xF]
    out[3] = HEX_CHARS[(unit >> 8) & 0xF]
    out[4] = HEX_CHARS[(unit >> 4) & 0xF]
    out[5] = HEX_CHARS[unit & 0xF]


cdef int _jb_char(_JsonBuf* buf, unsigned int c) except -1:
    cdef char* out
    cdef unsigned int n
    if 0x20 <= c <= 0x7E and c != 34 and c != 92:
        _jb_reserve(buf, 1)
        buf.data[buf.size] = <char>c
        buf.size += 1
        return 0
    _jb_reserve(buf, 12)
    out = buf.data + buf.size
    if c == 34 or c == 92:
        out[0] = 92
        out[1] = <char>c
        buf.size += 2
    elif c == 10 or c == 13 or c == 9 or c == 8 or c == 12:
        out[0] = 92
        out[1] = ESCAPE_LETTER[c]
        buf.size += 2
    elif c > 0xFFFF:
        n = c - 0x10000
        _jb_unit(out, 0xD800 | ((n >> 10) & 0x3FF))
        _jb_unit(out + 6, 0xDC00 | (n & 0x3FF))
        buf.size += 12
    else:
        _jb_unit(out, c)
        buf.size += 6
    return 0


cdef inline bint _jb_plain(const unsigned char* text, Py_ssize_t n) noexcept:
    """Whether ASCII ``text`` goes into a JSON string as it is (no quote, backslash or control)."""
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(n):
        c = text[i]
        if c < 0x20 or c > 0x7E or c == 34 or c == 92:
            return False
    return True


cdef int _jb_str(_JsonBuf* buf, str text) except -1:
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(text)
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    _jb_reserve(buf, n + 2)
    buf.data[buf.size] = 34
    buf.size += 1
    if PyUnicode_IS_ASCII(text) and _jb_plain(<const unsigned char*>data, n):
        memcpy(buf.data + buf.size, data, n)  # the usual text: nothing to escape
        buf.size += n
    else:
        for i in range(n):
            _jb_char(buf, <unsigned int>PyUnicode_READ(kind, data, i))
    _jb_put(buf, b'"', 1)
    return 0


cdef int _jb_digits(_JsonBuf* buf, unsigned long long value, int width) except -1:
    """``value`` in decimal, zero-padded to at least ``width`` digits."""
    cdef char text[24]
    cdef int position = 24
    while value or 24 - position < width or position == 24:
        position -= 1
        text[position] = 48 + <int>(value % 10)
        value //= 10
    _jb_put(buf, text + position, 24 - position)
    return 0


cdef bint _jb_exact_int(_JsonBuf* buf, value) except -1:
    """Write ``repr(value)`` of an int that fits in 64 bits, and say so."""
    cdef int overflow = 0
    cdef long long number = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow:
        return False
    if number < 0:
        _jb_put(buf, b"-", 1)
        _jb_digits(buf, 0ULL - <unsigned long long>number, 1)
    else:
        _jb_digits(buf, <unsigned long long>number, 1)
    return True


cdef bint _jb_short_float(_JsonBuf* buf, double value) except -1:
    """Write ``repr(value)`` when it is a decimal of at most 6 fractional digits in
    [1e-4, 1e15) or zero (rounded durations and times: the usual floats), and say so.

    At the fewest fractional digits that give ``value`` back, exactly one decimal must do
    (then ``repr``, the shortest round-tripping decimal, is that one); otherwise nothing
    is written and False returned (the caller uses ``repr``)."""
    cdef double magnitude = fabs(value), scale, candidate
    cdef long long nearest, found
    cdef int digits, matches, step
    if magnitude == 0.0:
        _jb_put(buf, b"-0.0" if signbit(value) else b"0.0", 4 if signbit(value) else 3)
        return True
    if not 1e-4 <= magnitude < 1e15:
        return False
    for digits in range(7):
        scale = POW10[digits]
        if magnitude * scale >= 9e15:
            return False
        nearest = llround(magnitude * scale)
        matches = 0
        found = 0
        # The product's rounding may move the nearest decimal by one: try its neighbours too.
        for step in range(-1, 2):
            candidate = <double>(nearest + step) / scale
            if candidate == magnitude:
                matches += 1
                found = nearest + step
        if matches > 1:
            return False
        if matches == 1:
            if value < 0:
                _jb_put(buf, b"-", 1)
            _jb_digits(buf, <unsigned long long>(found // <long long>scale), 1)
            _jb_put(buf, b".", 1)
            _jb_digits(buf, <unsigned long long>(found % <long long>scale), digits if digits else 1)
            return True
    return False


cdef int _jb_bytes(_JsonBuf* buf, const unsigned char* raw, Py_ssize_t n) except -1:
    # latin-1: every byte is the code point of the same value.
    cdef Py_ssize_t i
    _jb_put(buf, b'"', 1)
    for i in range(n):
        _jb_char(buf, raw[i])
    _jb_put(buf, b'"', 1)
    return 0


cdef int _jb_ascii(_JsonBuf* buf, str text) except -1:
    cdef bytes raw = text.encode("ascii")
    _jb_put(buf, PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw))
    return 0


cdef int _jb_value(_JsonBuf* buf, key, value) except -1:
    if value is None:
        _jb_put(buf, b"null", 4)
    elif value is True:
        _jb_put(buf, b"true", 4)
    elif value is False:
        _jb_put(buf, b"false", 5)
    elif PyLong_CheckExact(value) and _jb_exact_int(buf, value):
        pass
    elif isinstance(value, int):
        _jb_ascii(buf, int.__repr__(value))
    elif isinstance(value, float):
        if not isfinite(<double>value):
            _jb_put(buf, b"null", 4)
        elif not _jb_short_float(buf, <double>value):
            _jb_ascii(buf, float.__repr__(value))
    elif isinstance(value, str):
        _jb_str(buf, <str>value)
    elif PyBytes_Check(value):
        _jb_bytes(buf, <const unsigned char*>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
    elif isinstance(value, bytearray):
        _jb_bytes(buf, <const unsigned char*>PyByteArray_AS_STRING(value), PyByteArray_GET_SIZE(value))
    else:
        raise TypeError(
            f"access record value for {key!r} must be None, bool, int, float, str or bytes, not {_type_name(value)}"
        )
    return 0


cdef int _jb_pair(_JsonBuf* buf, Py_ssize_t i, key, value) except -1:
    if not isinstance(key, str):
        raise TypeError(f"access record key must be str, not {_type_name(key)}")
    if i:
        _jb_put(buf, b",", 1)
    _jb_str(buf, <str>key)
    _jb_put(buf, b":", 1)
    return _jb_value(buf, key, value)


cpdef bytes encode_access_record(keys, values):
    """One JSON object (ASCII bytes ending in a newline) pairing ``keys`` with ``values``."""
    if not isinstance(keys, (tuple, list)):
        raise TypeError(f"keys must be a tuple or list, not {_type_name(keys)}")
    if not isinstance(values, (tuple, list)):
        raise TypeError(f"values must be a tuple or list, not {_type_name(values)}")
    # Exact sequences: their sizes are read without running a subclass's __len__.
    cdef bint exact = (type(keys) is tuple or type(keys) is list) and (type(values) is tuple or type(values) is list)
    cdef Py_ssize_t i, n
    if exact:
        n = PySequence_Fast_GET_SIZE(keys)
        if n != PySequence_Fast_GET_SIZE(values):
            raise ValueError(f"{PySequence_Fast_GET_SIZE(values)} values for {n} keys")
    elif len(keys) != len(values):
        raise ValueError(f"{len(values)} values for {len(keys)} keys")
    cdef _JsonBuf buf
    buf.data = NULL
    buf.size = 0
    buf.capacity = 0
    try:
        _jb_put(&buf, b"{", 1)
        # Exact sequences of the same size are indexed: nothing in the loop runs Python code,
        # so every index is in bounds (an int, str or float subclass is read for its value,
        # not its methods). Anything else goes through its own iteration (and whatever that
        # changes), as the pure twin's zip. One loop, so the C compiler inlines the pair.
        pairs = None if exact else iter(zip(keys, values, strict=True))
        i = 0
        while True:
            if exact:
                if i >= n:
                    break
                key = keys[i]
                value = values[i]
            else:
                pair = next(pairs, None)  # zip yields tuples, never None
                if pair is None:
                    break
                key, value = pair
            _jb_pair(&buf, i, key, value)
            i += 1
        _jb_put(&buf, b"}\n", 2)
        return PyBytes_FromStringAndSize(buf.data, buf.size)
    finally:
        PyMem_Free(buf.data)


cdef class JsonLinesWriter:
    """Buffers JSON lines for a binary stream and writes them out whole.

    ``write`` only buffers (no I/O) and says when its line completes a batch of ``batch_lines``
    (once per batch, so a caller wakes its writing thread once, not on every later line); with
    ``max_pending`` lines waiting, a line is dropped and counted in ``dropped``. ``flush``
    writes what waits; a stream that takes part of it is given the rest. When a write fails,
    the part not written stays, first in line for the next flush (so a line cut short by a
    full disk is completed before anything else is written), and the error propagates; lines
    buffered meanwhile that take the total past ``max_pending`` are dropped, newest first.
    The buffer changes hands under the object's critical section (loops in several threads
    may share a writer; a no-op with the GIL); ``take`` then ``write_out`` let a caller write
    outside it.
    """

    cdef public object stream
    cdef readonly Py_ssize_t batch_lines, max_pending, dropped
    cdef bytearray _buffer
    cdef Py_ssize_t _lines
    # What a failed write left: written before anything else, then counted as pending.
    cdef bytes _carry
    cdef Py_ssize_t _carry_lines

    def __init__(self, stream, batch_lines=64, max_pending=DEFAULT_MAX_PENDING):
        if type(batch_lines) is not int or batch_lines < 1:
            raise ValueError("batch_lines must be a positive int")
        if type(max_pending) is not int or max_pending < batch_lines:
            raise ValueError("max_pending must be an int of at least batch_lines")
        if not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream must have a write() method, not {_type_name(stream)}")
        self.stream = stream
        self.batch_lines = batch_lines
        self.max_pending = max_pending
        self.dropped = 0
        self._buffer = bytearray()
        self._lines = 0
        self._carry = b""
        self._carry_lines = 0

    @property
    def pending(self):
        """How many lines wait (buffered, or left by a failed write)."""
        return self._lines + self._carry_lines

    def write(self, line):
        """Buffer one encoded line; True when it completes a batch (the buffer reaches
        ``batch_lines`` lines). Dropped (and counted) when ``max_pending`` lines wait."""
        if not PyBytes_Check(line):
            raise TypeError(f"line must be bytes, not {_type_name(line)}")
        with cython.critical_section(self):
            if self._lines + self._carry_lines >= self.max_pending:
                self.dropped += 1
                return False
            self._buffer += <bytes>line
            self._lines += 1
            return self._lines == self.batch_lines

    def take(self):
        """Everything waiting (what a failed write left first), removed from the writer."""
        with cython.critical_section(self):
            data = self._carry + self._buffer if PyBytes_GET_SIZE(self._carry) else bytes(self._buffer)
            self._buffer = bytearray()
            self._lines = 0
            self._carry = b""
            self._carry_lines = 0
        return data

    def write_out(self, data):
        """Write ``data`` (from ``take``) and flush the stream; on an error the part not
        written is kept for the next flush and the error propagates."""
        if not PyBytes_Check(data):
            raise TypeError(f"data must be bytes, not {_type_name(data)}")
        cdef Py_ssize_t done = 0, size = PyBytes_GET_SIZE(data)
        try:
            while done < size:
                written = self.stream.write(data[done:] if done else data)
                if type(written) is not int or written >= size - done:
                    done = size
                    break
                if written <= 0:
                    raise OSError(f"the stream took none of {size - done} bytes")
                done += <Py_ssize_t>written
            flush = getattr(self.stream, "flush", None)
            if flush is not None:
                flush()
        except BaseException:
            if done < size:
                rest = (<bytes>data)[done:]
                with cython.critical_section(self):
                    self._carry = rest + self._carry
                    self._carry_lines += rest.count(b"\n")
                    self._drop_over_bound()
            raise

    cdef int _drop_over_bound(self) except -1:
        """With what a failed write gave back, keep at most ``max_pending`` lines: lines
        buffered while the write was under way did not count what it held, so the newest
        beyond the bound are dropped (and counted), as they would have been had it stayed."""
        cdef Py_ssize_t over = self._lines + self._carry_lines - self.max_pending
        cdef Py_ssize_t end = len(self._buffer), i
        if over <= 0:
            return 0
        if over > self._lines:
            over = self._lines
        for i in range(over):  # each buffered line ends with its newline
            if end > 1:
                end = self._buffer.rfind(b"\n", 0, end - 1) + 1
            else:
                end = 0
        del self._buffer[end:]
        self._lines -= over
        self.dropped += over
        return 0

    def flush(self):
        """Write out everything waiting (``write_out(take())``)."""
        if self._lines or PyBytes_GET_SIZE(self._carry):
            self.write_out(self.take())

    def discard(self):
        """Drop everything waiting, count it in ``dropped``, and say how many lines that was."""
        cdef Py_ssize_t lost = self._lines + self._carry_lines
        self.take()
        self.dropped += lost
        return lost
