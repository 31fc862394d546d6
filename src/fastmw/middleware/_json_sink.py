"""The access log's fast sink: compiled JSON lines to a binary stream or a file, no LogRecord."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import IO, Any

from fastmw._impl import core
from fastmw.errors import ConfigurationError

DEFAULT_BATCH_LINES = 64
DEFAULT_FLUSH_INTERVAL = 1.0

logger = logging.getLogger("fastmw.access")

encode_access_record = core.encode_access_record
monotonic = core.monotonic


class JsonLinesSink:
    """Writes one JSON object per line, in batches of ``batch_lines`` or every
    ``flush_interval`` seconds (checked on write), and on ``flush()``/``close()``.

    A write error is reported once through ``logging`` and never raised to a request.
    """

    def __init__(
        self,
        target: IO[bytes] | str | os.PathLike[str],
        *,
        batch_lines: int = DEFAULT_BATCH_LINES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        if isinstance(target, (str, os.PathLike)):
            self._stream: Any = open(target, "ab")
            self._owned = True
        else:
            self._stream = target
            self._owned = False
        if not isinstance(flush_interval, (int, float)) or flush_interval < 0:
            raise ConfigurationError(f"flush_interval must be a non-negative number, got {flush_interval!r}")
        try:
            self._writer = core.JsonLinesWriter(self._stream, batch_lines)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        self.flush_interval = float(flush_interval)
        self._last_flush = monotonic()
        self._reported = False
        self.closed = False

    def _report(self, exc: BaseException) -> None:
        if not self._reported:
            self._reported = True
            logger.error("fastmw access log sink failed to write; later errors are not reported: %r", exc)

    def write_record(self, keys: Sequence[str], values: Sequence[Any]) -> None:
        """Encode and buffer one record; never raises."""
        if self.closed:
            return
        writer = self._writer
        try:
            writer.write(encode_access_record(keys, values))
            if writer.pending and monotonic() - self._last_flush >= self.flush_interval:
                self.flush()
            elif not writer.pending:
                self._last_flush = monotonic()
        except Exception as exc:
            self._report(exc)

    def flush(self) -> None:
        """Write out whatever is buffered; never raises."""
        self._last_flush = monotonic()
        try:
            self._writer.flush()
        except Exception as exc:
            self._report(exc)

    def close(self) -> None:
        """Flush, and close the file if the sink opened it."""
        if self.closed:
            return
        self.flush()
        self.closed = True
        if self._owned:
            try:
                self._stream.close()
            except Exception as exc:
                self._report(exc)
