"""JsonLinesSink: batching, the timer, exit and signal flushes, forks and shared files."""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import fastmw
from fastmw.errors import ConfigurationError
from fastmw.sink import THREAD_NAME, JsonLinesSink

KEYS = ("n", "text")
WAIT = 10.0
STALL = 60.0  # a hung write's own limit, far past anything a test waits for while it hangs
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fork")


def lines_of(data: bytes) -> list[dict[str, Any]]:
    assert data == b"" or data.endswith(b"\n"), "a partial last line"
    return [json.loads(line) for line in data.splitlines()]


def wait_for(predicate: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def run_script(code: str, tmp_path: Path, *, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (fork and signals stay out of the test process)."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out.jsonl")],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )


def test_public_home() -> None:
    assert fastmw.JsonLinesSink is JsonLinesSink
    assert JsonLinesSink.__module__ == "fastmw.sink"


def test_batches_flush_close_and_writes_after_close(tmp_path: Path) -> None:
    target = tmp_path / "access.jsonl"
    sink = JsonLinesSink(target, batch_lines=2, flush_interval=3600)
    for n in range(3):
        sink.write_record(KEYS, (n, "x"))
    # A full batch wakes the writing thread (which takes whatever waits by then).
    assert wait_for(lambda: len(target.read_bytes().splitlines()) >= 2)
    sink.flush()
    assert len(lines_of(target.read_bytes())) == 3
    sink.write_record(KEYS, (3, "y"))
    sink.close()
    sink.close()
    sink.write_record(KEYS, (4, "ignored"))
    sink.flush()
    assert [r["n"] for r in lines_of(target.read_bytes())] == [0, 1, 2, 3]
    assert "closed" in repr(sink)


@pytest.mark.parametrize(
    "options",
    [
        {"batch_lines": 0},
        {"batch_lines": True},
        {"batch_lines": 1.0},
        {"flush_interval": -1},
        {"flush_interval": float("nan")},
        {"flush_interval": float("inf")},
        {"flush_interval": True},
        {"flush_interval": "1"},
        {"max_pending": 10, "batch_lines": 11},
        {"max_pending": 1.5},
    ],
)
def test_validates_before_opening(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        JsonLinesSink(tmp_path / "never.jsonl", **options)
    assert not (tmp_path / "never.jsonl").exists()


def test_stream_without_write_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="write"):
        JsonLinesSink(object())  # type: ignore[arg-type]


@POSIX
def test_file_is_opened_append_only(tmp_path: Path) -> None:
    import fcntl

    target = tmp_path / "access.jsonl"
    target.write_bytes(b'{"old":1}\n')
    sink = JsonLinesSink(target, batch_lines=1)
    try:
        fd = sink._stream.fd
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        sink.write_record(KEYS, (1, "new"))
        assert wait_for(lambda: lines_of(target.read_bytes()) == [{"old": 1}, {"n": 1, "text": "new"}])
    finally:
        sink.close()


def test_timer_flushes_without_traffic_and_stops_on_close() -> None:
    stream = io.BytesIO()
    sink = JsonLinesSink(stream, batch_lines=1000, flush_interval=0.05)
    assert sink._timer is None  # started by the first record, in the process that writes it
    for n in range(3):
        sink.write_record(KEYS, (n, "x"))
    # No further record arrives: the timer alone writes the batch out.
    assert wait_for(lambda: len(stream.getvalue().splitlines()) == 3)
    thread = sink._timer
    assert thread is not None and thread.daemon and thread.name == THREAD_NAME
    sink.close()
    thread.join(WAIT)
    assert not thread.is_alive()


def test_zero_interval_wakes_the_writing_thread_for_every_line() -> None:
    stream = io.BytesIO()
    sink = JsonLinesSink(stream, batch_lines=1000, flush_interval=0)
    sink.write_record(KEYS, (1, "x"))
    assert wait_for(lambda: len(stream.getvalue().splitlines()) == 1)
    sink.write_record(KEYS, (2, "x"))
    assert wait_for(lambda: len(stream.getvalue().splitlines()) == 2)
    sink.close()


