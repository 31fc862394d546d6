"""Instructions per request for W3C trace context: fastmw's kernel (compiled, pure) vs OpenTelemetry.

Each case runs in a fresh interpreter under callgrind twice (0 and N iterations); the
difference over N, minus the same loop around ``len(headers)``, is the cost of one
request's work. The machine's noise does not move instruction counts.

    .venv/bin/python -m benchmarks.trace_cost            # needs valgrind (apt-get install valgrind)

The figures go to ``build/bench/trace-cost.json``; ``make bench-publish`` renders docs/tracing.md's
cost table from them.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys

from benchmarks import RESULTS_DIR, revision

N = int(os.environ.get("FASTMW_TRACE_COST_N", "20000"))
HEADERS = [
    (b"host", b"example.com"),
    (b"user-agent", b"curl/8.5"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip"),
    (b"x-request-id", b"5b2a7f3c9e1d4a6b8c0d1e2f3a4b5c6d"),
    (b"content-type", b"application/json"),
    (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    (b"connection", b"keep-alive"),
]
TRACESTATE = (b"tracestate", b"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")

RESULTS = RESULTS_DIR / "trace-cost.json"
CASES = (("traceparent", HEADERS), ("traceparent + tracestate", [*HEADERS, TRACESTATE]))
LABELS = {
    "fastmw": "fastmw compiled kernel (`trace_from_headers`, the object included)",
    "fastmw-py": "fastmw pure twin, the same call",
    "fastmw+inject": "fastmw: kernel + one outgoing `traceparent`/`tracestate` (in a Python function)",
    "otel extract+inject": "OpenTelemetry `TraceContextTextMapPropagator` extract + inject (same function shape)",
}

SETUP = {
    "baseline": "work = len",
    "fastmw": "from fastmw import _core as core\nwork = core.trace_from_headers",
    "fastmw-py": "from fastmw import _core_py as core\nwork = core.trace_from_headers",
    "fastmw+inject": (
        "from fastmw import _core as core\n"
        "def work(headers):\n"
        "    context = core.trace_from_headers(headers)\n"
        "    out = {'traceparent': context.child_traceparent()}\n"
        "    if context.tracestate is not None:\n"
        "        out['tracestate'] = context.tracestate\n"
    ),
    "otel extract+inject": (
        "from opentelemetry.instrumentation.asgi import asgi_getter\n"
        "from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator\n"
        "propagator = TraceContextTextMapPropagator()\n"
        "def work(headers):\n"
        "    context = propagator.extract({'headers': headers}, getter=asgi_getter)\n"
        "    propagator.inject({}, context=context)\n"
    ),
}
SCRIPT = "import sys\n{setup}\nheaders = {headers!r}\nfor _ in range(int(sys.argv[1])):\n    work(headers)\n"


def instructions(setup: str, headers: list[tuple[bytes, bytes]], count: int) -> int:
    code = SCRIPT.format(setup=setup, headers=headers)
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", code, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(re.search(r"Collected : (\d+)", result.stderr).group(1))  # type: ignore[union-attr]


def per_call(setup: str, headers: list[tuple[bytes, bytes]]) -> float:
    return (instructions(setup, headers, N) - instructions(setup, headers, 0)) / N


def table(doc: dict[str, object]) -> str:
    """The published cost table (docs/tracing.md), from a run's results."""
    rows: dict[str, list[float]] = doc["rows"]  # type: ignore[assignment]
    lines = ["| work | no tracestate | + a 40-character tracestate |", "|---|---:|---:|"]
    lines += [f"| {LABELS[name]} | {plain:,.0f} | {with_state:,.0f} |" for name, (plain, with_state) in rows.items()]
    measured = f"{str(doc['git_revision'])[:7]}{' with local changes' if doc['git_dirty'] else ''}"
    return "\n".join(lines) + f"\n\n{doc['python']}, fastmw at {measured}, {doc['iterations']:,} calls per case."


def main() -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install valgrind")
    rows: dict[str, list[float]] = {name: [] for name in SETUP if name != "baseline"}
    for label, headers in CASES:
        base = per_call(SETUP["baseline"], headers)
        print(f"\n{label} ({len(headers)} headers), instructions per request:")
        for name in rows:
            cost = per_call(SETUP[name], headers) - base
            rows[name].append(round(cost))
            print(f"  {name:22} {cost:8,.0f}", flush=True)
    doc = {**revision(), "python": f"CPython {platform.python_version()}", "iterations": N, "rows": rows}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
