"""``python -m benchmarks.e2e_instructions``: the uvicorn server's instructions per request (callgrind).

Each stack of ``make bench-e2e`` (``e2e.STACKS``) is served as that run serves it (uvicorn, 1 worker,
uvloop, httptools, no access log, the Starlette route endpoint), but inside
``valgrind --tool=callgrind``. A client sends WARMUP requests on one keep-alive connection,
``callgrind_control --zero`` resets the server's counters, the client sends N more requests one
at a time, and ``callgrind_control --dump`` writes the count of exactly those: the whole
server's work per request (reading the socket, parsing, routing, the middleware, the endpoint,
writing the response), free of the load generator and of the machine's noise.

Two more kinds of server show what uvicorn itself spends on response headers: a raw ASGI
endpoint on the same route sending the two headers the bare endpoint sends, and the same
endpoint sending also the headers a fastmw stack adds to the response (taken from one request
through that stack at start-up). The difference is uvicorn's cost of those headers, with no
middleware; on a CPU-bound server, bare / (bare + that cost) bounds the requests/s ratio of any
middleware that adds them. Environment: E2E_INSTR_REQUESTS (2000), E2E_INSTR_STACKS
(comma-separated e2e stack names, default all). Writes ``build/bench/e2e-instructions.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import RESULTS_DIR, e2e, revision

ROOT = Path(__file__).parent.parent
RESULT_PATH = RESULTS_DIR / "e2e-instructions.json"
REQUESTS = int(os.environ.get("E2E_INSTR_REQUESTS", "2000"))
WARMUP = 300
# Under valgrind a server takes tens of seconds to import and start.
STARTUP_TIMEOUT = 180.0
# The stacks whose added response headers get a raw-endpoint server of their own.
HEADER_STACKS = ("fastmw stack()", "fastmw five (compiled)")
RAW_ENDPOINT = "raw endpoint"
REQUEST = (
    b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n"
    + b"".join(f"{key}: {value}\r\n".encode() for key, value in e2e.REQUEST_HEADERS.items())
    + b"\r\n"
)


@dataclass(frozen=True)
class Server:
    """One server to count: an e2e stack, or the raw endpoint sending ``headers_of``'s extra headers."""

    name: str
    argv: tuple[str, ...]


def stack_server(name: str) -> Server:
    return Server(name, ("-m", "benchmarks.e2e", "serve", name))


def endpoint_server(headers_of: str | None) -> Server:
    name = RAW_ENDPOINT if headers_of is None else f"{RAW_ENDPOINT} + {headers_of}'s headers"
    return Server(name, ("-m", "benchmarks.e2e_instructions", "serve-endpoint", headers_of or ""))


# --------------------------------------------------------------------------- server side


def added_headers(stack_name: str) -> list[tuple[bytes, bytes]]:
    """The response headers the e2e stack ``stack_name`` adds to the raw endpoint's."""
    from benchmarks import _driver, stacks

    stack = e2e._find_stack(stack_name)
    if stack.build is None:
        raise SystemExit(f"{stack_name}: n/a ({stack.missing})")
    if stack.before is not None:
        stack.before()
    plain = _driver.request_once(stacks.raw_app).headers
    wrapped = _driver.request_once(stack.build(stacks.raw_app)).headers
    return [(name, value) for name, value in wrapped.items() if name not in plain]


def serve_endpoint(headers_of: str, port: int) -> None:
    """uvicorn serving a raw ASGI endpoint on the Starlette route, with ``headers_of``'s headers."""
    from benchmarks import without_sentry

    without_sentry()
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    # The bare endpoint's own two headers (PlainTextResponse("ok")), then the stack's.
    headers = [(b"content-length", b"2"), (b"content-type", b"text/plain; charset=utf-8")]
    headers += added_headers(headers_of) if headers_of else []
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    body = {"type": "http.response.body", "body": b"ok"}

    class Endpoint:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await send(dict(start, headers=list(headers)))
            await send(dict(body))

    app = Starlette(routes=[Route("/", Endpoint())])
    uvicorn.run(app, **e2e.UVICORN_OPTIONS, port=port)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- counting


