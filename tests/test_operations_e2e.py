"""What operators hit, under real servers on 127.0.0.1 (tests/ops_server.py is the app):

* a trusted proxy's ``X-Forwarded-For`` (uvicorn ``--proxy-headers``) cannot forge or split
  a text access line or a JSON line;
* after an unhandled error's 500 a keep-alive client's next request succeeds, every time,
  under uvicorn, hypercorn and granian (the 500 says ``connection: close``);
* each unhandled error gives one traceback (the server's), which names the request id;
* an app told of the client's disconnect before it answered is logged 499.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT, SERVERS, asgi_command, free_port, serving

pytestmark = pytest.mark.slow

APP = "tests.ops_server:app"
ROUNDS = 30
LOG_TIMEOUT = 30.0


def command(server: str, port: int, *extra: str) -> list[str]:
    return asgi_command(server, APP, port, *extra)


def raw_request(port: int, head: bytes, *, read: bool = True) -> bytes:
    """Send a raw HTTP/1.1 request head; the response (read to close) or b"" (closed at once)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        if not read:
            return b""
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def wait_for_log(log: Path, done: Callable[[str], bool]) -> None:
    """Until ``done`` holds for the server's log text (servers log after the response);
    bounded, so the assertions that follow show what it holds by then."""
    deadline = time.monotonic() + LOG_TIMEOUT
    while not done(log.read_text(errors="replace")) and time.monotonic() < deadline:
        time.sleep(0.05)


FORGED = b'FORGED 127.0.0.1:1 - "GET /admin HTTP/1.1" 200 1.00ms'
# U+0085 as a latin-1 byte (a line break to str.splitlines), U+2028 in UTF-8 (its bytes decode
# to C1 controls), and a forged access line after each.
FORWARDED = b"9.9.9.9\x85" + FORGED + b"\xe2\x80\xa8" + FORGED


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_proxy_header_cannot_forge_an_access_line(tmp_path: Path, output: str) -> None:
    port = free_port()
    log, sink = tmp_path / "server.log", tmp_path / "access.jsonl"
    env = {"FASTMW_TEST_LOG_TEXT": "1"} if output == "text" else {"FASTMW_TEST_SINK": str(sink)}
    argv = command("uvicorn", port, "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1", "--no-access-log")
    with serving(argv, port, log, env=env):
        head = b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Forwarded-For: " + FORWARDED + b"\r\n\r\n"
        assert raw_request(port, head).startswith(b"HTTP/1.1 200")
    if output == "text":
        text = log.read_bytes().decode("utf-8", errors="replace")
        lines = [line for line in text.splitlines() if "FORGED" in line or "9.9.9.9" in line]
    else:
        text = sink.read_bytes().decode("ascii")
        lines = [line for line in text.splitlines() if "FORGED" in line or "9.9.9.9" in line]
    # One line, whichever way it is split, with the proxy's value escaped in it.
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.isprintable() and "\x85" not in line and "\u2028" not in line
    if output == "text":
        assert line.startswith("fastmw.access|9.9.9.9\\x85FORGED") and ':0 - "GET /ok HTTP/1.1" 200' in line
    else:
        client = json.loads(line)["client_addr"]
        assert client.startswith("9.9.9.9\\x85FORGED") and client.endswith(":0")


@pytest.mark.parametrize(
    ("server", "inner"),
    [*((server, "raw") for server in SERVERS), ("uvicorn", "starlette")],
    ids=[*SERVERS, "uvicorn-starlette"],
)
def test_keep_alive_after_a_500_and_one_traceback_per_error(tmp_path: Path, server: str, inner: str) -> None:
    """fastmw's own 500 (a raw app), or Starlette's ServerErrorMiddleware's (which re-raises)."""
    pytest.importorskip(server)
    port = free_port()
    log = tmp_path / "server.log"
    failures: list[str] = []
    ids: list[str] = []
    env = {"FASTMW_TEST_STARLETTE": "1"} if inner == "starlette" else {}
    argv = command(server, port)
    with serving(argv, port, log, env=env) as (base, _), httpx.Client(base_url=base, timeout=10) as client:
        for n in range(ROUNDS):
            try:
                failed = client.get("/boom", headers={"x-request-id": f"boom-{n}"})
                assert failed.status_code == 500 and failed.headers["connection"] == "close"
                ids.append(failed.headers["x-request-id"])
                assert client.get("/ok").status_code == 200
            except httpx.TransportError as exc:
                failures.append(f"round {n}: {exc!r}")
        # The servers log a traceback after the 500 went out.
        wait_for_log(log, lambda text: text.count("Traceback (most recent call last)") >= ROUNDS)
    assert failures == []
    text = log.read_text(errors="replace")
    # One traceback per error, logged by the server; fastmw's line says so and names the id.
    assert text.count("Traceback (most recent call last)") == ROUNDS, text[-3000:]
    assert text.count("re-raised (the server logs the traceback)") == ROUNDS
    outcome = "sent 500" if inner == "raw" else "the app had sent a complete 500 response"
    assert all(f"(request id {rid}); {outcome}; re-raised" in text for rid in ids)
    if sys.version_info >= (3, 11) and server != "granian":
        # The traceback itself carries the request id (an exception note; granian 2.8 prints
        # tracebacks without their notes).
        assert all(f"request id: {rid}\n" in text for rid in ids)


def test_told_of_the_disconnect_before_answering_is_499(tmp_path: Path) -> None:
    port = free_port()
    sink = tmp_path / "access.jsonl"
    with serving(command("uvicorn", port), port, tmp_path / "server.log", env={"FASTMW_TEST_SINK": str(sink)}):
        raw_request(port, b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n", read=False)
        deadline = time.monotonic() + 10
        while b"/wait" not in (sink.read_bytes() if sink.exists() else b"") and time.monotonic() < deadline:
            time.sleep(0.05)
    records = [json.loads(line) for line in sink.read_bytes().splitlines()]
    waited = [r for r in records if r["path"] == "/wait"]
    # The app sent all of it, but nobody was there to read it.
    assert [(r["status"], r["response_bytes"]) for r in waited] == [(499, 2)]


def recipe(name: str) -> str:
    """The code block that follows ``<!-- recipe: name -->`` in docs/operations.md."""
    text = (ROOT / "docs" / "operations.md").read_text()
    after = text.split(f"<!-- recipe: {name} -->", 1)[1]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_gunicorn_recipe_gives_one_access_line_per_request(tmp_path: Path) -> None:
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn_worker")
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(recipe("gunicorn.conf.py"))
    port = free_port()
    log = tmp_path / "server.log"
    argv = [sys.executable, "-m", "gunicorn", "-c", str(config), "-w", "2", "-b", f"127.0.0.1:{port}", APP]
    with serving(argv, port, log) as (base, _), httpx.Client(base_url=base) as client:
        for n in range(20):
            assert client.get(f"/ok?n={n}", headers={"x-request-id": f"rid-{n}"}).status_code == 200
        wait_for_log(log, lambda text: all(f"/ok?n={n} HTTP" in text for n in range(20)))
    text = log.read_text(errors="replace")
    for n in range(20):
        lines = [line for line in text.splitlines() if f"/ok?n={n} HTTP" in line]
        assert len(lines) == 1, lines
        assert f"[rid-{n}]" in lines[0]
