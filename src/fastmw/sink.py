"""``JsonLinesSink``: the access log as JSON lines, written by a thread of its own.

A record is encoded by the core (``encode_access_record``) and handed to a bounded buffer (a
``core.JsonLinesWriter``) under a lock that no write to disk ever holds: the event loop never
waits on the disk. A thread writes the buffer out when ``batch_lines`` lines wait and every
``flush_interval`` seconds. With ``max_pending`` lines waiting (a stalled or full disk), a new
record is dropped and counted (``dropped``); each new episode of loss is reported through
``logging`` (logger ``fastmw.access``, at most once per ``REPORT_INTERVAL`` seconds).

What the disk does not take stays in the writer, first in line, so a line cut short by a full
disk is completed before anything else is appended. A path's file is reopened when the path
names another file (logrotate's move-and-create, a deleted file) and on SIGHUP.

At ``lifespan.shutdown``, ``flush()``, ``close()``, interpreter exit and SIGTERM/SIGINT
(passed on to the handler that was there before) everything is written at once, and after a
signal every later line too. A forked child (gunicorn ``--preload``) drops the lines it
inherited (the parent writes them) and starts its own thread and handlers on its first record.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import signal
import threading
import time
import weakref
from collections.abc import Sequence
from types import FrameType
from typing import IO, Any

from fastmw._impl import core
from fastmw.errors import ConfigurationError

__all__ = ["DEFAULT_BATCH_LINES", "DEFAULT_FLUSH_INTERVAL", "DEFAULT_MAX_PENDING", "JsonLinesSink"]

DEFAULT_BATCH_LINES = 64
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_MAX_PENDING = 65536
# At most one loss report per this many seconds (the counter counts everything).
REPORT_INTERVAL = 10.0
# How often an idle writer thread looks whether its path still names its file.
ROTATION_CHECK_INTERVAL = 1.0
FILE_MODE = 0o644
# O_BINARY: no newline translation on Windows; O_CLOEXEC: not inherited by exec'd children.
OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
FLUSH_SIGNALS = (signal.SIGTERM, signal.SIGINT)
REOPEN_SIGNAL = getattr(signal, "SIGHUP", None)
THREAD_NAME = "fastmw-sink-flush"

logger = logging.getLogger("fastmw.access")

encode_access_record = core.encode_access_record

# Every open sink of this process, for the exit, signal and fork hooks.
_SINKS: weakref.WeakSet[JsonLinesSink] = weakref.WeakSet()
# Signal -> the handler ours replaced (and chains to), and whether this process installed them.
_previous: dict[int, Any] = {}
_signals_installed = False


class _AppendFile:
    """A file opened ``O_APPEND`` as the writer's stream (``write`` is ``os.write`` itself)."""

    __slots__ = ("fd", "write")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.fd = os.open(path, OPEN_FLAGS, FILE_MODE)
        self.write = functools.partial(os.write, self.fd)

    def names(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` still names this file (not moved away, deleted or replaced)."""
        try:
            named = os.stat(path)
        except OSError:
            return False
        mine = os.fstat(self.fd)
        return (named.st_dev, named.st_ino) == (mine.st_dev, mine.st_ino)

    def close(self) -> None:
        os.close(self.fd)

    def __repr__(self) -> str:
        return f"<O_APPEND fd {self.fd}>"


class JsonLinesSink:
    """Writes one JSON object per line to a file path or a binary stream, from its own thread.

    ``batch_lines`` lines make a batch; ``flush_interval`` seconds (0: at once) bound how long
    a line waits; at most ``max_pending`` lines wait, later ones are dropped and counted in
    ``dropped``. ``handle_signals=False`` leaves SIGTERM/SIGINT/SIGHUP alone. Nothing here
    raises into a request; loss is reported through ``logging``.
    """

    def __init__(
        self,
        target: IO[bytes] | str | os.PathLike[str],
        *,
        batch_lines: int = DEFAULT_BATCH_LINES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_pending: int = DEFAULT_MAX_PENDING,
        handle_signals: bool = True,
    ) -> None:
        if (
            isinstance(flush_interval, bool)
            or not isinstance(flush_interval, (int, float))
            or not 0 <= flush_interval < math.inf
        ):
            raise ConfigurationError(f"flush_interval must be a non-negative number, got {flush_interval!r}")
        if type(batch_lines) is not int or batch_lines < 1:
            raise ConfigurationError(f"batch_lines must be a positive int, got {batch_lines!r}")
        if type(max_pending) is not int or max_pending < batch_lines:
            raise ConfigurationError(f"max_pending must be an int of at least batch_lines, got {max_pending!r}")
        self.batch_lines = batch_lines
        self.flush_interval = float(flush_interval)
        self.max_pending = max_pending
        self.handle_signals = bool(handle_signals)
        self._path = target if isinstance(target, (str, os.PathLike)) else None
        stream: Any = _AppendFile(target) if isinstance(target, (str, os.PathLike)) else target
        try:
            self._writer = core.JsonLinesWriter(stream, batch_lines, max_pending)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        self._stream = stream
        self.closed = False
        # Records lost before reaching the writer (unencodable) and in writers a fork replaced.
        self._lost_outside = 0
        self._fresh_process_state()
        _SINKS.add(self)

    @property
    def dropped(self) -> int:
        """Records lost so far: buffer full, unencodable, or not writable when the sink closed."""
        return self._writer.dropped + self._lost_outside

    @property
    def pending(self) -> int:
        """Records waiting to be written."""
        return int(self._writer.pending)

    def _fresh_process_state(self) -> None:
        """Locks, thread and loss state for this process (at construction, and in a forked child)."""
        # _lock guards the buffer (held for microseconds); _io_lock serialises the writes.
        # Reentrant: a signal handler flushing may interrupt the main thread holding either.
        self._lock = threading.RLock()
        self._io_lock = threading.RLock()
        self._wake = threading.Event()
        self._armed = False
        self._timer: threading.Thread | None = None
        # Once shutting down, every line is written at once by the thread that makes it.
        self._draining = False
        # Whether every line (not only one completing a batch) is handed on at once: with
        # flush_interval 0, and once draining. One attribute, read per record.
        self._urgent = self.flush_interval == 0
        self._reopen = False
        self._checked = time.monotonic()
        self._seen_dropped = 0
        self._losing = False
        self._episode_start = 0
        self._episode_reported = False
        self._last_report = -math.inf
        self._unreported = 0

    def _after_fork_in_child(self) -> None:
        # Inherited buffered lines are the parent's to write; the thread did not survive.
        self._fresh_process_state()
        self._lost_outside = 0
        self._writer = core.JsonLinesWriter(self._stream, self.batch_lines, self.max_pending)

    def _arm(self) -> None:
        """On the first record in this process: start the thread and the signal handlers."""
        with self._lock:
            if self._armed or self.closed:
                return
            self._armed = True
            args = (weakref.ref(self), self._wake, self._wait_time())
            self._timer = threading.Thread(target=_write_loop, args=args, name=THREAD_NAME, daemon=True)
            self._timer.start()
        if self.handle_signals:
            _install_signal_handlers()

    def _wait_time(self) -> float:
        interval = self.flush_interval or ROTATION_CHECK_INTERVAL
        return min(interval, threading.TIMEOUT_MAX)

    def write_record(self, keys: Sequence[str], values: Sequence[Any]) -> None:
        """Encode one record and hand it to the writing thread; never raises, never waits on the disk."""
        try:
            if not self._armed:
                self._arm()
            line = encode_access_record(keys, values)
        except Exception as exc:
            self._lost_outside += 1
            self._report_now(f"a record could not be encoded ({exc!r})")
            return
        with self._lock:
            if self.closed:
                return
            due = self._writer.write(line)
        if due or self._urgent:
            if self._draining:
                self.flush()
            else:
                self._wake.set()

    def flush(self) -> None:
        """Write out whatever waits, on this thread (it waits for the disk); never raises."""
        with self._io_lock:
            self._write_waiting()

    def _write_waiting(self) -> None:
        """Reopen if due, then write the buffer out (with ``_io_lock`` held)."""
        error: BaseException | None = None
        try:
            self._follow_path()
            with self._lock:
                data = self._writer.take()
            if data:
                self._writer.write_out(data)
        except Exception as exc:
            error = exc
        self._account(error)

    def _follow_path(self) -> None:
        """Reopen the path when asked (SIGHUP) or when it names another file (rotated, deleted)."""
        if self._path is None or self.closed:
            return
        now = time.monotonic()
        if not self._reopen and now - self._checked < ROTATION_CHECK_INTERVAL:
            return
        self._checked = now
        stream = self._stream
        if not self._reopen and stream.names(self._path):
            return
        self._reopen = False
        self._stream = self._writer.stream = _AppendFile(self._path)
        stream.close()

    def _account(self, error: BaseException | None) -> None:
        """Note loss and recovery; report each new episode of loss (rate-limited), and its end
        (with how many records it lost) when its start was reported."""
        dropped = self.dropped
        new_loss = dropped - self._seen_dropped
        self._seen_dropped = dropped
        if (error is not None or new_loss) and not self._losing:
            self._losing = True
            self._episode_start = dropped - new_loss
            reason = repr(error) if error is not None else "the buffer is full"
            self._episode_reported = self._report_now(
                f"losing records ({reason}); {self.pending} wait, {dropped} dropped so far", error=True
            )
        if error is None and self._losing and self.pending == 0:
            self._losing = False
            message = f"writing again; {dropped - self._episode_start} records lost in that episode"
            self._report_now(message, force=self._episode_reported)

    def _report_now(self, message: str, *, error: bool = False, force: bool = False) -> bool:
        """Log ``message`` unless another report went out less than ``REPORT_INTERVAL`` ago."""
        now = time.monotonic()
        if not force and now - self._last_report < REPORT_INTERVAL:
            self._unreported += 1
            return False
        if self._unreported:
            message += f" ({self._unreported} reports held back)"
        self._last_report = now
        self._unreported = 0
        logger.log(logging.ERROR if error else logging.WARNING, "fastmw access log sink: %s", message)
        return True

    def _drain(self) -> None:
        """The process is going down: write everything now, and every later line at once."""
        self._draining = True
        self._urgent = True
        self.flush()

    def _request_reopen(self) -> None:
        self._reopen = True
        self._wake.set()

    def close(self) -> None:
        """Stop the thread, write what waits (what cannot be written is counted), close the file."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
        self._wake.set()
        timer = self._timer
        if timer is not None and timer is not threading.current_thread():
            timer.join(ROTATION_CHECK_INTERVAL + 1.0)
        with self._io_lock:
            self._write_waiting()
            lost = self._writer.discard()
            if lost:
                message = f"closed with {lost} records unwritten ({self.dropped} dropped in all)"
                self._report_now(message, error=True, force=True)
            if self._path is not None:
                try:
                    self._stream.close()
                except OSError:
                    pass
        _SINKS.discard(self)

    def __del__(self) -> None:
        # A sink dropped without close() still writes its lines and releases its file.
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter teardown
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"batch_lines={self.batch_lines}, flush_interval={self.flush_interval}"
        return f"<JsonLinesSink {self._stream!r} {state}>"


def _write_loop(ref: weakref.ref[JsonLinesSink], wake: threading.Event, interval: float) -> None:
    """The writing thread: holds the sink weakly, so an unreferenced sink is still collected."""
    while True:
        wake.wait(interval)
        wake.clear()
        sink = ref()
        if sink is None or sink.closed:
            return
        sink.flush()
        del sink


def _flush_all() -> None:
    for sink in list(_SINKS):
        sink.flush()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Write every sink out (SIGHUP: reopen), then do what the replaced handler would have done."""
    reopening = signum == REOPEN_SIGNAL
    for sink in list(_SINKS):
        if reopening:
            sink._request_reopen()
        else:
            sink._drain()
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN and not reopening:
        # The default action (terminate): restore it and let the signal end the process.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def _install_signal_handlers() -> None:
    """Put ``_on_signal`` in front of the current SIGTERM/SIGINT/SIGHUP handlers, once per process.

    Servers install their own handlers (uvicorn while serving, and it restores the old ones
    and re-raises the signal after a graceful shutdown): installed on the first record,
    ours chains to theirs, so the server still shuts down as it would. SIGHUP's default
    action (terminate) is replaced: a SIGHUP reopens the sinks' files.
    """
    global _signals_installed
    if _signals_installed or threading.current_thread() is not threading.main_thread():
        return
    _signals_installed = True
    signums = FLUSH_SIGNALS if REOPEN_SIGNAL is None else (*FLUSH_SIGNALS, REOPEN_SIGNAL)
    for signum in signums:
        current = signal.getsignal(signum)
        # None: a handler installed outside Python, which we could not chain to.
        if current is _on_signal or current is None:
            continue
        _previous[signum] = current
        signal.signal(signum, _on_signal)


def _after_fork_in_child() -> None:
    global _signals_installed
    _signals_installed = False
    for sink in list(_SINKS):
        sink._after_fork_in_child()


atexit.register(_flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
