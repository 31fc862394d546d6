/* C helpers of the compiled core (included by _core.pyx). */
#ifndef FASTMW_H
#define FASTMW_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Whether n ASCII bytes hold no control character (0x00-0x1F, 0x7F), eight at a time. */
static int fastmw_ascii_printable(const char* data, Py_ssize_t n) {
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const uint64_t below = 0x2020202020202020ULL, del = 0x7F7F7F7F7F7F7F7FULL;
    uint64_t word, flip;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&word, data + i, 8);
        flip = word ^ del;
        if (((word - below) & ~word & highs) | ((flip - ones) & ~flip & highs)) return 0;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c < 0x20 || c == 0x7F) return 0;
    }
    return 1;
}

/* Whether a header name (bytes) is `key` (lower-case, `size` bytes) in any ASCII case. */
static inline int fastmw_same_name(PyObject* name, const char* key, Py_ssize_t size) {
    const unsigned char* text;
    Py_ssize_t j;
    if (PyBytes_GET_SIZE(name) != size) return 0;
    text = (const unsigned char*)PyBytes_AS_STRING(name);
    for (j = 0; j < size; j++) {
        unsigned char c = text[j];
        if (c >= 'A' && c <= 'Z') c += 32;
        if (c != (unsigned char)key[j]) return 0;
    }
    return 1;
}

/* Whether a header entry is what servers send, an exact tuple of two exact bytes: the only
   shape read without running Python code (a subclass's __len__, __getitem__ or __eq__). */
static inline int fastmw_regular_entry(PyObject* entry) {
    return PyTuple_CheckExact(entry) && PyTuple_GET_SIZE(entry) == 2 && PyBytes_CheckExact(PyTuple_GET_ITEM(entry, 0))
           && PyBytes_CheckExact(PyTuple_GET_ITEM(entry, 1));
}

/* The name of entry `i` (< the list's size, read with no Python code run since) of an exact
   list when the entry is a (bytes, bytes) tuple, else NULL. */
static inline PyObject* fastmw_regular_name(PyObject* list, Py_ssize_t i) {
    PyObject* entry = PyList_GET_ITEM(list, i);
    return fastmw_regular_entry(entry) ? PyTuple_GET_ITEM(entry, 0) : NULL;
}

/* The index of the first header at or after `start` whose name is `key` (lower-case) in
   any case; -1 when there is none. `list` is an exact list: its size is read once, and nothing
   in the loop runs Python code or changes the list. Sets *irregular, and stops, at an entry that is not a
   (bytes, bytes) tuple: the caller then runs its checked loop. */
static Py_ssize_t fastmw_header_index(PyObject* list, const char* key, Py_ssize_t size, Py_ssize_t start,
                                      int* irregular) {
    Py_ssize_t i, n = PyList_GET_SIZE(list);
    for (i = start; i < n; i++) {
        PyObject* name = fastmw_regular_name(list, i);
        if (name == NULL) {
            *irregular = 1;
            return -1;
        }
        if (fastmw_same_name(name, key, size)) return i;
    }
    return -1;
}

/* One pass for two names: the index of the `a` header and of the `b` header (-1 when
   absent) in *at_a and *at_b. Returns 0, or 1 when a name is there more than once or an
   entry is not a (bytes, bytes) tuple: the caller then runs its checked loop. */
static int fastmw_two_headers(PyObject* list, const char* a, Py_ssize_t size_a, const char* b, Py_ssize_t size_b,
                              Py_ssize_t* at_a, Py_ssize_t* at_b) {
    Py_ssize_t i, n = PyList_GET_SIZE(list);
    *at_a = *at_b = -1;
    for (i = 0; i < n; i++) {
        PyObject* name = fastmw_regular_name(list, i);
        if (name == NULL) return 1;
        if (fastmw_same_name(name, a, size_a)) {
            if (*at_a >= 0) return 1;
            *at_a = i;
        } else if (fastmw_same_name(name, b, size_b)) {
            if (*at_b >= 0) return 1;
            *at_b = i;
        }
    }
    return 0;
}

/* The value of the first header whose name is `key` (lower-case) in any case, borrowed;
   NULL when absent (or at an irregular entry, with *irregular set). */
static PyObject* fastmw_find_header(PyObject* list, const char* key, Py_ssize_t size, int* irregular) {
    Py_ssize_t i = fastmw_header_index(list, key, size, 0, irregular);
    return i < 0 ? NULL : PyTuple_GET_ITEM(PyList_GET_ITEM(list, i), 1);
}

/* Clocks through the C API, so the core needs no OS header: PyTime_* from 3.13, before
   that the private clocks they made public. Same clocks as time.monotonic()/time.time(). */
#if PY_VERSION_HEX >= 0x030D0000
static inline int fastmw_monotonic_ns(int64_t* out) {
    PyTime_t t;
    if (PyTime_Monotonic(&t) < 0) return -1;
    *out = (int64_t)t;
    return 0;
}
static inline int fastmw_wall_ns(int64_t* out) {
    PyTime_t t;
    if (PyTime_Time(&t) < 0) return -1;
    *out = (int64_t)t;
    return 0;
}
#else
static inline int fastmw_monotonic_ns(int64_t* out) {
    *out = (int64_t)_PyTime_GetMonotonicClock();
    return 0;
}
static inline int fastmw_wall_ns(int64_t* out) {
    *out = (int64_t)_PyTime_GetSystemClock();
    return 0;
}
#endif

/* The lock of the random pool (ids.pxi). With the GIL the pool is read and refilled only by
   C code that calls no Python in between, so the GIL serialises it; a free-threaded build
   takes a PyMutex around the same few lines. A forked child starts with it unlocked. */
#ifdef Py_GIL_DISABLED
static PyMutex fastmw_pool_mutex;
static inline void fastmw_pool_lock(void) { PyMutex_Lock(&fastmw_pool_mutex); }
static inline void fastmw_pool_unlock(void) { PyMutex_Unlock(&fastmw_pool_mutex); }
static inline void fastmw_pool_lock_reset(void) { memset(&fastmw_pool_mutex, 0, sizeof fastmw_pool_mutex); }
#else
static inline void fastmw_pool_lock(void) {}
static inline void fastmw_pool_unlock(void) {}
static inline void fastmw_pool_lock_reset(void) {}
#endif

#endif /* FASTMW_H */
