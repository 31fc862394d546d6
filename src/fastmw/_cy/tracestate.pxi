# tracestate (W3C Trace Context Level 2 member grammar), parsed from one or more header values.
# Included by _core.pyx before trace.pxi; the pure twin is the module of the same name in _core_py/.
#
# Members are kept in order with OWS and empty members dropped; a later member repeating a
# key is dropped (the left-most is the most recent); one malformed member, or more than 32,
# discards the whole tracestate; a result over 512 characters loses whole members, those
# over 128 characters first, then from the right. The result is ASCII text or None.

cdef extern from "trace.h":
    bint _ts_value_ok "fastmw_tracestate_value"(const unsigned char* p, Py_ssize_t n) noexcept


cdef extern from "<string.h>":
    const void* memchr(const void* s, int c, size_t n) noexcept


cdef enum:
    TS_MAX_MEMBERS = 32
    TS_MAX_KEY = 256
    TS_MAX_VALUE = 256
    TS_MAX_LENGTH = 512
    TS_LONG_MEMBER = 128
    TS_KEY_FIRST = 1
    TS_KEY_CHAR = 2

# TS_KEY_FIRST / TS_KEY_CHAR bits per byte (values are checked eight bytes at a time in trace.h).
cdef uint8_t TS_CHARS[256]


cdef void _init_tracestate_table():
    cdef int c
    for c in range(256):
        TS_CHARS[c] = 0
    for c in b"abcdefghijklmnopqrstuvwxyz0123456789":
        TS_CHARS[c] |= TS_KEY_FIRST | TS_KEY_CHAR
    for c in b"_-*/@":
        TS_CHARS[c] |= TS_KEY_CHAR


_init_tracestate_table()


ctypedef struct _Member:
    const unsigned char* text
    Py_ssize_t size
    Py_ssize_t key_size


ctypedef struct _TraceState:
    _Member members[32]
    Py_ssize_t kept
    Py_ssize_t seen


cdef inline bint _is_ows(unsigned char c) noexcept:
    return c == 32 or c == 9


cdef const unsigned char* _text_of(value, Py_ssize_t* n, str what) except? NULL:
    """The bytes of a bytes or ASCII str value; ``n`` is -1 for a non-ASCII str (never valid)."""
    if PyBytes_Check(value):
        n[0] = PyBytes_GET_SIZE(value)
        return <const unsigned char*>PyBytes_AS_STRING(value)
    if isinstance(value, str):
        if not PyUnicode_IS_ASCII(value):
            n[0] = -1
            return <const unsigned char*>b""
        n[0] = PyUnicode_GET_LENGTH(value)
        return <const unsigned char*>PyUnicode_DATA(value)
    raise TypeError(f"{what} must be str or bytes, not {_type_name(value)}")


cdef bint _ts_member(_TraceState* st, const unsigned char* p, Py_ssize_t n) noexcept:
    """Adds one non-empty member (OWS stripped); False when it makes the tracestate invalid."""
    cdef Py_ssize_t eq, k
    cdef const unsigned char* sign
    st.seen += 1
    if st.seen > TS_MAX_MEMBERS or not (TS_CHARS[p[0]] & TS_KEY_FIRST):
        return False
    sign = <const unsigned char*>memchr(p, 61, n)  # '='
    if sign == NULL:
        return False
    eq = sign - p
    # A key is 1 to 256 key characters; the value 1 to 256 value characters (OWS is
    # stripped, so it cannot end in a space).
    if eq > TS_MAX_KEY or eq == n - 1 or n - eq - 1 > TS_MAX_VALUE or not _ts_value_ok(sign + 1, n - eq - 1):
        return False
    for k in range(1, eq):
        if not (TS_CHARS[p[k]] & TS_KEY_CHAR):
            return False
    for k in range(st.kept):
        if st.members[k].key_size == eq and memcmp(st.members[k].text, p, eq) == 0:
            return True
    st.members[st.kept].text = p
    st.members[st.kept].size = n
    st.members[st.kept].key_size = eq
    st.kept += 1
    return True


cdef bint _ts_add(_TraceState* st, const unsigned char* p, Py_ssize_t n) noexcept:
    """Adds the members of one header value; False when the tracestate is invalid."""
    cdef Py_ssize_t i = 0, start, end
    cdef const unsigned char* comma
    while i <= n:
        start = i
        comma = <const unsigned char*>memchr(p + i, 44, n - i)  # ','
        end = n if comma == NULL else comma - p
        i = end + 1
        while start < end and _is_ows(p[start]):
            start += 1
        while end > start and _is_ows(p[end - 1]):
            end -= 1
        if start < end and not _ts_member(st, p + start, end - start):
            return False
    return True


cdef object _ts_text(_TraceState* st):
    """The kept members joined with commas (truncated to TS_MAX_LENGTH), or None."""
    cdef Py_ssize_t k, drop, total = st.kept - 1
    for k in range(st.kept):
        total += st.members[k].size
    while st.kept and total > TS_MAX_LENGTH:
        drop = st.kept - 1
        for k in range(st.kept - 1, -1, -1):
            if st.members[k].size > TS_LONG_MEMBER:
                drop = k
                break
        total -= st.members[drop].size + 1
        for k in range(drop, st.kept - 1):
            st.members[k] = st.members[k + 1]
        st.kept -= 1
    if st.kept == 0:
        return None
    cdef str result = PyUnicode_New(total, 127)
    cdef char* out = <char*>PyUnicode_DATA(result)
    for k in range(st.kept):
        if k:
            out[0] = 44
            out += 1
        memcpy(out, st.members[k].text, st.members[k].size)
        out += st.members[k].size
    return result


cdef object _ts_of(object first, list more):
    """The tracestate of one header value (``first``, bytes) and maybe more (a list of bytes).

    None, the text (str), or ``first`` itself when it is one header already in normal form
    (the usual case): its text is made only if it is read.
    """
    cdef _TraceState st
    cdef Py_ssize_t k, total
    st.kept = 0
    st.seen = 0
    if more is None:
        if not _ts_add(&st, <const unsigned char*>PyBytes_AS_STRING(first), PyBytes_GET_SIZE(first)):
            return None
        if st.kept == st.seen and st.kept and PyBytes_CheckExact(first):
            # No duplicate, and the members and their commas cover the whole value:
            # no OWS, no empty member, nothing to truncate.
            total = st.kept - 1
            for k in range(st.kept):
                total += st.members[k].size
            if total == PyBytes_GET_SIZE(first) and total <= TS_MAX_LENGTH:
                return first
    else:
        for value in more:
            if not _ts_add(&st, <const unsigned char*>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value)):
                return None
    return _ts_text(&st)


cdef object _tracestate_of_values(tuple values, bint strict):
    """``parse_tracestate``; with ``strict``, a malformed tracestate raises ValueError."""
    cdef _TraceState st
    cdef Py_ssize_t n
    cdef const unsigned char* p
    st.kept = 0
    st.seen = 0
    # Every value is type-checked before any is parsed, as the pure twin does.
    for value in values:
        _text_of(value, &n, "tracestate")
    for value in values:
        p = _text_of(value, &n, "tracestate")
        if n < 0 or not _ts_add(&st, p, n):
            if strict:
                raise ValueError(f"tracestate is not a valid W3C tracestate: {_shown(value)}")
            return None
    return _ts_text(&st)


def parse_tracestate(*values):
    """The tracestate to propagate from one or more header values (str or bytes), or None.

    None when there is no member or the tracestate is invalid (then it is dropped whole).
    """
    return _tracestate_of_values(values, False)
