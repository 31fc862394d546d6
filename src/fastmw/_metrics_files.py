"""Where the metrics of one server live, and the file format of one process's counters.

Each process that serves requests writes its counters into one memory-mapped file of
its own (single writer, no syscall per request) in its server's directory; a scrape
reads every file there and adds them up. The directory is keyed by the server's master
process and its start time, so the workers of one server find each other with no set-up,
and a restarted server starts afresh (see docs/metrics.md).

File layout (little-endian 8-byte words): a 4 KiB header (magic, bounds, pid, the end of
the committed entries, the active-requests gauge per method, the dropped count), then
entries that never move once written: route labels and series (``core.series_words``).
The file grows by chunks, each mapped on its own; an entry that would cross a chunk's end
is preceded by a pad entry.
"""

from __future__ import annotations

import mmap
import os
import shutil
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastmw._impl import core

MAGIC = b"FMWMET01"
HEADER_BYTES: int = core.COUNTERS_HEADER
# Header words.
W_DURATION_BOUNDS, W_SIZE_BOUNDS, W_PID, W_START = 1, 2, 3, 5
W_USED: int = core.W_USED
W_COUNTERS = 8  # the active gauge per method (10 words), then the dropped count
COUNTER_WORDS = 11
W_BOUNDS = 32  # the duration bounds, then the size bounds (doubles)
MAX_BOUNDS = 64
ROUTE: int = core.ENTRY_ROUTE
SERIES: int = core.ENTRY_SERIES
PAD: int = core.ENTRY_PAD
FIRST_CHUNK = 64 * 1024
LARGEST_CHUNK = 8 * 1024 * 1024
SUFFIX = ".fmw"
ENV_DIRECTORY = "FASTMW_METRICS_DIR"

_WORD = struct.Struct("<Q")
_TWO = struct.Struct("<QQ")


# --------------------------------------------------------------------------- processes


def process_start(pid: int) -> str:
    """A token for the start of process ``pid`` (its start time in clock ticks since boot on
    Linux), so a reused pid is not taken for the process that had it; "0" elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[19].decode("ascii")
    except (OSError, IndexError, UnicodeDecodeError):
        return "0"


def alive(pid: int, start: str) -> bool:
    """Whether process ``pid`` that started at ``start`` (``process_start``) still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OSError:
        return False
    return start == "0" or process_start(pid) == start


def master_pid() -> int:
    """The process whose workers share one directory: the process that spawned this one with
    multiprocessing (``uvicorn --workers``, hypercorn), gunicorn's arbiter in a gunicorn worker,
    the process this one was forked from after fastmw was imported, or this process itself."""
    import multiprocessing  # only when a store first writes or reads

    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        return parent.pid
    if "gunicorn.arbiter" in sys.modules or _forked_from is not None:
        return os.getppid()
    return os.getpid()


_forked_from: int | None = None


def _note_fork() -> None:
    global _forked_from
    _forked_from = os.getppid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_note_fork)


def base_directory() -> Path:
    """Where the servers' directories are made: in shared memory when there is one."""
    shm = Path("/dev/shm")
    root = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return root / f"fastmw-metrics-{uid}"


def server_directory() -> Path:
    """This server's directory: ``FASTMW_METRICS_DIR`` when set, else one under
    ``base_directory()`` named by the master process and its start."""
    configured = os.environ.get(ENV_DIRECTORY, "").strip()
    if configured:
        return Path(configured)
    master = master_pid()
    return base_directory() / f"{master}-{process_start(master)}"


def remove_stale(base: Path, keep: Path) -> None:
    """Remove the directories of servers whose master process is gone."""
    try:
        entries = list(base.iterdir())
    except OSError:
        return
    for entry in entries:
        pid, _, start = entry.name.partition("-")
        if entry == keep or not pid.isdigit() or not start or alive(int(pid), start):
            continue
        shutil.rmtree(entry, ignore_errors=True)


# --------------------------------------------------------------------------- writing


