"""``JsonLinesSink``: the access log as JSON lines, without losing the last ones.

Each record is encoded by the core (``encode_access_record``) and buffered in a
``core.JsonLinesWriter``. A batch is written when it holds ``batch_lines`` lines, every
``flush_interval`` seconds from a daemon thread (no traffic needed), at ``lifespan.shutdown``
(``AccessLogMiddleware`` forwards it), on ``flush()``/``close()``, at interpreter exit and on
SIGTERM/SIGINT, which are then passed on to the handler that was there before.

A path is opened with ``O_APPEND`` and each batch is one ``os.write`` of whole lines, so
several worker processes can append to one file (a short write is followed by the rest).
A forked child (gunicorn ``--preload``) drops the lines it inherited (the parent writes them)
and starts its own timer and signal handlers on its first record.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import signal
import threading
import weakref
from collections.abc import Sequence
from types import FrameType
from typing import IO, Any

from fastmw._impl import core
from fastmw.errors import ConfigurationError

__all__ = ["DEFAULT_BATCH_LINES", "DEFAULT_FLUSH_INTERVAL", "JsonLinesSink"]

DEFAULT_BATCH_LINES = 64
DEFAULT_FLUSH_INTERVAL = 1.0
FILE_MODE = 0o644
# O_BINARY: no newline translation on Windows; O_CLOEXEC: not inherited by exec'd children.
OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
FLUSH_SIGNALS = (signal.SIGTERM, signal.SIGINT)
THREAD_NAME = "fastmw-sink-flush"

logger = logging.getLogger("fastmw.access")

encode_access_record = core.encode_access_record

# Every open sink of this process, for the exit, signal and fork hooks.
_SINKS: weakref.WeakSet[JsonLinesSink] = weakref.WeakSet()
# Signal -> the handler ours replaced (and chains to), and whether this process installed them.
_previous: dict[int, Any] = {}
_signals_installed = False


class _AppendFile:
    """A file opened ``O_APPEND`` as the writer's stream.

    ``write`` is ``os.write`` itself: the compiled writer hands a batch straight to one
    system call, with no Python frame between where a signal handler could run.
    """

    __slots__ = ("fd", "write")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.fd = os.open(path, OPEN_FLAGS, FILE_MODE)
        self.write = functools.partial(os.write, self.fd)

    def close(self) -> None:
        os.close(self.fd)

    def __repr__(self) -> str:
        return f"<O_APPEND fd {self.fd}>"


class JsonLinesSink:
    """Writes one JSON object per line to a file path or a binary stream.

    ``batch_lines`` lines are buffered; ``flush_interval`` seconds (0: every line at once)
    bound how long a line waits. ``handle_signals=False`` leaves SIGTERM/SIGINT alone (the
    exit and timer flushes still run). Write errors are reported once through ``logging``
    and never raised to a request.
    """

    def __init__(
        self,
        target: IO[bytes] | str | os.PathLike[str],
        *,
        batch_lines: int = DEFAULT_BATCH_LINES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
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
        self.batch_lines = batch_lines
        self.flush_interval = float(flush_interval)
        self.handle_signals = bool(handle_signals)
        self._owned = isinstance(target, (str, os.PathLike))
        stream: Any = _AppendFile(target) if isinstance(target, (str, os.PathLike)) else target
        try:
            self._writer = core.JsonLinesWriter(stream, batch_lines)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        self._stream = stream
        self._reported = False
        self.closed = False
        self._fresh_process_state()
        _SINKS.add(self)

    def _fresh_process_state(self) -> None:
        """Lock, buffer and timer for this process (at construction, and in a forked child)."""
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._armed = False
        self._timer: threading.Thread | None = None
        # Once shutting down (or with no interval), every line is written at once.
        self._draining = self.flush_interval == 0

    def _after_fork_in_child(self) -> None:
        # Inherited buffered lines are the parent's to write; the timer thread did not survive.
        self._fresh_process_state()
        self._writer = core.JsonLinesWriter(self._stream, self.batch_lines)

    def _arm(self) -> None:
        """On the first record in this process: start the timer and the signal handlers."""
        with self._lock:
            if self._armed or self.closed:
                return
            self._armed = True
            if not self._draining:
                args = (weakref.ref(self), self._wake, min(self.flush_interval, threading.TIMEOUT_MAX))
                self._timer = threading.Thread(target=_flush_every, args=args, name=THREAD_NAME, daemon=True)
                self._timer.start()
        if self.handle_signals:
            _install_signal_handlers()

    def _report(self, exc: BaseException) -> None:
        if not self._reported:
            self._reported = True
            logger.error("fastmw access log sink failed to write; later errors are not reported: %r", exc)

    def write_record(self, keys: Sequence[str], values: Sequence[Any]) -> None:
        """Encode and buffer one record; never raises."""
        try:
            if not self._armed:
                self._arm()
            line = encode_access_record(keys, values)
            with self._lock:
                if self.closed:
                    return
                self._writer.write(line)
                if self._draining:
                    self._writer.flush()
        except Exception as exc:
            self._report(exc)

    def flush(self) -> None:
        """Write out whatever is buffered; never raises."""
        try:
            with self._lock:
                self._writer.flush()
        except Exception as exc:
            self._report(exc)

    def _drain(self) -> None:
        """The process is going down: write everything now, and every later line at once."""
        with self._lock:
            self._draining = True
        # The timer stops, so no other thread is mid-write when the process ends.
        self._wake.set()
        self.flush()

    def close(self) -> None:
        """Flush, stop the timer, and close the file if the sink opened it."""
        with self._lock:
            if self.closed:
                return
            self.flush()
            self.closed = True
            if self._owned:
                try:
                    self._stream.close()
                except Exception as exc:
                    self._report(exc)
        self._wake.set()
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


def _flush_every(ref: weakref.ref[JsonLinesSink], wake: threading.Event, interval: float) -> None:
    """The timer thread: holds the sink weakly, so an unreferenced sink is still collected."""
    while not wake.wait(interval):
        sink = ref()
        if sink is None:
            return
        sink.flush()
        del sink


def _flush_all() -> None:
    for sink in list(_SINKS):
        sink.flush()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    """Write every sink out, then do what the replaced handler would have done."""
    for sink in list(_SINKS):
        sink._drain()
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        # The default action (terminate): restore it and let the signal end the process.
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)


def _install_signal_handlers() -> None:
    """Put ``_on_signal`` in front of the current SIGTERM/SIGINT handlers, once per process.

    Servers install their own handlers (uvicorn while serving, and it restores the old ones
    and re-raises the signal after a graceful shutdown): installed on the first record,
    ours chains to theirs, so the server still shuts down as it would.
    """
    global _signals_installed
    if _signals_installed or threading.current_thread() is not threading.main_thread():
        return
    _signals_installed = True
    for signum in FLUSH_SIGNALS:
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