def test_the_writing_thread_is_woken_once_per_batch() -> None:
    """While the thread has not yet taken a full batch (it waits for the GIL, or the disk), the
    lines after it do not wake it again: one wake per batch, not one per line."""
    wakes: list[int] = []
    stream = Stalled()  # the thread's first write blocks until released
    sink = JsonLinesSink(stream, batch_lines=4, flush_interval=60)
    real_set = sink._wake.set

    def counting_set() -> None:
        wakes.append(sink.pending)
        real_set()

    sink._wake.set = counting_set  # type: ignore[method-assign]
    for n in range(4):
        sink.write_record(KEYS, (n, "x"))
    assert stream.entered.wait(WAIT)  # the thread took the batch and is stuck writing it
    for n in range(4, 11):
        sink.write_record(KEYS, (n, "x"))
    # Lines 0-3 and 4-7 each completed a batch; 8-10 wait for the next one (or the interval).
    assert wakes == [4, 4]
    stream.release.set()
    sink.close()
    assert [line["n"] for line in lines_of(bytes(stream.data))] == list(range(11))


class Stalled(io.BytesIO):
    """A disk that hangs: each write blocks until released (``STALL`` seconds at most)."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.entered = threading.Event()
        self.done = threading.Event()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.entered.set()
        self.release.wait(STALL)
        self.data += bytes(data)
        self.done.set()
        return len(data)


def test_a_stalled_disk_never_blocks_the_caller_and_a_full_buffer_drops_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = Stalled()
    sink = JsonLinesSink(stream, batch_lines=2, flush_interval=3600, max_pending=10)
    sink.write_record(KEYS, (0, "x"))
    sink.write_record(KEYS, (1, "x"))  # a batch: the thread starts writing, and hangs
    assert stream.entered.wait(WAIT)
    with caplog.at_level(logging.WARNING, logger="fastmw.access"):
        for n in range(2, 30):
            sink.write_record(KEYS, (n, "x"))  # never waits for the write in progress
        # All handed over while the disk still hangs (a caller that waited would return
        # only once the write ended).
        assert not stream.done.is_set()
        assert sink.pending == 10 and sink.dropped == 18
        stream.release.set()
        sink.close()
    assert [r["n"] for r in lines_of(bytes(stream.data))] == list(range(12))
    assert sink.dropped == 18
    assert "losing records (the buffer is full)" in caplog.text


def test_timer_and_writes_race_without_losing_or_splitting_lines() -> None:
    stream = io.BytesIO()
    sink = JsonLinesSink(stream, batch_lines=50, flush_interval=0.0005)
    count = 20_000
    for n in range(count):
        sink.write_record(KEYS, (n, "x" * (n % 97)))
    sink.close()
    assert [r["n"] for r in lines_of(stream.getvalue())] == list(range(count))


def test_an_unreferenced_sink_is_collected_and_flushed() -> None:
    stream = io.BytesIO()
    sink = JsonLinesSink(stream, batch_lines=1000, flush_interval=0.01)
    sink.write_record(KEYS, (1, "x"))
    thread = sink._timer
    assert thread is not None
    del sink
    gc.collect()
    assert len(lines_of(stream.getvalue())) == 1
    thread.join(WAIT)
    assert not thread.is_alive()


def test_loss_is_counted_and_each_episode_reported(caplog: pytest.LogCaptureFixture, monkeypatch: Any) -> None:
    import fastmw.sink as sink_module

    monkeypatch.setattr(sink_module, "REPORT_INTERVAL", 0.0)  # every episode, for the test

    class Flaky(io.BytesIO):
        broken = True
        data = bytearray()

        def write(self, data: Any) -> int:
            if self.broken:
                raise OSError("disk full")
            self.data += bytes(data)
            return len(data)

    stream = Flaky()
    sink = JsonLinesSink(stream, batch_lines=1, max_pending=3, flush_interval=3600)
    with caplog.at_level(logging.WARNING, logger="fastmw.access"):
        for n in range(5):
            sink.write_record(KEYS, (n, "x"))
            sink.flush()
        sink.write_record(KEYS, (object(), "unencodable"))
        assert sink.dropped == 3 and sink.pending == 3  # 2 over the bound, 1 unencodable
        stream.broken = False
        sink.flush()
        stream.broken = True
        for n in range(5, 10):
            sink.write_record(KEYS, (n, "x"))
            sink.flush()
        sink.close()  # 3 still unwritten: lost, and counted
    assert [r["n"] for r in lines_of(bytes(stream.data))] == [0, 1, 2]
    assert sink.dropped == 3 + 2 + 3
    assert caplog.text.count("losing records (OSError('disk full'))") == 2
    assert "writing again; 3 records lost in that episode" in caplog.text
    assert "closed with 3 records unwritten (8 dropped in all)" in caplog.text


# --------------------------------------------------------------------------- exit, signals, fork

PRELUDE = """\
import os, signal, sys, time
from fastmw import JsonLinesSink
sink = JsonLinesSink(sys.argv[1], batch_lines=1000, flush_interval=3600)
for n in range(5):
    sink.write_record(("n",), (n,))
