# Ids and clock: monotonic time, CSPRNG request ids, UUID checks.
# Included by _core.pyx; the pure twin is the module of the same name in _core_py/.

# --------------------------------------------------------------------------- ids and clock


cpdef double monotonic() except? -1:
    """Seconds on the monotonic clock (``time.monotonic``'s clock)."""
    cdef int64_t ns
    fastmw_monotonic_ns(&ns)
    return <double>ns / 1e9


cdef double _wall_time_micros() except? -1:
    """``round(time.time(), 6)``: the wall clock (``time.time``'s) in whole microseconds,
    as the float nearest to that decimal (exact integer arithmetic, one division)."""
    cdef int64_t ns
    fastmw_wall_ns(&ns)
    return ((ns + 500) // 1000) / 1e6


# A pool of CSPRNG bytes (os.urandom) handed out a few at a time, shared by every thread
# (fastmw_pool_lock guards it on free-threaded builds); emptied in a forked child so
# parent and child never hand out the same ids.
cdef unsigned char _random_pool[RANDOM_POOL]
cdef Py_ssize_t _random_used = RANDOM_POOL


def _forget_random_pool():
    global _random_used
    fastmw_pool_lock_reset()
    _random_used = RANDOM_POOL


# os.register_at_fork is POSIX-only: where there is no fork there is nothing to forget.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_random_pool)


cdef int _random_take(unsigned char* out, Py_ssize_t n) except -1:
    """``n`` (at most 16) bytes from the pool, each handed out once. The refill calls
    Python (os.urandom) outside the lock, so the lock is never held across Python code."""
    global _random_used
    cdef bytes fresh = None
    while True:
        fastmw_pool_lock()
        if _random_used + n > RANDOM_POOL and fresh is not None:
            memcpy(_random_pool, PyBytes_AS_STRING(fresh), RANDOM_POOL)
            _random_used = 0
        if _random_used + n <= RANDOM_POOL:
            memcpy(out, _random_pool + _random_used, n)
            _random_used += n
            fastmw_pool_unlock()
            return 0
        fastmw_pool_unlock()
        fresh = os.urandom(RANDOM_POOL)


cpdef str new_request_id():
    """A random (CSPRNG) uuid4 as 32 lower-case hex characters."""
    cdef unsigned char raw[16]
    cdef Py_ssize_t i
    _random_take(raw, 16)
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    result = PyUnicode_New(32, 127)
    cdef char* out = <char*>PyUnicode_DATA(result)
    for i in range(16):
        out[2 * i] = HEX_CHARS[raw[i] >> 4]
        out[2 * i + 1] = HEX_CHARS[raw[i] & 0x0F]
    return result


cdef int _fast_uuid_version(str value):
    """Version of a plain (32 hex) or canonical (8-4-4-4-12) UUID string;
    -1 when it is neither, so the caller falls back to ``uuid.UUID``."""
    if not PyUnicode_IS_ASCII(value):
        return -1
    return _uuid_text_version(<const unsigned char*>PyUnicode_DATA(value), PyUnicode_GET_LENGTH(value))


cdef int _uuid_text_version(const unsigned char* p, Py_ssize_t n) noexcept:
    """``_fast_uuid_version`` of ``n`` bytes (ASCII text)."""
    cdef Py_ssize_t i
    cdef unsigned int seen = 0
    cdef int version_nibble, variant_nibble
    # HEX_VALUE is 0-15 for a hex digit and 255 otherwise: OR them all, test once.
    if n == 32:
        for i in range(32):
            seen |= HEX_VALUE[p[i]]
        version_nibble = HEX_VALUE[p[12]]
        variant_nibble = HEX_VALUE[p[16]]
    elif n == 36:
        if p[8] != 45 or p[13] != 45 or p[18] != 45 or p[23] != 45:  # '-'
            return -1
        for i in range(8):
            seen |= HEX_VALUE[p[i]]
        for i in range(9, 13):
            seen |= HEX_VALUE[p[i]]
        for i in range(14, 18):
            seen |= HEX_VALUE[p[i]]
        for i in range(19, 23):
            seen |= HEX_VALUE[p[i]]
        for i in range(24, 36):
            seen |= HEX_VALUE[p[i]]
        version_nibble = HEX_VALUE[p[14]]
        variant_nibble = HEX_VALUE[p[19]]
    else:
        return -1
    if seen > 15:
        return -1
    # uuid.UUID.version is None (here 0) unless the variant is RFC 4122 (10xx).
    if (variant_nibble & 0xC) != 0x8:
        return 0
    return version_nibble


cdef int _uuid_version(value):
    if not PyUnicode_CheckExact(value):
        if not isinstance(value, str):
            return -1
        value = str.__str__(value)  # a subclass is read for its text, not its own methods
    cdef int version = _fast_uuid_version(<str>value)
    if version >= 0:
        return version
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError):
        return -1
    return parsed.version or 0


cpdef bint is_uuid(value) except -1:
    """Whether ``uuid.UUID(value)`` accepts ``value`` (any form, any version)."""
    return _uuid_version(value) >= 0


cpdef bint is_uuid4(value) except -1:
    """Whether ``value`` parses as a UUID whose version is 4."""
    return _uuid_version(value) == 4


cpdef bint is_visible_ascii(value, Py_ssize_t max_length) except -1:
    """Whether ``value`` is a non-empty str of printable ASCII (0x21-0x7E) no longer than ``max_length``."""
    if not isinstance(value, str):
        return False
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(value), i
    if n == 0 or n > max_length or not PyUnicode_IS_ASCII(value):
        return False
    cdef const unsigned char* p = <const unsigned char*>PyUnicode_DATA(value)
    for i in range(n):
        if p[i] < 0x21 or p[i] > 0x7E:
            return False
    return True
