"""JsonLinesSink on real files: a small tmpfs that fills up and frees space, Debian's
``logrotate`` (create and copytruncate modes) against a uvicorn server writing through the
sink, and SIGHUP."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fastmw.sink import ROTATION_CHECK_INTERVAL, JsonLinesSink
from tests.servers import asgi_command, free_port, serving

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="tmpfs, logrotate: Linux only")]

WAIT = 10.0
PAD = "x" * 150


def parsed(data: bytes) -> list[dict[str, Any]]:
    """Every line of ``data`` as JSON (fails on a torn or glued line)."""
    assert data == b"" or data.endswith(b"\n"), data[-200:]
    return [json.loads(line) for line in data.splitlines()]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, mounted for the test and unmounted after it."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(path: Path, keep_free: int) -> None:
    """Fill the filesystem with ``path``, then give back ``keep_free`` bytes of it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    os.truncate(path, max(0, path.stat().st_size - keep_free))


def test_a_full_disk_leaves_no_torn_line_and_the_loss_is_counted(small_disk: Path) -> None:
    target = small_disk / "access.jsonl"
    sink = JsonLinesSink(target, batch_lines=8, flush_interval=3600, max_pending=40, handle_signals=False)
    filler = small_disk / "filler"
    fill(filler, keep_free=3 * 4096)  # room for about 70 records
    total = 400
    torn_seen = False
    for n in range(total):
        sink.write_record(("n", "pad"), (n, PAD))
        if n % 8 == 7:
            sink.flush()
            data = target.read_bytes()
            torn_seen = torn_seen or (data != b"" and not data.endswith(b"\n"))
    assert sink.dropped > 0 and sink.pending == 40  # the bound held; the rest counted
    assert torn_seen  # the disk cut a line short (it is completed below)
    filler.unlink()  # space comes back
    sink.flush()  # (the writing thread would do it within flush_interval)
    assert sink.pending == 0
    for n in range(total, total + 20):
        sink.write_record(("n", "pad"), (n, PAD))
    sink.close()
    records = parsed(target.read_bytes())
    numbers = [r["n"] for r in records]
    assert numbers == sorted(set(numbers))  # in order, none twice
    assert len(records) + sink.dropped == total + 20  # every record written or counted
    assert numbers[-20:] == list(range(total, total + 20))


def logrotate(tmp_path: Path, log: Path, mode: str) -> None:
    """Rotate ``log`` now with Debian's logrotate (``create`` or ``copytruncate``)."""
    binary = shutil.which("logrotate") or "/usr/sbin/logrotate"
    if not os.path.exists(binary):
        pytest.skip("logrotate is not installed (make test installs it with apt-get)")
    config = tmp_path / f"logrotate-{mode}.conf"
    config.write_text(f"{log} {{\n    rotate 2\n    {mode}\n    missingok\n}}\n")
    done = subprocess.run(
        [binary, "--force", "--state", str(tmp_path / "logrotate.state"), str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("mode", ["create", "copytruncate"])
def test_logrotate_under_a_running_server(tmp_path: Path, mode: str) -> None:
    port = free_port()
    log = tmp_path / "access.jsonl"
    argv = asgi_command("uvicorn", "tests.ops_server:app", port)
    with serving(argv, port, tmp_path / "server.log", env={"FASTMW_TEST_SINK": str(log)}) as (base, _):
        with httpx.Client(base_url=base) as client:
            for n in range(20):
                assert client.get(f"/ok?before={n}").status_code == 200
            deadline = time.monotonic() + WAIT
            while log.read_bytes().count(b"before=") < 20 and time.monotonic() < deadline:
                time.sleep(0.05)
            logrotate(tmp_path, log, mode)
            for n in range(20):
                assert client.get(f"/ok?after={n}").status_code == 200
            # Lines made before the sink's next look at the path (within a second) may still
            # go to the moved file; none is lost. Once a line reaches the path's file, the
            # sink follows it (or never had to, with copytruncate): later lines all go there.
            deadline = time.monotonic() + WAIT + ROTATION_CHECK_INTERVAL
            probe = 0
            while b"probe=" not in (log.read_bytes() if log.exists() else b"") and time.monotonic() < deadline:
                assert client.get(f"/ok?probe={probe}").status_code == 200
                probe += 1
                time.sleep(0.05)
            for n in range(20):
                assert client.get(f"/ok?later={n}").status_code == 200
            deadline = time.monotonic() + WAIT
            while (not log.exists() or log.read_bytes().count(b"later=") < 20) and time.monotonic() < deadline:
                time.sleep(0.05)
    rotated = [r["query"] for r in parsed((tmp_path / "access.jsonl.1").read_bytes()) if r["query"]]
    current = [r["query"] for r in parsed(log.read_bytes()) if r["query"]]
    assert sorted(q for q in rotated if q.startswith("before=")) == sorted(f"before={n}" for n in range(20))
    assert not any(q.startswith("before=") for q in current)
    assert sorted(q for q in rotated + current if q.startswith("after=")) == sorted(f"after={n}" for n in range(20))
    assert sorted(q for q in current if q.startswith("later=")) == sorted(f"later={n}" for n in range(20))


def test_sighup_reopens_and_chains_to_the_previous_handler(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """\
            import os, signal, sys, time
            import fastmw.sink
            fastmw.sink.ROTATION_CHECK_INTERVAL = 3600  # only SIGHUP may reopen
            seen = []
            signal.signal(signal.SIGHUP, lambda s, f: seen.append(s))
            path = sys.argv[1]
            sink = fastmw.sink.JsonLinesSink(path, batch_lines=1, flush_interval=3600)
            sink.write_record(("n",), (0,))
            sink.flush()
            os.rename(path, path + ".old")
            signal.raise_signal(signal.SIGHUP)
            assert seen == [signal.SIGHUP], seen
            sink.write_record(("n",), (1,))
            sink.flush()
            print(open(path + ".old").read().count("\\n"), open(path).read().count("\\n"))
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out.jsonl")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
