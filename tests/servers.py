"""Real servers for the end-to-end tests: a free port on 127.0.0.1, each server's command line,
and a server run until a block ends (in its own process group, stopped with it)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("uvicorn", "hypercorn", "granian")
STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    """A port nothing listens on now (the server started next binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def asgi_command(server: str, app: str, port: int, *extra: str) -> list[str]:
    """``server`` (uvicorn, hypercorn or granian) serving ``app`` ("module:attribute") on 127.0.0.1;
    ``extra`` options go to uvicorn and hypercorn."""
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--lifespan", "off", *extra]
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", app, "-b", f"127.0.0.1:{port}", *extra]
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), app]


@contextmanager
def serving(
    argv: list[str], port: int, log: Path, *, ready: str = "/ok", env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``argv`` (output to ``log``) until ``ready`` answers on ``port``, yield its base URL and
    process, and stop it when the block ends: SIGINT, SIGKILL after STOP_TIMEOUT, then its whole
    process group (a gunicorn master killed on timeout must not leave its workers behind)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                httpx.get(base + ready, timeout=1.0)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{' '.join(argv[:3])} did not start:\n{log.read_text(errors='replace')}")
                time.sleep(0.1)
        yield base, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
