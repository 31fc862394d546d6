/* C helpers of the trace context kernel (_cy/trace.pxi). */
#ifndef FASTMW_TRACE_H
#define FASTMW_TRACE_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Whether the 8 bytes of w are all lower-case hex digits ('0'-'9', 'a'-'f'). For an
   ASCII byte x, x + (0x80 - lo) has its high bit set iff x >= lo, and x + (0x7F - hi)
   iff x > hi; no byte carries into the next because x < 0x80. */
static inline int fastmw_lower_hex8(uint64_t w) {
    const uint64_t high = 0x8080808080808080ULL;
    if (w & high) return 0;
    uint64_t ge_0 = w + 0x5050505050505050ULL;
    uint64_t gt_9 = w + 0x4646464646464646ULL;
    uint64_t ge_a = w + 0x1F1F1F1F1F1F1F1FULL;
    uint64_t gt_f = w + 0x1919191919191919ULL;
    return (((ge_0 & ~gt_9) | (ge_a & ~gt_f)) & high) == high;
}

/* 1 when the n bytes (a multiple of 8) are lower-case hex digits, not all '0'; else 0. */
static inline int fastmw_hex_id(const unsigned char* p, Py_ssize_t n) {
    uint64_t word, nonzero = 0;
    Py_ssize_t i;
    for (i = 0; i < n; i += 8) {
        memcpy(&word, p + i, 8);
        if (!fastmw_lower_hex8(word)) return 0;
        nonzero |= word ^ 0x3030303030303030ULL;
    }
    return nonzero != 0;
}

#define FASTMW_ONES 0x0101010101010101ULL
#define FASTMW_HIGHS 0x8080808080808080ULL
/* Whether any byte of v is zero (exact for "any", as in Bit Twiddling Hacks). */
#define FASTMW_HAS_ZERO(v) (((v) - FASTMW_ONES) & ~(v) & FASTMW_HIGHS)

/* Whether the n bytes are all tracestate value characters: 0x20-0x7E except ',' and '='. */
static inline int fastmw_tracestate_value(const unsigned char* p, Py_ssize_t n) {
    uint64_t w;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        if ((w & FASTMW_HIGHS) || ((w - 0x2020202020202020ULL) & ~w & FASTMW_HIGHS)
            || FASTMW_HAS_ZERO(w ^ 0x7F7F7F7F7F7F7F7FULL) || FASTMW_HAS_ZERO(w ^ 0x2C2C2C2C2C2C2C2CULL)
            || FASTMW_HAS_ZERO(w ^ 0x3D3D3D3D3D3D3D3DULL))
            return 0;
    }
    for (; i < n; i++) {
        unsigned char c = p[i];
        if (c < 0x20 || c > 0x7E || c == ',' || c == '=') return 0;
    }
    return 1;
}

#endif /* FASTMW_TRACE_H */
