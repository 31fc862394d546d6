"""Leak script: runs every trace-kernel operation many times in one process and reports RSS
growth after warm-up plus the reference counts of probe objects before and after.

Usage: python -m tests.leak_scripts.trace_ops <compiled|pure> <iterations>
"""

from __future__ import annotations

import importlib
import sys

from tests.leak_scripts._measure import report_rounds

TWIN, ITERATIONS = sys.argv[1], int(sys.argv[2])
core = importlib.import_module("fastmw._core" if TWIN == "compiled" else "fastmw._core_py")

TRACEPARENT = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACESTATE = b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
HEADERS = [(b"host", b"example.com"), (b"TraceParent", TRACEPARENT), (b"tracestate", TRACESTATE)]
SPLIT = [(b"traceparent", TRACEPARENT), (b"tracestate", b" a=1 ,"), (b"tracestate", b"b=2,a=3")]
BAD = [(b"traceparent", b"ff-" + TRACEPARENT[3:]), (b"tracestate", b"a=1\r\n")]
PROBES = {"traceparent": TRACEPARENT, "tracestate": TRACESTATE, "headers": HEADERS, "split": SPLIT}


def one_round() -> None:
    for headers in (HEADERS, SPLIT, BAD, iter(HEADERS)):
        context = core.trace_from_headers(headers)
        _ = context.trace_id, context.span_id, context.parent_id, context.tracestate, context.sampled
        _ = context.traceparent, context.child_traceparent(), repr(context), hash(context)
        core.replace_trace_headers(HEADERS, context)
    context = core.trace_from_headers(HEADERS)  # ids never read: the lazy path
    _ = context == core.trace_from_headers(SPLIT)
    core.parse_traceparent(TRACEPARENT)
    core.parse_traceparent(TRACEPARENT.decode())
    core.parse_tracestate(TRACESTATE, "x=1", b"y=2")
    core.parse_tracestate("@bad=1")
    core.TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", None, 1, " a=1, b=2")
    core.format_traceparent("0af7651916cd43dd8448eb211c80319c", core.new_span_id(), 3)
    core.new_trace_id()
    for bad in ((1, "b7ad6b7169203331"), ("0af7651916cd43dd8448eb211c80319c", "x"), ("0" * 32, "1" * 16, None, 300)):
        try:
            core.TraceContext(*bad)
        except (TypeError, ValueError):
            pass
    try:
        core.trace_from_headers([(b"traceparent", TRACEPARENT), 1])
    except TypeError:
        pass
    try:
        core.TraceContext("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", None, 1, "a=\x00")
    except ValueError:
        pass


def main() -> None:
    report_rounds(TWIN, ITERATIONS, one_round, PROBES)


if __name__ == "__main__":
    main()
