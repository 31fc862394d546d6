"""Request metrics: fastmw's stage against the exporters users would otherwise pick, and the scrape.

``python -m benchmarks.metrics_cost``             instructions per request (callgrind; make bench-instructions)
``python -m benchmarks.metrics_cost --time``      time per request, in process (make bench)
``python -m benchmarks.metrics_cost --scrape``    one scrape of 200 routes x 5 methods x 10 statuses

Every row serves the same FastAPI app (``GET /items/{item_id}``, an async endpoint) with the
same request. Rows: the bare app; ``MetricsMiddleware`` alone, compiled and pure;
prometheus-fastapi-instrumentator;
starlette_exporter; OpenTelemetry's ASGI middleware with its metrics (a no-op tracer, an
in-memory reader). Each instruction row runs in a fresh interpreter under callgrind, counted
only inside ``make bench-instructions``' measured region (``_callgrind_region``: N requests after
W of warm-up); a row's overhead is its count per request minus the bare app's. Results go to
``build/bench/metrics.json``. What the stage adds inside ``fastmw.stack()`` (its budget of 1,000
instructions) is ``make bench-instructions``' metrics delta (``_instr_metrics.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import RESULTS_DIR, ROOT, _callgrind_region, instructions, revision, versions

RESULTS = RESULTS_DIR / "metrics.json"
N = int(os.environ.get("FASTMW_METRICS_COST_N", "2000"))
WARMUP = 200
SCRAPE_BUDGET_MS = 50.0
SCRAPE_SHAPE = (200, 5, 10)  # routes, methods, statuses

APP = """
import asyncio, os, sys, tempfile
from fastapi import FastAPI
from starlette.responses import PlainTextResponse

def make_api():
    api = FastAPI()

    @api.get("/items/{item_id}")
    async def item(item_id: int):
        return PlainTextResponse("ok")

    return api

def store():
    from fastmw import metrics
    return metrics.MetricsStore(directory=tempfile.mkdtemp(prefix="fastmw-bench-"))

SCOPE = {
    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
    "path": "/items/42", "raw_path": b"/items/42", "root_path": "", "query_string": b"",
    "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
    "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
}

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

async def send(message):
    if message["type"] == "http.response.start" and message["status"] != 200:
        raise SystemExit(f"status {message['status']}")

async def batch(app, count):
    for _ in range(count):
        await app(dict(SCOPE, headers=list(SCOPE["headers"])), receive, send)
