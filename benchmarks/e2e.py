"""End-to-end load run: uvicorn (1 worker, uvloop + httptools, no access log) per stack, loaded by wrk.

``python -m benchmarks.e2e`` starts one server per stack on a free 127.0.0.1 port
(the Starlette route endpoint behind each stack), then runs >= 5 rounds that
alternate the order of the stacks, and prints requests/s, p50 and p99 side by side
with ratios to the bare app. Without ``wrk`` a small asyncio keep-alive load
generator is used (it is slower than wrk, so absolute numbers are lower).
Servers are stopped by PID in a ``finally`` block. Environment: E2E_ROUNDS (5),
E2E_DURATION seconds per measurement (5), E2E_CONNECTIONS (32), E2E_STACKS
(comma-separated names, default all).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import RESULTS_DIR

ROUNDS = max(5, int(os.environ.get("E2E_ROUNDS", "5")))
DURATION = float(os.environ.get("E2E_DURATION", "5"))
CONNECTIONS = int(os.environ.get("E2E_CONNECTIONS", "32"))
WARMUP_SECONDS = 1.0
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
HOST = "127.0.0.1"
# name -> (stacks group, row name); the server process builds the row with benchmarks.stacks.
STACKS = {
    "bare": ("stack", "bare"),
    "fastmw stack()": ("stack", "fastmw.stack() compiled"),
    "fastmw five (compiled)": ("stack", "fastmw compiled"),
    "hand-written": ("stack", "hand-written"),
    "BaseHTTPMiddleware": ("stack", "BaseHTTPMiddleware"),
    "fastmw Raw context (compiled)": ("context", "fastmw Raw compiled"),
    "starlette-context Raw": ("context", "starlette-context Raw"),
}
REQUEST_HEADERS = {
    "x-request-id": "7c4a8d09ca3742af91e59520943dc264",
    "x-correlation-id": "5f0c3b1e9a4d4c2e8b7f6a5d4c3b2a19",
}
# How every e2e server runs (benchmarks.e2e_instructions serves the same way).
UVICORN_OPTIONS = {
    "host": HOST,
    "loop": "uvloop",
    "http": "httptools",
    "access_log": False,
    "log_level": "warning",
    "workers": 1,
    "lifespan": "off",
}
RESULT_PATH = RESULTS_DIR / "e2e.json"
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


# --------------------------------------------------------------------------- server side


def _find_stack(name: str) -> Any:
    from benchmarks import stacks

    group, row = STACKS[name]
    return next(s for s in stacks._group_stacks(group) if s.name == row)


def serve(name: str, port: int) -> None:
    """Run one stack under uvicorn in this process (the child side)."""
    from benchmarks import without_sentry

    without_sentry()
    import uvicorn

    from benchmarks import stacks

    stack = _find_stack(name)
    if stack.build is None:
        raise SystemExit(f"{name}: n/a ({stack.missing})")
    if stack.before is not None:
        stack.before()
    app = stack.build(stacks.starlette_app())
    uvicorn.run(app, **UVICORN_OPTIONS, port=port)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- process control


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = STARTUP_TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop one server we started, by its PID: SIGTERM, then SIGKILL after a timeout."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT)


# --------------------------------------------------------------------------- load generators


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    if not match:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


def load_wrk(port: int, seconds: float) -> dict[str, float]:
    headers = [arg for key, value in REQUEST_HEADERS.items() for arg in ("-H", f"{key}: {value}")]
    command = [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        *headers,
        f"http://{HOST}:{port}/",
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} non-2xx responses")
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99}


async def _client(port: int, deadline: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    extra = "".join(f"{key}: {value}\r\n" for key, value in REQUEST_HEADERS.items())
    request = f"GET / HTTP/1.1\r\nhost: {HOST}:{port}\r\n{extra}\r\n".encode()
    try:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected response {head[:40]!r}")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - start) * 1000)
    finally:
        writer.close()


def load_python(port: int, seconds: float) -> dict[str, float]:
    """The fallback load generator: CONNECTIONS keep-alive clients for ``seconds``."""
    latencies: list[float] = []

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.wait_for(
            asyncio.gather(*(_client(port, deadline, latencies) for _ in range(CONNECTIONS))), seconds + 30
        )

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / elapsed, "p50_ms": cuts[49], "p99_ms": cuts[98]}


# --------------------------------------------------------------------------- the run


def _ratio(value: float, reference: float | None) -> str:
    return "n/a" if not reference else f"{value / reference:.2f}x"


def table(medians: dict[str, dict[str, float]], missing: dict[str, str]) -> str:
    bare = medians.get("bare")
    lines = [f"{'stack':<24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'rps/bare':>9} {'p50/bare':>9} {'p99/bare':>9}"]
    lines.append("-" * len(lines[0]))
    for name in STACKS:
        if name in missing:
            lines.append(f"{name:<24} {'n/a':>9}  ({missing[name]})")
            continue
        if name not in medians:
            continue
        m = medians[name]
        ratios = [_ratio(m[key], bare[key] if bare else None) for key in ("rps", "p50_ms", "p99_ms")]
        lines.append(
            f"{name:<24} {m['rps']:>9,.0f} {m['p50_ms']:>8.3f} {m['p99_ms']:>8.3f} "
            + " ".join(f"{r:>9}" for r in ratios)
        )
    return "\n".join(lines)


def run() -> int:
    wanted = [n.strip() for n in os.environ.get("E2E_STACKS", "").split(",") if n.strip()] or list(STACKS)
    load = load_wrk if shutil.which("wrk") else load_python
    print(
        f"load generator: {'wrk' if load is load_wrk else 'python asyncio (wrk not found)'}; "
        f"{ROUNDS} rounds x {DURATION}s, {CONNECTIONS} connections"
    )
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    missing: dict[str, str] = {}
    samples: dict[str, list[dict[str, float]]] = {}
    try:
        for name in wanted:
            stack = _find_stack(name)
            if stack.build is None:
                missing[name] = stack.missing
                continue
            port = free_port()
            process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.e2e", "serve", name, str(port)], cwd=Path(__file__).parent.parent
            )
            servers[name] = (process, port)
            if not wait_ready(port, process):
                raise RuntimeError(f"server for {name!r} did not start (exit code {process.poll()})")
        for _, port in servers.values():  # warm every server once
            load(port, WARMUP_SECONDS)
        names = list(servers)
        for index in range(ROUNDS):
            for name in names if index % 2 == 0 else names[::-1]:
                result = load(servers[name][1], DURATION)
                samples.setdefault(name, []).append(result)
                print(
                    f"round {index + 1}/{ROUNDS} {name:<24} {result['rps']:>9,.0f} req/s "
                    f"p50 {result['p50_ms']:.3f} ms p99 {result['p99_ms']:.3f} ms",
                    flush=True,
                )
    finally:
        for process, _ in servers.values():
            stop(process)
    medians = {n: {k: statistics.median(s[k] for s in runs) for k in runs[0]} for n, runs in samples.items()}
    print()
    print(table(medians, missing))
    RESULT_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULT_PATH.write_text(
        json.dumps(
            {
                "load": load.__name__,
                "rounds": ROUNDS,
                "duration_s": DURATION,
                "connections": CONNECTIONS,
                "medians": medians,
                "samples": samples,
                "missing": missing,
            },
            indent=1,
        )
        + "\n"
    )
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"]:
        serve(argv[1], int(argv[2]))
        return 0
    # SIGTERM/SIGINT unwind through run()'s finally, so the servers are always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
