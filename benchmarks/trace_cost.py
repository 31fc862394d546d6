"""Instructions per request for W3C trace context: fastmw's kernel (compiled, pure) vs OpenTelemetry.

Each case runs in a fresh interpreter under callgrind twice (0 and N iterations); the
difference over N, minus the same loop around ``len(headers)``, is the cost of one
request's work. The machine's noise does not move instruction counts.

    .venv/bin/python -m benchmarks.trace_cost            # needs valgrind (apt-get install valgrind)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

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


def main() -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install valgrind")
    for label, headers in (("traceparent", HEADERS), ("traceparent + tracestate", [*HEADERS, TRACESTATE])):
        base = per_call(SETUP["baseline"], headers)
        print(f"\n{label} ({len(headers)} headers), instructions per request:")
        for name, setup in SETUP.items():
            if name != "baseline":
                print(f"  {name:22} {per_call(setup, headers) - base:8,.0f}", flush=True)


if __name__ == "__main__":
    main()
