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

A delta's two sides run in one child (``_instr_child.measure_pair``): each side's blocks of
requests run inside its own function, ``fastmw_bench_measured_a`` or ``_b`` (both toggle targets,
entered through ``fastmw_bench_side_a`` / ``_b``), and the parent reads each one's inclusive cost
from the callgrind output (``inclusive``). There the child switches instrumentation on once
(``fastmw_bench_start``) around all the blocks, since every switch flushes valgrind's translations.

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
SIDE_TOGGLES = ("fastmw_bench_measured_a", "fastmw_bench_measured_b")  # a delta's base, with_stage
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

/* The two sides of a delta, measured in one process: a toggle target each. */
__attribute__((noinline)) void fastmw_bench_measured_a(fastmw_bench_body body) {
    body();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void fastmw_bench_measured_b(fastmw_bench_body body) {
    body();
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void fastmw_bench_side_a(fastmw_bench_body body) { fastmw_bench_measured_a(body); }

__attribute__((noinline)) void fastmw_bench_side_b(fastmw_bench_body body) { fastmw_bench_measured_b(body); }

void fastmw_bench_start(void) { CALLGRIND_START_INSTRUMENTATION; }

void fastmw_bench_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
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


def side_functions(library: str | Path) -> tuple[Any, Any]:
    """``fastmw_bench_side_a`` and ``_b`` of a built library (each runs its ``Body`` inside its
    own toggle target, ``SIDE_TOGGLES``), callable with instrumentation already on."""
    lib = ctypes.CDLL(str(library))
    found = (lib.fastmw_bench_side_a, lib.fastmw_bench_side_b)
    for side in found:
        side.argtypes = [Body]
        side.restype = None
    return found


def instrument(library: str | Path, on: bool) -> None:
    """Switch callgrind's instrumentation on or off (nothing without valgrind or callgrind.h)."""
    lib = ctypes.CDLL(str(library))
    (lib.fastmw_bench_start if on else lib.fastmw_bench_stop)()


def inclusive(path: Path, functions: tuple[str, ...]) -> dict[str, int]:
    """The inclusive ``Ir`` of each of ``functions`` in one callgrind output file: the cost lines
    under its ``fn=`` plus the inclusive cost of each call it makes (the line after ``calls=``).
    Names may be compressed: ``fn=(7) name`` once, then ``fn=(7)``."""
    names: dict[str, str] = {}
    totals = dict.fromkeys(functions, 0)
    current = ""
    skip = 1  # position columns before the first event
    for line in path.read_text().splitlines():
        if line.startswith("positions:"):
            skip = len(line.split()) - 1
        elif line.startswith("events:") and line.split()[1:2] != ["Ir"]:
            raise RuntimeError(f"{path}: expected Ir as the first event, got {line!r}")
        elif line.startswith("fn="):
            current = _name(line[3:], names)
        elif line.startswith("cfn="):
            _name(line[4:], names)  # may define a compressed name used by a later fn=
        elif line[:1].isdigit() or line[:1] in "+-*":
            # A cost line: a self cost, or the inclusive cost of the call just announced.
            fields = line.split()
            if current in totals and len(fields) > skip:
                totals[current] += int(fields[skip])
    return totals


def _name(value: str, names: dict[str, str]) -> str:
    if value.startswith("("):
        ident, _, name = value.partition(")")
        name = name.strip()
        if name:
            names[ident] = name
        return names[ident]
    return value
