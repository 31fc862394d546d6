"""JsonLinesSink under real servers: N requests, SIGTERM, exactly N valid JSON lines.

The app (``tests/sink_server.py``) flushes only at shutdown (one-hour interval, 1000-line
batches) and runs without lifespan, so nothing but the sink's own exit and signal handling
can save the lines. Servers listen on 127.0.0.1; every wait is bounded and the process
group is killed in ``finally``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.servers import STOP_TIMEOUT, free_port, serving

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX servers and signals"),
]

REQUESTS = 40


@contextmanager
def sink_serving(command: list[str], tmp_path: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """Serve ``command`` (``{port}`` filled in) with its sink at ``tmp_path/access.jsonl``."""
    port = free_port()
    sink_path = tmp_path / "access.jsonl"
    argv = [part.format(port=port) for part in command]
    with serving(
        argv, port, tmp_path / "server.log", ready="/ready", env={"FASTMW_SINK_PATH": str(sink_path), **env}
    ) as (base, proc):
        yield base, proc, sink_path


def send_requests(base: str) -> set[str]:
    """``REQUESTS`` GETs, a new connection each (so gunicorn spreads them); the pids seen."""
    pids = set()
    for n in range(REQUESTS):
        response = httpx.get(f"{base}/r/{n}?q={n}", headers={"connection": "close"}, timeout=5.0)
        assert response.status_code == 200
        pids.add(response.text)
    return pids


def stop(proc: subprocess.Popen[bytes], tmp_path: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"server ignored SIGTERM:\n{(tmp_path / 'server.log').read_text()}")


def request_lines(sink_path: Path) -> list[dict[str, object]]:
    data = sink_path.read_bytes() if sink_path.exists() else b""
    assert data == b"" or data.endswith(b"\n"), "a partial last line"
    records = [json.loads(line) for line in data.splitlines()]
    return [r for r in records if r["path"] != "/ready"]


def assert_every_request_logged(sink_path: Path) -> None:
    records = request_lines(sink_path)
    assert sorted(str(r["path"]) for r in records) == sorted(f"/r/{n}" for n in range(REQUESTS))
    assert all(r["status"] == 200 and isinstance(r["query"], str) for r in records)


UVICORN = [sys.executable, "-m", "uvicorn", "tests.sink_server:app", "--lifespan", "off"]
UVICORN += ["--host", "127.0.0.1", "--port", "{port}", "--no-access-log"]


def test_uvicorn_lifespan_off_sigterm_keeps_every_line(tmp_path: Path) -> None:
    with sink_serving(UVICORN, tmp_path) as (base, proc, sink_path):
        send_requests(base)
        assert request_lines(sink_path) == []  # all still buffered
        stop(proc, tmp_path)
        # uvicorn re-raises SIGTERM after its graceful shutdown: the process dies by it.
        assert proc.returncode == -signal.SIGTERM
        assert_every_request_logged(sink_path)


def test_uvicorn_without_the_sinks_signal_handler_loses_the_lines(tmp_path: Path) -> None:
    """The limit the handler removes: uvicorn restores SIG_DFL and re-raises SIGTERM, so
    the process ends without running atexit and a buffered batch is gone."""
    with sink_serving(UVICORN, tmp_path, FASTMW_SINK_SIGNALS="0") as (base, proc, sink_path):
        send_requests(base)
        stop(proc, tmp_path)
        assert request_lines(sink_path) == []


def test_uvicorn_idle_timer_flush(tmp_path: Path) -> None:
    with sink_serving(UVICORN, tmp_path, FASTMW_SINK_INTERVAL="0.2") as (base, proc, sink_path):
        send_requests(base)
        deadline = time.monotonic() + 10.0
        while len(request_lines(sink_path)) < REQUESTS and time.monotonic() < deadline:
            time.sleep(0.05)  # no traffic: only the timer can write them
        assert_every_request_logged(sink_path)
        stop(proc, tmp_path)
        assert_every_request_logged(sink_path)


@pytest.mark.parametrize(
    ("worker", "preload"),
    [
        ("tests.sink_server.Worker", False),  # lifespan off
        ("tests.sink_server.Worker", True),  # sink built in the master, then forked
        ("uvicorn_worker.UvicornWorker", False),  # lifespan on: shutdown flushes too
    ],
    ids=["lifespan-off", "preload", "lifespan-on"],
)
def test_gunicorn_two_uvicorn_workers_sigterm_keeps_every_line(tmp_path: Path, worker: str, preload: bool) -> None:
    pytest.importorskip("gunicorn")
    pytest.importorskip("uvicorn_worker")
    command = [sys.executable, "-m", "gunicorn", "-k", worker, "-w", "2", "-b", "127.0.0.1:{port}"]
    command += ["--graceful-timeout", "10", *(["--preload"] if preload else []), "tests.sink_server:app"]
    with sink_serving(command, tmp_path) as (base, proc, sink_path):
        pids = send_requests(base)
        assert 1 <= len(pids) <= 2
        stop(proc, tmp_path)
        assert proc.returncode == 0, (tmp_path / "server.log").read_text()
        assert_every_request_logged(sink_path)
