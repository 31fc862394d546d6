"""End to end: fastmw.stack around FastAPI and Starlette apps, served by uvicorn."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import STOP_TIMEOUT, free_port, serving


@pytest.fixture(params=["fastapi", "starlette"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, Path, subprocess.Popen[bytes]]]:
    port = free_port()
    json_path = tmp_path / "access.jsonl"
    log_path = tmp_path / "server.log"
    argv = [sys.executable, "-m", "tests.uvicorn_server", request.param, str(port), str(json_path)]
    with serving(argv, port, log_path, ready="/health") as (base, proc):
        yield base, json_path, log_path, proc


def test_headers_and_access_lines(server: tuple[str, Path, Path, subprocess.Popen[bytes]]) -> None:
    base, json_path, log_path, proc = server
    with httpx.Client(base_url=base, timeout=5.0) as client:
        ok = client.get("/ok", headers={"X-Request-ID": "bad\tid"})
        kept = client.get("/ok?x=1", headers={"X-Request-ID": "0b6c9c4e-8a76-4b49-9f6e-6c1f1d1d2e3f"})
        stream = client.get("/stream")
        health = client.get("/health")
        # Last: uvicorn closes the connection after an app exception (even after a response).
        failed = client.get("/boom")
    assert ok.status_code == 200 and len(ok.headers["x-request-id"]) == 32  # bad id replaced
    assert kept.headers["x-request-id"] == "0b6c9c4e-8a76-4b49-9f6e-6c1f1d1d2e3f"
    assert stream.content == b"a" * 20
    for response in (ok, kept, stream, failed):
        assert float(response.headers["x-process-time"]) >= 0
        assert "app;dur=" in response.headers["server-timing"]
    assert failed.status_code == 500 and failed.headers["x-request-id"]
    assert "x-request-id" not in health.headers  # excluded path
    # Shutdown (lifespan) flushes the batched JSON lines.
    proc.send_signal(signal.SIGINT)
    proc.wait(STOP_TIMEOUT)
    log = log_path.read_text()
    if not json_path.exists():  # the Starlette server logs through stdlib logging
        access = [line.split("|", 1)[1] for line in log.splitlines() if line.startswith("fastmw.access|")]
        assert [line.split(" - ", 1)[1].rsplit(" ", 1)[0] for line in access] == [
            '"GET /ok HTTP/1.1" 200',
            '"GET /ok?x=1 HTTP/1.1" 200',
            '"GET /stream HTTP/1.1" 200',
            '"GET /boom HTTP/1.1" 500',
        ]
        assert all(line.startswith("127.0.0.1:") and line.endswith("ms") for line in access)
    else:
        lines = [json.loads(line) for line in json_path.read_bytes().splitlines()]
        paths = [(r["path"], r["status"]) for r in lines]
        assert paths == [("/ok", 200), ("/ok", 200), ("/stream", 200), ("/boom", 500)]
        assert lines[1]["query"] == "x=1" and lines[1]["request_id"] == kept.headers["x-request-id"]
        assert lines[2]["response_bytes"] == 20 and lines[0]["request_id"] == ok.headers["x-request-id"]
    assert "Application startup complete" in log and "RuntimeError: boom" in log