"""

ROWS: dict[str, tuple[str, str, bool]] = {
    # key: (label, code building `app`, fastmw pure)
    "bare": ("the FastAPI app alone", "app = make_api()", False),
    "fastmw": (
        "MetricsMiddleware (fastmw compiled)",
        "import fastmw\nassert fastmw.COMPILED\napp = fastmw.MetricsMiddleware(make_api(), store=store())",
        False,
    ),
    "fastmw-py": (
        "MetricsMiddleware (fastmw pure)",
        "import fastmw\nassert not fastmw.COMPILED\napp = fastmw.MetricsMiddleware(make_api(), store=store())",
        True,
    ),
    "instrumentator": (
        "prometheus-fastapi-instrumentator",
        "from prometheus_fastapi_instrumentator import Instrumentator\n"
        "app = make_api()\nInstrumentator().instrument(app)",
        False,
    ),
    "starlette-exporter": (
        "starlette_exporter",
        "from starlette_exporter import PrometheusMiddleware\n"
        "app = make_api()\napp.add_middleware(PrometheusMiddleware)",
        False,
    ),
    "otel": (
        "OpenTelemetry ASGI (metrics, no-op tracer)",
        "from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from opentelemetry.sdk.metrics.export import InMemoryMetricReader\n"
        "from opentelemetry.trace import NoOpTracerProvider\n"
        "app = OpenTelemetryMiddleware(make_api(), tracer_provider=NoOpTracerProvider(),\n"
        "    meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))",
        False,
    ),
}
PACKAGES = (
    "fastmw",
    "fastapi",
    "prometheus-fastapi-instrumentator",
    "starlette-exporter",
    "opentelemetry-instrumentation-asgi",
    "prometheus-client",
)

# Warm-up, then N requests inside the measured region (the library's path is argv[1]).
DRIVE = f"""
import gc
from benchmarks import _callgrind_region
loop = asyncio.new_event_loop()
loop.run_until_complete(batch(app, {WARMUP}))
callback = _callgrind_region.Body(lambda: loop.run_until_complete(batch(app, {N})))
gc.collect()
gc.freeze()
_callgrind_region.function(sys.argv[1])(callback)
"""
WORK_DIR = ROOT / "build" / "bench-metrics"


def _env(pure: bool) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("FASTMW_NO_EXTENSIONS", None)
    if pure:
        env["FASTMW_NO_EXTENSIONS"] = "1"
    return env


def instructions_per_request(key: str, region: Path, instr_off: bool) -> float:
    _, build, pure = ROWS[key]
    out = WORK_DIR / f"{key}.callgrind"
    result = subprocess.run(
        [
            "valgrind",
            *instructions.callgrind_options(instr_off),
            f"--callgrind-out-file={out}",
            sys.executable,
            "-c",
            f"{APP}\n{build}\n{DRIVE}",
            str(region),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(pure),
        timeout=1800,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the row failed:\n{result.stderr[-3000:]}")
    return instructions.callgrind_total(out) / N


def measure_instructions(keys: list[str]) -> dict[str, Any]:
    per_request: dict[str, float] = {}
    from concurrent.futures import ThreadPoolExecutor

    region = _callgrind_region.build(os.environ.get("CC", "cc"), WORK_DIR)
    instr_off = _callgrind_region.switches_instrumentation(region)

    def count(key: str) -> float:
        return instructions_per_request(key, region, instr_off)

    with ThreadPoolExecutor(max_workers=2) as pool:
        for key, value in zip(keys, pool.map(count, keys), strict=True):
            per_request[key] = value
            print(f"  {ROWS[key][0]:45} {value:12,.0f} instructions/request", flush=True)
    bare = per_request["bare"]
    rows = {key: {"label": ROWS[key][0], "over_bare": round(value - bare, 1)} for key, value in per_request.items()}
    return {"requests": N, "rows": rows}


def measure_time(keys: list[str], rounds: int = 15, batch: int = 500) -> dict[str, Any]:
    """Median time per request of each row over ``rounds`` rounds, the rows alternating."""
    namespace: dict[str, Any] = {}
    exec(APP, namespace)
    apps = {}
    for key in keys:
        _, build, pure = ROWS[key]
        if pure:
            continue  # the pure twin's row is timed by make bench's own groups
        local = dict(namespace)
        exec(build, local)
        apps[key] = local["app"]
    import asyncio

    loop = asyncio.new_event_loop()
    times: dict[str, list[float]] = {key: [] for key in apps}
    order = list(apps)
    for key in order:
        loop.run_until_complete(namespace["batch"](apps[key], WARMUP))
    for index in range(rounds):
        for key in order if index % 2 == 0 else reversed(order):
            start = time.process_time()
            loop.run_until_complete(namespace["batch"](apps[key], batch))
            times[key].append((time.process_time() - start) / batch)
    bare = statistics.median(times["bare"])
    fastmw = statistics.median(times["fastmw"]) - bare if "fastmw" in times else None
    rows = {}
    for key, values in times.items():
        median = statistics.median(values)
        rows[key] = {
            "label": ROWS[key][0],
            "us": round(median * 1e6, 2),
            "over_bare_us": round((median - bare) * 1e6, 2),
        }
        # The ratio to fastmw compiled's overhead (MetricsMiddleware alone), as make bench's table gives.
        # No ratio to an overhead the clock did not resolve (at or below zero: within the noise).
        ratio = f", {(median - bare) / fastmw:.1f}x fastmw's" if fastmw and fastmw > 0 and key != "bare" else ""
        print(f"  {ROWS[key][0]:45} {median * 1e6:8.2f} us  ({(median - bare) * 1e6:+.2f} us over bare{ratio})")
    return {"rounds": rounds, "batch": batch, "rows": rows}


def _answer_scrape(app: Any, accept: bytes, sizes: list[tuple[int, int]]) -> None:
    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": [(b"accept", accept)]}
    sent = [0, 0]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            sent[0] += len(message["body"])
            sent[1] += 1

    coroutine = app(scope, receive, send)
    try:
        coroutine.send(None)
    except StopIteration:
        sizes.append((sent[0], sent[1]))
    else:  # pragma: no cover - the app never suspends
        raise RuntimeError("the metrics app suspended")


def measure_scrape(repeat: int = 7) -> dict[str, Any]:
    """Time the ASGI app answering one scrape of a store holding SCRAPE_SHAPE series, every
    chunk of its body sent (median of ``repeat``)."""
    from fastmw import COMPILED, metrics

    routes, methods, statuses = SCRAPE_SHAPE
    with tempfile.TemporaryDirectory(prefix="fastmw-scrape-") as directory:
        store = metrics.MetricsStore(directory=directory)
        for route in range(routes):
            for method in ("GET", "POST", "PUT", "DELETE", "PATCH")[:methods]:
                for status in range(200, 200 + statuses):
                    store.table.record(
                        method, f"/api/resource{route}/{{item_id}}", status, 0.01 * (status % 7), 10, 100
                    )
        series = routes * methods * statuses
        timings = {}
        app = metrics.asgi_app(store)
        for fmt, accept in (("text", b"text/plain"), ("openmetrics", b"application/openmetrics-text")):
            samples: list[float] = []
            sizes: list[tuple[int, int]] = []
            for _ in range(repeat):
                # The ASGI app answering one scrape, its body sent to a send that counts it.
                start = time.process_time()
                _answer_scrape(app, accept, sizes)
                samples.append(time.process_time() - start)
            size, messages = sizes[-1]
            timings[fmt] = {"ms": round(statistics.median(samples) * 1e3, 1), "bytes": size}
            shown = f"{timings[fmt]['ms']} ms, {size:,} bytes in {messages} messages"
            print(f"  scrape of {series:,} series ({fmt}): {shown}", flush=True)
    worst = max(item["ms"] for item in timings.values())
    return {
        "series": series,
        "compiled": COMPILED,
        **timings,
        "budget_ms": SCRAPE_BUDGET_MS,
        "holds": worst <= SCRAPE_BUDGET_MS,
    }


def _write(section: str, data: dict[str, Any]) -> None:
    """Keep ``data`` as ``section`` of the results file (the other sections stay)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[section] = data
    results.update(revision())
    results["python"] = f"{platform.python_implementation()} {platform.python_version()}"
    results["versions"] = versions(PACKAGES)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