"""


def test_interpreter_exit_flushes(tmp_path: Path) -> None:
    done = run_script(PRELUDE, tmp_path)
    assert done.returncode == 0, done.stderr
    assert [r["n"] for r in lines_of((tmp_path / "out.jsonl").read_bytes())] == list(range(5))


@POSIX
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)])
def test_default_signal_action_still_ends_the_process_after_the_flush(tmp_path: Path, signum: int, code: int) -> None:
    # Default SIGTERM kills without atexit; default SIGINT raises KeyboardInterrupt.
    done = run_script(PRELUDE + f"signal.raise_signal({int(signum)})\nprint('survived')\n", tmp_path)
    assert done.returncode == code and "survived" not in done.stdout, done.stderr
    assert len(lines_of((tmp_path / "out.jsonl").read_bytes())) == 5


@POSIX
def test_chains_to_the_handler_it_replaced_then_writes_at_once(tmp_path: Path) -> None:
    code = """\
    import os, signal, sys
    seen = []
    signal.signal(signal.SIGTERM, lambda s, f: seen.append(s))
    from fastmw import JsonLinesSink
    sink = JsonLinesSink(sys.argv[1], batch_lines=1000, flush_interval=3600)
    sink.write_record(("n",), (0,))
    signal.raise_signal(signal.SIGTERM)
    assert seen == [signal.SIGTERM], seen
    assert len(open(sys.argv[1], "rb").read().splitlines()) == 1
    sink.write_record(("n",), (1,))   # shutting down: no more batching
    assert len(open(sys.argv[1], "rb").read().splitlines()) == 2
    os._exit(0)                        # no exit flush needed
    """
    done = run_script(code, tmp_path)
    assert done.returncode == 0, done.stderr


@POSIX
def test_handle_signals_false_leaves_handlers_alone(tmp_path: Path) -> None:
    code = """\
    import signal, sys
    from fastmw import JsonLinesSink
    sink = JsonLinesSink(sys.argv[1], handle_signals=False)
    sink.write_record(("n",), (0,))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    """
    done = run_script(code, tmp_path)
    assert done.returncode == 0, done.stderr


@POSIX
def test_forked_child_drops_inherited_lines_and_runs_its_own_timer(tmp_path: Path) -> None:
    # gunicorn --preload: the sink is built, and may hold lines, before the fork.
    code = """\
    import os, sys, time
    from fastmw import JsonLinesSink
    sink = JsonLinesSink(sys.argv[1], batch_lines=1000, flush_interval=0.05)
    sink.write_record(("n",), ("parent",))
    pid = os.fork()
    if pid == 0:
        sink.write_record(("n",), ("child",))  # starts the child's own timer
        deadline = time.monotonic() + 10
        while b"child" not in open(sys.argv[1], "rb").read() and time.monotonic() < deadline:
            time.sleep(0.01)
        os._exit(0)                             # no exit flush: only the timer wrote
    assert os.waitpid(pid, 0)[1] == 0
    """
    done = run_script(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(r["n"] for r in lines_of((tmp_path / "out.jsonl").read_bytes())) == ["child", "parent"]


@POSIX
def test_worker_processes_share_one_file_without_splitting_lines(tmp_path: Path) -> None:
    # Lines longer than a page and than PIPE_BUF, small batches, four writers at once.
    code = """\
    import os, sys
    from fastmw import JsonLinesSink
    workers, count = 4, 1500
    pids = []
    for worker in range(workers):
        pid = os.fork()
        if pid == 0:
            sink = JsonLinesSink(sys.argv[1], batch_lines=7, flush_interval=0.001)
            for n in range(count):
                sink.write_record(("w", "n", "pad"), (worker, n, "x" * (n * 37 % 9000)))
            sink.close()
            os._exit(0)
        pids.append(pid)
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in pids)
    """
    done = run_script(code, tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    records = lines_of((tmp_path / "out.jsonl").read_bytes())
    for worker in range(4):
        assert [r["n"] for r in records if r["w"] == worker] == list(range(1500))