def drive(port: int, count: int) -> None:
    """``count`` requests on one keep-alive connection, one at a time; each must answer 200 "ok"."""
    with socket.create_connection((e2e.HOST, port)) as connection:
        pending = b""
        for _ in range(count):
            connection.sendall(REQUEST)
            while (end := pending.find(b"\r\n\r\nok")) < 0:
                chunk = connection.recv(65536)
                if not chunk:
                    raise RuntimeError("the server closed the connection")
                pending += chunk
            if not pending.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected response {pending[:40]!r}")
            pending = pending[end + 6 :]


def count(server: Server, requests: int, work: Path) -> int:
    """The server's instructions for ``requests`` requests after warm-up (callgrind's totals)."""
    out = work / (server.name.replace(" ", "_").replace("'", "").replace("/", "_") + ".callgrind")
    port = e2e.free_port()
    command = ["valgrind", "--tool=callgrind", "--quiet", f"--callgrind-out-file={out}", sys.executable]
    env = dict(os.environ, PYTHONHASHSEED="0")
    process = subprocess.Popen([*command, *server.argv, str(port)], cwd=ROOT, env=env)
    try:
        if not e2e.wait_ready(port, process, STARTUP_TIMEOUT):
            raise RuntimeError(f"{server.name}: server did not start (exit code {process.poll()})")
        drive(port, WARMUP)
        subprocess.run(["callgrind_control", "--zero", str(process.pid)], check=True, capture_output=True)
        drive(port, requests)
        subprocess.run(["callgrind_control", "--dump", str(process.pid)], check=True, capture_output=True)
    finally:
        e2e.stop(process)
    dump = out.with_name(out.name + ".1")
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"{server.name}: no totals line in {dump}")


def table(per_request: dict[str, float]) -> str:
    bare = per_request.get("bare")
    lines = [f"{'server':<48} {'instr/request':>14} {'over bare':>10} {'bare/server':>12}"]
    lines.append("-" * len(lines[0]))
    for name, value in per_request.items():
        if bare is None or name.startswith(RAW_ENDPOINT):
            lines.append(f"{name:<48} {value:>14,.0f}")
            continue
        lines.append(f"{name:<48} {value:>14,.0f} {value - bare:>+10,.0f} {bare / value:>11.3f}x")
    raw = per_request.get(RAW_ENDPOINT)
    for stack in HEADER_STACKS:
        with_headers = per_request.get(f"{RAW_ENDPOINT} + {stack}'s headers")
        if raw is None or with_headers is None or bare is None:
            continue
        cost = with_headers - raw
        lines.append(
            f"uvicorn's cost of {stack}'s response headers: {cost:,.0f} instructions per request; "
            f"a middleware adding them serves at most {bare / (bare + cost):.3f}x bare"
        )
    return "\n".join(lines)


def run() -> int:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind not found: apt-get install -y valgrind (make bench-e2e-instructions does)")
    wanted = [n.strip() for n in os.environ.get("E2E_INSTR_STACKS", "").split(",") if n.strip()] or list(e2e.STACKS)
    servers = [stack_server(name) for name in wanted if e2e._find_stack(name).build is not None]
    servers += [endpoint_server(None), *(endpoint_server(name) for name in HEADER_STACKS if name in wanted)]
    with tempfile.TemporaryDirectory(prefix="fastmw-e2e-instr-") as scratch, ThreadPoolExecutor(2) as pool:
        totals = dict(zip(servers, pool.map(lambda s: count(s, REQUESTS, Path(scratch)), servers), strict=True))
    per_request = {server.name: total / REQUESTS for server, total in totals.items()}
    print(f"uvicorn server instructions per request (callgrind; {REQUESTS} requests after {WARMUP}, one connection)")
    print(table(per_request))
    RESULT_PATH.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "requests": REQUESTS,
        "warmup": WARMUP,
        **revision(),
        "per_request": per_request,
    }
    RESULT_PATH.write_text(json.dumps(document, indent=1) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve-endpoint"]:
        serve_endpoint(argv[1], int(argv[2]))
        return 0
    return run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
