"""The measured region of ``make bench-instructions``: a tiny C library, compiled on first use.

The child process calls ``fastmw_bench_region(body)`` through ctypes, with ``body`` a ctypes
callback that drives the measured requests. Callgrind runs with ``--collect-atstart=no
--toggle-collect=fastmw_bench_measured``, so it counts exactly what runs inside
``fastmw_bench_measured``: the body, and nothing of interpreter start-up, imports or warm-up.

Why two C functions: libffi's call trampoline moves the stack pointer in a way that hides the
function it calls from callgrind's call tracking (the callee's cost is booked to libffi), so a
toggle on the function ctypes calls never fires. A plain C call from it into a second function
is tracked normally. Built with -O0 and noinline so neither call is folded away or turned into
a tail jump.

With valgrind's client-request header (Debian's valgrind package ships it), the region also
switches callgrind's instrumentation on and off, so the parent starts the child with
``--instr-atstart=no``: start-up and imports run a few times faster and the count is the same
(instrumentation is on before ``fastmw_bench_measured`` is entered).

The C source is a string here rather than a ``.c`` file because the sdist ships every tracked
file under ``benchmarks/`` and no ``.c`` file at all (``tools/check_dists.py``).
"""

from __future__ import annotations

import ctypes
import hashlib
import subprocess
from pathlib import Path
from typing import Any

TOGGLE = "fastmw_bench_measured"
Body = ctypes.CFUNCTYPE(None)
SOURCE = r"""
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define FASTMW_BENCH_INSTRUMENTATION 1
#endif
#endif

#ifndef FASTMW_BENCH_INSTRUMENTATION
#define FASTMW_BENCH_INSTRUMENTATION 0
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

typedef void (*fastmw_bench_body)(void);

/* 1 when the region switches instrumentation itself (the child may start with it off). */
int fastmw_bench_instrumentation(void) { return FASTMW_BENCH_INSTRUMENTATION; }

__attribute__((noinline)) void fastmw_bench_measured(fastmw_bench_body body) {
    body();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void fastmw_bench_region(fastmw_bench_body body) {
    CALLGRIND_START_INSTRUMENTATION;
    fastmw_bench_measured(body);
    CALLGRIND_STOP_INSTRUMENTATION;
}
"""


def build(cc: str, directory: Path) -> Path:
    """The compiled region library in ``directory`` (named by the source's hash, so never stale)."""
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:12]
    library = directory / f"libfastmw_bench_region-{digest}.so"
    if not library.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = library.with_suffix(".tmp")
        command = [cc, "-O0", "-shared", "-fPIC", "-x", "c", "-o", str(partial), "-"]
        subprocess.run(command, input=SOURCE, text=True, check=True)
        partial.replace(library)
    return library


def switches_instrumentation(library: Path) -> bool:
    """Whether the region turns callgrind's instrumentation on itself (built with callgrind.h)."""
    return bool(ctypes.CDLL(str(library)).fastmw_bench_instrumentation())


def function(library: str | Path) -> Any:
    """``fastmw_bench_region`` of a built library: call it with a ``Body(callable)``."""
    region = ctypes.CDLL(str(library)).fastmw_bench_region
    region.argtypes = [Body]
    region.restype = None
    return region