def _micros(over_bare: float) -> str:
    """A row's time over the bare app; one the clock did not resolve (at or below zero) says so."""
    return f"{over_bare:,.2f}" if over_bare > 0 else "below the noise"


def table(doc: dict[str, Any]) -> str:
    """The published summary: each row's instructions and time over the bare app, and the scrape."""
    instructions = doc.get("instructions", {}).get("rows", {})
    timed = doc.get("time", {}).get("rows", {})
    lines = [
        "| same FastAPI app, one route | instructions per request over bare | x fastmw compiled "
        "| µs per request over bare |",
        "|---|---:|---:|---:|",
    ]
    fastmw = instructions.get("fastmw", {}).get("over_bare")
    for key in ROWS:
        if key == "bare" or (key not in instructions and key not in timed):
            continue
        count = f"{instructions[key]['over_bare']:,.0f}" if key in instructions else "-"
        ratio = f"{instructions[key]['over_bare'] / fastmw:.1f}x" if key in instructions and fastmw else "-"
        micros = _micros(timed[key]["over_bare_us"]) if key in timed else "-"
        lines.append(f"| {ROWS[key][0]} | {count} | {ratio} | {micros} |")
    scrape = doc.get("scrape")
    if scrape:
        lines += [
            "",
            f"A scrape of {scrape['series']:,} series (200 routes x 5 methods x 10 statuses): "
            f"{scrape['text']['ms']} ms (text, {scrape['text']['bytes'] / 1e6:.1f} MB), "
            f"{scrape['openmetrics']['ms']} ms (OpenMetrics); budget {scrape['budget_ms']:.0f} ms.",
        ]
    return "\n".join(lines)


PEERS = ("fastmw", "instrumentator", "starlette-exporter", "otel")
PEER_TITLES = {
    "fastmw": "fastmw compiled",
    "instrumentator": "prometheus-fastapi-instrumentator",
    "starlette-exporter": "starlette_exporter",
    "otel": "OpenTelemetry ASGI",
}


def summary(doc: dict[str, Any]) -> str:
    """The README's line for request metrics: each exporter's cost over the same FastAPI app."""
    lines = [
        "| request metrics, over the same FastAPI app | " + " | ".join(PEER_TITLES[key] for key in PEERS) + " |",
        "| --- |" + " ---: |" * len(PEERS),
    ]
    for section, field, title, digits in (
        ("instructions", "over_bare", "instructions per request (callgrind)", 0),
        ("time", "over_bare_us", "µs per request", 2),
    ):
        rows = doc.get(section, {}).get("rows", {})
        if all(key in rows for key in PEERS):
            cells = [
                _micros(rows[key][field]) if section == "time" else f"{rows[key][field]:,.{digits}f}" for key in PEERS
            ]
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.metrics_cost")
    parser.add_argument("--time", action="store_true", help="time per request instead of instructions")
    parser.add_argument("--scrape", action="store_true", help="only the scrape benchmark")
    parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
    args = parser.parse_args(argv)
    keys = ["bare", *[key for key in args.rows if key != "bare"]]
    failed = False
    if not args.scrape:
        if args.time:
            print("metrics: time per request (same FastAPI app and request)")
            _write("time", measure_time(keys))
        else:
            if shutil.which("valgrind") is None:
                sys.exit("valgrind is needed: apt-get install valgrind")
            print(f"metrics: instructions per request over {N} requests (same FastAPI app and request)")
            _write("instructions", measure_instructions(keys))
    scrape = measure_scrape()
    _write("scrape", scrape)
    if not scrape["holds"]:
        print(f"  the scrape took more than {SCRAPE_BUDGET_MS} ms")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
