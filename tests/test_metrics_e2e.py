"""Request metrics across worker processes, scraped by a real Prometheus server.

gunicorn with two uvicorn workers (and ``uvicorn --workers 2``) serves ``tests/metrics_server.py``;
a Prometheus server (Debian's ``prometheus``, on 127.0.0.1, with a scrape configuration written
here) scrapes ``/metrics``. After N requests over several routes, with one worker killed
midway, Prometheus's HTTP API must answer exactly N, and exact counts per route. Every wait is
bounded; the process groups are killed in ``finally``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX servers and signals"),
]

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0
SETTLE_TIMEOUT = 60.0
# (path, counted status, counted route label); excluded paths are None.
PLAN = [
    ("/items/1", "200", "/items/{item_id}"),
    ("/items/22", "200", "/items/{item_id}"),
    ("/items/x", "422", "/items/{item_id}"),
    ("/boom", "500", "/boom"),
    ("/stream", "200", "/stream"),
    ("/nowhere/7", "404", ""),
    ("/health", None, None),
]
ROUNDS = 6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(argv: list[str], log_path: Path, ready_url: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in its own process group, wait until ``ready_url`` answers, kill it on the way out."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            try:
                if httpx.get(ready_url, timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{argv[0]} did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(20)


def prometheus_binary() -> str:
    """Debian's prometheus, installed with apt-get when missing (as the Makefile does)."""
    found = shutil.which("prometheus")
    if found is None and shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, timeout=300, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "prometheus"], check=False, timeout=600, env=env)
        found = shutil.which("prometheus")
    if found is None:
        pytest.fail("the prometheus server is not installed (make test installs Debian's package)")
    return found


def send(base: str, path: str) -> httpx.Response:
    # A new connection each time, so the server spreads the requests over its workers.
    return httpx.get(base + path, headers={"connection": "close"}, timeout=10.0)


def run_plan(base: str, kill_after: int | None = None) -> tuple[Counter[tuple[str, str]], set[int], int]:
    """The requests of ``PLAN``, ``ROUNDS`` times; with ``kill_after``, SIGKILL the worker that
    answered ``/pid`` after that many rounds. (expected counts, pids seen, counted requests)."""
    expected: Counter[tuple[str, str]] = Counter()
    pids: set[int] = set()
    for round_number in range(ROUNDS):
        for path, status, route in PLAN:
            response = send(base, path)
            if status is not None:
                assert str(response.status_code) == status, (path, response.status_code)
                expected[(route, status)] += 1  # type: ignore[index]
        pid = int(send(base, "/pid").text)
        expected[("/pid", "200")] += 1
        pids.add(pid)
        if kill_after is not None and round_number + 1 == kill_after:
            # A worker counts a request just after its last byte went out, so one killed between
            # the two loses that request (docs/metrics.md): kill once a scrape shows every
            # request so far, then nothing it counted may be lost.
            counted_so_far(base, sum(expected.values()))
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
    return expected, pids, sum(expected.values())


def counted_so_far(base: str, total: int) -> None:
    """Wait (bounded) until a scrape of ``base`` sums ``total`` requests."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while sum(scraped_counts(send(base, "/metrics").text).values()) != total:
        if time.monotonic() > deadline:
            pytest.fail(f"the workers never showed {total} requests counted")
        time.sleep(0.1)


def query(prometheus: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """``promql`` evaluated now, or at the instant ``at`` (a unix time Prometheus answered with)."""
    params: dict[str, str | float] = {"query": promql} if at is None else {"query": promql, "time": at}
    answer = httpx.get(f"{prometheus}/api/v1/query", params=params, timeout=10.0).json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]  # type: ignore[no-any-return]


def scraped_counts(text: str) -> Counter[tuple[str, str]]:
    found: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_server_request_duration_seconds_count":
                found[(sample.labels.get("http_route", ""), sample.labels["http_response_status_code"])] += int(
                    sample.value
                )
    return found


GUNICORN = [sys.executable, "-m", "gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "2"]


def test_prometheus_scrapes_exact_sums_from_gunicorn_workers(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn_worker")
    binary = prometheus_binary()
    port, prom_port = free_port(), free_port()
    base, prometheus = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{prom_port}"
    server = [*GUNICORN, "-b", f"127.0.0.1:{port}", "--graceful-timeout", "5", "tests.metrics_server:app"]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
        "scrape_configs:\n  - job_name: fastmw\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    prometheus_argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    # A directory of its own, so no other run's counters are summed with these.
    env = {"FASTMW_METRICS_DIR": str(tmp_path / "metrics")}
    with process(server, tmp_path / "gunicorn.log", base + "/health", **env):
        with process(prometheus_argv, tmp_path / "prometheus.log", prometheus + "/-/ready"):
            expected, pids, total = run_plan(base, kill_after=ROUNDS // 2)
            assert len(pids) >= 2, "the requests never reached a second worker"
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while True:
                result = query(prometheus, "sum(http_server_request_duration_seconds_count)")
                if result and float(result[0]["value"][1]) == total:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"Prometheus answers {result}, not {total}")
                time.sleep(0.5)
            # The other queries at that same instant: a later scrape can fail on a busy machine
            # (its 1 s timeout), and marks the series stale and `up` 0 from then on.
            at = float(result[0]["value"][0])
            by_route = query(
                prometheus,
                "sum by (http_route, http_response_status_code) (http_server_request_duration_seconds_count)",
                at,
            )
            got = Counter(
                {
                    (item["metric"].get("http_route", ""), item["metric"]["http_response_status_code"]): int(
                        float(item["value"][1])
                    )
                    for item in by_route
                }
            )
            assert got == expected
            # Counters never went backwards, though a worker died with its counts.
            resets = query(prometheus, "sum(resets(http_server_request_duration_seconds_count[10m]))", at)
            assert float(resets[0]["value"][1]) == 0
            up = query(prometheus, 'up{job="fastmw"}', at)
            assert float(up[0]["value"][1]) == 1


def test_uvicorn_workers_answer_the_sum_without_set_up(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = [sys.executable, "-m", "uvicorn", "tests.metrics_server:app", "--workers", "2"]
    server += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    env = {"FASTMW_METRICS_DIR": ""}  # the default: the server's own directory, found by the workers
    with process(server, tmp_path / "uvicorn.log", base + "/health", **env):
        workers: set[str] = set()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while len(workers) < 2 and time.monotonic() < deadline:  # both workers up (not counted)
            workers.add(send(base, "/health").text)
        assert len(workers) == 2, "uvicorn's second worker never answered"
        expected, _, total = run_plan(base)
        # A worker counts a request just after its last byte: the other one can answer the
        # next scrape before the last request is counted (docs/metrics.md).
        counted_so_far(base, total)
        answers = set()
        for _ in range(10):  # new connections: both workers answer, the same sum
            scraped = send(base, "/metrics")
            # Streamed as rendered: chunked, with no Content-Length.
            assert scraped.headers.get("transfer-encoding") == "chunked" and "content-length" not in scraped.headers
            answers.add(tuple(sorted(scraped_counts(scraped.text).items())))
        assert answers == {tuple(sorted(expected.items()))}
        head = httpx.head(base + "/metrics", timeout=10.0)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == scraped.headers["content-type"]
