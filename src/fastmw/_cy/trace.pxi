# Trace context: W3C Trace Context Level 1 and the Level 2 random flag: ids and traceparent.
# Included by _core.pyx after tracestate.pxi; the pure twin is the module of the same name in _core_py/.
#
# traceparent "vv-<32 hex trace id>-<16 hex parent id>-<2 hex flags>", OWS around it ignored:
# version 00 is exactly 55 characters; a higher version (not ff) is read at the same offsets
# and may go on after a dash. Anything else, or several traceparent headers, starts a new
# trace (and drops the tracestate). Ids are lower-case hex and never all zero.

cdef extern from "trace.h":
    bint _hex_id "fastmw_hex_id"(const unsigned char* p, Py_ssize_t n) noexcept


cdef enum:
    TP_LENGTH = 55
    TP_SAMPLED = 0x01
    TP_RANDOM = 0x02
    # The flags Level 2 defines; the others are sent as zero.
    TP_KNOWN_FLAGS = 0x03

# value of a lower-case hex digit, or 255 (upper case is not allowed in trace ids).
cdef uint8_t LOWER_HEX[256]
cdef bytes _TRACEPARENT = b"traceparent"
cdef bytes _TRACESTATE = b"tracestate"


cdef void _init_trace_tables():
    cdef int c
    for c in range(256):
        LOWER_HEX[c] = HEX_VALUE[c] if not 65 <= c <= 70 else 255


_init_trace_tables()


# --------------------------------------------------------------------------- random ids


cdef int _random_fill(unsigned char* out, Py_ssize_t n) except -1:
    """``n`` (at most 16) CSPRNG bytes from ids.pxi's pool, never all zero."""
    cdef Py_ssize_t i
    cdef unsigned char seen = 0
    while not seen:
        _random_take(out, n)
        for i in range(n):
            seen |= out[i]
    return 0


cdef inline void _hex_into(char* out, const unsigned char* raw, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        out[2 * i] = HEX_CHARS[raw[i] >> 4]
        out[2 * i + 1] = HEX_CHARS[raw[i] & 0x0F]


cdef int _random_hex_into(char* out, Py_ssize_t n) except -1:
    """``2 * n`` random lower-case hex characters into ``out``."""
    cdef unsigned char raw[16]
    _random_fill(raw, n)
    _hex_into(out, raw, n)
    return 0


cdef str _random_hex(Py_ssize_t n):
    cdef str result = PyUnicode_New(2 * n, 127)
    _random_hex_into(<char*>PyUnicode_DATA(result), n)
    return result


cpdef str new_trace_id():
    """A random (CSPRNG) trace id: 32 lower-case hex characters, never all zero."""
    return _random_hex(16)


cpdef str new_span_id():
    """A random (CSPRNG) span id: 16 lower-case hex characters, never all zero."""
    return _random_hex(8)


# --------------------------------------------------------------------------- traceparent


cdef inline str _ascii_str(const unsigned char* p, Py_ssize_t n):
    cdef str result = PyUnicode_New(n, 127)
    memcpy(PyUnicode_DATA(result), p, n)
    return result


cdef int _traceparent_flags(const unsigned char* p, Py_ssize_t n) noexcept:
    """The flags of a valid traceparent (OWS already stripped), or -1."""
    if n < TP_LENGTH or LOWER_HEX[p[0]] > 15 or LOWER_HEX[p[1]] > 15 or p[2] != 45:
        return -1
    if p[0] == 48 and p[1] == 48:  # "00": exactly the version-00 fields
        if n != TP_LENGTH:
            return -1
    elif p[0] == 102 and p[1] == 102:  # "ff" is forbidden
        return -1
    elif n > TP_LENGTH and p[TP_LENGTH] != 45:
        return -1
    if p[35] != 45 or p[52] != 45 or not _hex_id(p + 3, 32) or not _hex_id(p + 36, 16):
        return -1
    if LOWER_HEX[p[53]] > 15 or LOWER_HEX[p[54]] > 15:
        return -1
    return LOWER_HEX[p[53]] << 4 | LOWER_HEX[p[54]]


cdef inline const unsigned char* _strip_ows(const unsigned char* p, Py_ssize_t* n) noexcept:
    cdef Py_ssize_t start = 0, end = n[0]
    while start < end and _is_ows(p[start]):
        start += 1
    while end > start and _is_ows(p[end - 1]):
        end -= 1
    n[0] = end - start
    return p + start


def parse_traceparent(value):
    """``(trace_id, parent_id, flags)`` of a valid ``traceparent`` value (str or bytes), else None.

    ``flags`` is the header's byte as sent; surrounding spaces and tabs are ignored.
    """
    cdef Py_ssize_t n
    cdef const unsigned char* p = _text_of(value, &n, "traceparent")
    if n < 0:
        return None
    p = _strip_ows(p, &n)
    cdef int flags = _traceparent_flags(p, n)
    if flags < 0:
        return None
    return (_ascii_str(p + 3, 32), _ascii_str(p + 36, 16), flags)


cdef const char* _checked_id(value, Py_ssize_t size, str what) except NULL:
    """The characters of a valid id (borrowed from ``value``)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {_type_name(value)}")
    if not (PyUnicode_IS_ASCII(value) and PyUnicode_GET_LENGTH(value) == size
            and _hex_id(<const unsigned char*>PyUnicode_DATA(value), size)):
        raise ValueError(f"{what} must be {size} lower-case hex digits, not all zero: {_shown(value)}")
    return <const char*>PyUnicode_DATA(value)


cdef int _checked_flags(value) except -1:
    if not isinstance(value, int) or not 0 <= value <= 255:
        raise ValueError(f"flags must be an int from 0 to 255, not {_shown(repr(value))}")
    return value


cdef void _write_traceparent(char* out, const char* trace_id, const char* span_id, int flags) noexcept:
    out[0] = 48
    out[1] = 48
    out[2] = 45
    memcpy(out + 3, trace_id, 32)
    out[35] = 45
    memcpy(out + 36, span_id, 16)
    out[52] = 45
    out[53] = HEX_CHARS[(flags >> 4) & 0x0F]
    out[54] = HEX_CHARS[flags & 0x0F]


cpdef str format_traceparent(trace_id, span_id, flags):
    """The version-00 ``traceparent`` value for these ids and flags (checked)."""
    cdef const char* trace = _checked_id(trace_id, 32, "trace_id")
    cdef const char* span = _checked_id(span_id, 16, "span_id")
    cdef int bits = _checked_flags(flags)
    cdef str result = PyUnicode_New(TP_LENGTH, 127)
    _write_traceparent(<char*>PyUnicode_DATA(result), trace, span, bits)
    return result
