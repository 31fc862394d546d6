"""Client disconnects under real servers (uvicorn, hypercorn, granian) on 127.0.0.1.

A client reads about 1 MiB of a 16 MiB stream and closes the connection. What the access
record can show depends on whether the server tells the app:

* an app that listens for ``http.disconnect`` (Starlette's ``StreamingResponse``) stops, and
  the record shows 499 with the bytes handed to the server until then;
* an app that never calls ``receive`` (a raw loop of ``send``) is not told by any of the
  three: they drop the writes silently, so the record shows 200 and every byte the app sent.
  This is the limit documented in docs/middleware.md ("Client disconnects").
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.servers import SERVERS, asgi_command, free_port

pytestmark = pytest.mark.slow

TOTAL = 16 * 1024 * 1024
READ = 1024 * 1024


def _command(server: str, app: str, port: int) -> list[str]:
    extra = ("--log-level", "warning") if server == "uvicorn" else ()
    return asgi_command(server, f"tests.disconnect_server:{app}", port, *extra)


def _record_after_disconnect(server: str, app: str, log: Path) -> tuple[int, dict[str, object]]:
    pytest.importorskip(server)
    port = free_port()
    env = dict(os.environ, FASTMW_DC_LOG=str(log), FASTMW_DC_TOTAL=str(TOTAL))
    proc = subprocess.Popen(_command(server, app, port), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(
                        f"{server} did not start: {proc.stderr.read() if proc.stderr else ''!r}"
                    ) from None
                time.sleep(0.1)
        received = 0
        with client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            while received < READ:
                data = client.recv(65536)
                if not data:
                    break
                received += len(data)
        # The record is one line: wait for its newline, not only for the file to be non-empty.
        deadline = time.monotonic() + 30
        while not (log.exists() and log.read_bytes().endswith(b"\n")) and time.monotonic() < deadline:
            time.sleep(0.05)
        (line,) = log.read_text().splitlines()
        return received, json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.parametrize("server", SERVERS)
def test_an_app_listening_for_the_disconnect_is_logged_499(server: str, tmp_path: Path) -> None:
    received, record = _record_after_disconnect(server, "starlette", tmp_path / "access.jsonl")
    assert received >= READ
    assert record["status"] == 499
    assert READ <= int(record["response_bytes"]) < TOTAL  # type: ignore[call-overload]


@pytest.mark.parametrize("server", SERVERS)
def test_an_app_that_never_receives_is_not_told(server: str, tmp_path: Path) -> None:
    """The documented limit: these servers drop the writes after a disconnect silently."""
    received, record = _record_after_disconnect(server, "raw", tmp_path / "access.jsonl")
    assert received >= READ
    assert (record["status"], record["response_bytes"]) == (200, TOTAL)