class WorkerFile:
    """This process's counters file: a header, then route and series entries, mapped in chunks."""

    def __init__(self, directory: Path, duration_bounds: tuple[float, ...], size_bounds: tuple[float, ...]) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        pid = os.getpid()
        start = process_start(pid)
        self.path = directory / f"{pid}-{start}{SUFFIX}"
        if self.path.exists():  # a previous store of this very process (tests): start over
            self.path.unlink()
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._chunks: list[tuple[int, mmap.mmap]] = []
        self._size = 0
        self._grow(FIRST_CHUNK)
        header = self._chunks[0][1]
        header[0:8] = MAGIC
        for index, value in ((W_DURATION_BOUNDS, len(duration_bounds)), (W_SIZE_BOUNDS, len(size_bounds))):
            _WORD.pack_into(header, index * 8, value)
        _WORD.pack_into(header, W_PID * 8, pid)
        _WORD.pack_into(header, W_START * 8, int(start) if start.isdigit() else 0)
        bounds = [*duration_bounds, *([0.0] * (MAX_BOUNDS - len(duration_bounds))), *size_bounds]
        struct.pack_into(f"<{len(bounds)}d", header, W_BOUNDS * 8, *bounds)
        self._end = HEADER_BYTES
        self._publish()
        self._routes: dict[str, int] = {}

    def counters(self) -> memoryview:
        """The header's counter words: active requests per method, then the dropped count."""
        return memoryview(self._chunks[0][1])[W_COUNTERS * 8 : (W_COUNTERS + COUNTER_WORDS) * 8]

    def series(self, method: int, route: str, status: int, words: int) -> memoryview:
        """A new series' counters (zeroed), its route label written first when new."""
        rid = self._routes.get(route)
        if rid is None:
            encoded = route.encode("utf-8", "surrogatepass")
            rid = len(self._routes)
            padded = encoded + b"\0" * (-len(encoded) % 8)
            chunk, at = self._room(16 + len(padded))
            chunk[at + 16 : at + 16 + len(padded)] = padded
            _TWO.pack_into(chunk, at, ROUTE | len(encoded) << 32, rid)
            self._routes[route] = rid
        chunk, at = self._room(16 + words * 8)
        _TWO.pack_into(chunk, at, SERIES | method << 8 | status << 16, rid)
        self._publish()
        return memoryview(chunk)[at + 16 : at + 16 + words * 8]

    def close(self) -> None:
        """Release this process's mapping (a forked child drops its parent's)."""
        os.close(self._fd)
        self._chunks = []

    def _room(self, size: int) -> tuple[mmap.mmap, int]:
        """Where the next entry of ``size`` bytes goes (in one chunk), after what is there."""
        offset, chunk = self._chunks[-1]
        at = self._end - offset
        if at + size > len(chunk):
            if at < len(chunk):
                _WORD.pack_into(chunk, at, PAD | (len(chunk) - at) << 32)
            self._end = offset + len(chunk)
            self._grow(max(min(len(chunk) * 2, LARGEST_CHUNK), size))
            offset, chunk = self._chunks[-1]
            at = 0
        self._end += size
        return chunk, at

    def _grow(self, size: int) -> None:
        size = -(-size // mmap.ALLOCATIONGRANULARITY) * mmap.ALLOCATIONGRANULARITY
        offset = self._size
        os.ftruncate(self._fd, offset + size)
        if hasattr(os, "posix_fallocate"):
            # Reserve the blocks now: a full disk is an error here, not a SIGBUS mid-request.
            os.posix_fallocate(self._fd, offset, size)
        self._chunks.append((offset, mmap.mmap(self._fd, size, offset=offset)))
        self._size = offset + size

    def _publish(self) -> None:
        _WORD.pack_into(self._chunks[0][1], W_USED * 8, self._end)


# --------------------------------------------------------------------------- reading


@dataclass
class FileSnapshot:
    """What one counters file held when it was read (``data``: all of it)."""

    pid: int
    live: bool
    duration_bounds: tuple[float, ...]
    size_bounds: tuple[float, ...]
    counters: tuple[int, ...]
    data: bytes


def read_file(path: Path) -> FileSnapshot | None:
    """The snapshot of one counters file, or None when it is no such file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    if len(data) < HEADER_BYTES or data[:8] != MAGIC:
        return None
    words = memoryview(data).cast("Q")
    nd, ns = words[W_DURATION_BOUNDS], words[W_SIZE_BOUNDS]
    if not (1 <= nd <= MAX_BOUNDS and 1 <= ns <= MAX_BOUNDS):
        return None
    reals = memoryview(data).cast("d")
    duration = tuple(reals[W_BOUNDS : W_BOUNDS + nd])
    size = tuple(reals[W_BOUNDS + MAX_BOUNDS : W_BOUNDS + MAX_BOUNDS + ns])
    counters = tuple(memoryview(data)[W_COUNTERS * 8 : (W_COUNTERS + COUNTER_WORDS) * 8].cast("q"))
    pid, start = words[W_PID], str(words[W_START])
    return FileSnapshot(pid, alive(pid, start), duration, size, counters, data)


def read_directory(directory: Path) -> tuple[list[FileSnapshot], int]:
    """The snapshots of the counters files in ``directory``, and how many files could not be read."""
    try:
        paths = sorted(path for path in directory.iterdir() if path.name.endswith(SUFFIX))
    except OSError:
        return [], 0
    snapshots, unread = [], 0
    for path in paths:
        snapshot = read_file(path)
        if snapshot is None:
            unread += 1
        else:
            snapshots.append(snapshot)
    return snapshots, unread
