"""The counters files' format and their histograms summed and rendered (a scrape's hot loop).

A counters file (``fastmw._metrics_files`` writes one per process): a header of
``COUNTERS_HEADER`` bytes (words: magic, bound counts, pid, ``W_USED`` = the end of the
committed entries, start, then counters and bounds), then entries of 8-byte words: a route
label (``ENTRY_ROUTE | length << 32``, its id, the UTF-8 bytes padded to 8), a series
(``ENTRY_SERIES | method << 8 | status << 16``, its route id, ``series_words`` counters) or
a pad (``ENTRY_PAD | bytes << 32``, whole words) to the end of a mapped chunk.
"""

from __future__ import annotations

import struct
from collections.abc import Generator, Iterable, Iterator, Sequence

from fastmw._core_py._common import _type_name
from fastmw._core_py.metrics import EXEMPLAR_WORDS, MAX_BUCKETS, METRIC_METHODS, SERIES_HEAD, series_words

COUNTERS_HEADER = 4096
W_USED = 4
ENTRY_ROUTE, ENTRY_SERIES, ENTRY_PAD = 1, 2, 3
# A scrape's histograms are sent in chunks of about this many bytes (a chunk ends at the
# first family header or series block that reaches it): memory reused, never the whole text.
CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 1 << 30
HEX_DIGITS = frozenset(b"0123456789abcdef")
# Counts and byte totals are 64-bit unsigned words: sums across files wrap as the compiled
# kernel's do, so a damaged file renders the same numbers in both twins.
U64 = (1 << 64) - 1
# (name, help, unit) of the histograms, in the series' order.
HISTOGRAMS = (
    ("http_server_request_duration_seconds", "Duration of HTTP server requests.", "seconds"),
    ("http_server_request_body_size_bytes", "Size of HTTP server request bodies.", "bytes"),
    ("http_server_response_body_size_bytes", "Size of HTTP server response bodies.", "bytes"),
)

_TWO = struct.Struct("<QQ")


class Summed:
    """One series summed over files: sums (duration, request bytes, response bytes), the
    buckets of the three histograms (non-cumulative) and the latest exemplar per duration bucket."""

    __slots__ = ("counts", "exemplars", "sums")

    def __init__(self, buckets: int, durations: int) -> None:
        self.sums: list[float | int] = [0.0, 0, 0]
        self.counts = [0] * buckets
        self.exemplars: list[tuple[float, float, bytes] | None] = [None] * durations


def _escape(value: bytes) -> bytes:
    return value.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b'"', b'\\"')


def sum_files(files: Sequence[bytes], duration_bounds: int, size_bounds: int) -> dict[tuple[bytes, int, int], Summed]:
    """The series of ``files`` (counters files with that many finite bounds) summed, by (route
    label bytes, method index, status); a malformed entry ends its file."""
    nd, ns = duration_bounds + 1, size_bounds + 1
    size = series_words(nd - 1, ns - 1) * 8
    width = nd + 2 * ns
    merged: dict[tuple[bytes, int, int], Summed] = {}
    for data in files:
        used = min(struct.unpack_from("<Q", data, W_USED * 8)[0], len(data)) if len(data) >= COUNTERS_HEADER else 0
        routes: dict[int, bytes] = {}
        at = COUNTERS_HEADER
        while at + 16 <= used:
            head, second = _TWO.unpack_from(data, at)
            tag = head & 0xFF
            if tag == ENTRY_ROUTE:
                length = head >> 32
                # Route ids count up from 0 in a file, each written before its series.
                if at + 16 + length > used or second != len(routes):
                    break
                routes[second] = data[at + 16 : at + 16 + length]
                at += 16 + length + (-length % 8)
            elif tag == ENTRY_SERIES:
                method, status = (head >> 8) & 0xFF, (head >> 16) & 0xFFFF
                if at + 16 + size > used or method >= len(METRIC_METHODS) or second not in routes:
                    break
                key = (routes[second], method, status)
                series = merged.get(key)
                if series is None:
                    series = merged[key] = Summed(width, nd)
                _add(series, data, (at + 16) // 8, nd, width)
                at += 16 + size
            elif tag == ENTRY_PAD and head >> 32 >= 8 and (head >> 32) % 8 == 0:
                # Entries are whole words: an unaligned pad is damage, not a shorter chunk.
                at += head >> 32
            else:
                break
    return merged


class HistogramChunks:
    """The three request histograms summed over ``files`` (counters files of one layout:
    ``len(duration_le)`` and ``len(size_le)`` finite bounds, whose ``le`` texts they are), in
    Prometheus text 0.0.4 or OpenMetrics 1.0 (with the duration exemplars), as an iterator of
    ``bytes`` chunks: each ends at the first family header or series block that brings it to
    ``chunk_size`` bytes or more. ``methods`` is the bit mask of the methods seen. Series sort
    by route, method, status; a malformed entry ends its file. ``close()`` frees it early."""

    __slots__ = ("__weakref__", "_chunks", "_methods")

    def __init__(
        self,
        files: Iterable[bytes],
        duration_le: Iterable[str],
        size_le: Iterable[str],
        openmetrics: bool,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        # Read once, as tuples, as the compiled twin does (its layout holds at most MAX_BUCKETS bounds).
        files, duration_le, size_le = tuple(files), tuple(duration_le), tuple(size_le)
        for name, texts in (("duration_le", duration_le), ("size_le", size_le)):
            if len(texts) > MAX_BUCKETS:
                raise ValueError(f"{name} must have at most {MAX_BUCKETS} bounds, got {len(texts)}")
            if not all(type(text) is str and text.isascii() for text in texts):
                raise TypeError(f"{name} must hold ASCII str")
        for data in files:
            if type(data) is not bytes:
                raise TypeError(f"files must hold bytes, not {_type_name(data)}")
        if type(chunk_size) is not int:
            raise TypeError(f"chunk_size must be an int, not {_type_name(chunk_size)}")
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be from 1 to {MAX_CHUNK_SIZE}, got {chunk_size}")
        merged = sum_files(files, len(duration_le), len(size_le))
        keys = sorted(merged)
        self._methods = 0
        for _, method, _ in keys:
            self._methods |= 1 << method
        # The generator refers to what it renders, not to self: dropping self frees it.
        bounds = ([le.encode() for le in duration_le], [le.encode() for le in size_le])
        self._chunks = _chunked(_units(merged, keys, bounds, bool(openmetrics)), chunk_size)

    @property
    def methods(self) -> int:
        """The bit mask of the methods (``METRIC_METHODS`` indices) of the series."""
        return self._methods

    def __iter__(self) -> HistogramChunks:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        """Free what it holds; it yields nothing more."""
        self._chunks.close()


def _chunked(units: Iterator[bytes], chunk_size: int) -> Generator[bytes, None, None]:
    parts: list[bytes] = []
    filled = 0
    for unit in units:
        parts.append(unit)
        filled += len(unit)
        if filled >= chunk_size:
            yield b"".join(parts)
            parts, filled = [], 0
    if parts:
        yield b"".join(parts)


def _label(route: bytes, method: int, status: int) -> bytes:
    label = b'http_request_method="' + METRIC_METHODS[method].encode() + b'"'
    if status:
        label += b',http_response_status_code="%d"' % status
    if route:
        label += b',http_route="' + _escape(route) + b'"'
    return label


def _units(
    merged: dict[tuple[bytes, int, int], Summed],
    keys: list[tuple[bytes, int, int]],
    bounds: tuple[list[bytes], list[bytes]],
    openmetrics: bool,
) -> Iterator[bytes]:
    """Each histogram's header lines, then its block of lines per series."""
    labels = [_label(*key) for key in keys]
    nd, ns = len(bounds[0]) + 1, len(bounds[1]) + 1
    slices = ((0, nd, bounds[0]), (nd, nd + ns, bounds[1]), (nd + ns, nd + 2 * ns, bounds[1]))
    for position, (name, help_text, unit) in enumerate(HISTOGRAMS):
        encoded = name.encode()
        header = b"# TYPE %s histogram\n" % encoded
        if openmetrics:
            header += b"# UNIT %s %s\n" % (encoded, unit.encode())
        yield header + b"# HELP %s %s\n" % (encoded, help_text.encode())
        start, stop, les = slices[position]
        for key, label in zip(keys, labels, strict=True):
            series = merged[key]
            running = 0
            lines = []
            for index in range(stop - start):
                running = (running + series.counts[start + index]) & U64
                le = les[index] if index < len(les) else b"+Inf"
                line = b'%s_bucket{%s,le="%s"} %d' % (encoded, label, le, running)
                exemplar = series.exemplars[index] if openmetrics and position == 0 else None
                if exemplar is not None:
                    when, value, ids = exemplar
                    line += b' # {trace_id="%s",span_id="%s"} %s %s' % (
                        ids[:32],
                        ids[32:],
                        repr(value).encode(),
                        repr(when).encode(),
                    )
                lines.append(line + b"\n")
            total = repr(series.sums[0]).encode() if position == 0 else b"%d" % series.sums[position]
            count = b"%s_count{%s} %d\n" % (encoded, label, running)
            summed = b"%s_sum{%s} %s\n" % (encoded, label, total)
            lines.extend((count, summed) if openmetrics else (summed, count))
            yield b"".join(lines)


def _add(series: Summed, data: bytes, at: int, nd: int, width: int) -> None:
    words = struct.unpack_from(f"<{SERIES_HEAD + width}Q", data, at * 8)
    series.sums[0] += struct.unpack_from("<d", data, at * 8)[0]
    series.sums[1] = (series.sums[1] + words[1]) & U64
    series.sums[2] = (series.sums[2] + words[2]) & U64
    counts = series.counts
    for index in range(width):
        counts[index] = (counts[index] + words[SERIES_HEAD + index]) & U64
    base = (at + SERIES_HEAD + width) * 8
    for bucket in range(nd):
        offset = base + bucket * EXEMPLAR_WORDS * 8
        value, when = struct.unpack_from("<dd", data, offset + 48)
        current = series.exemplars[bucket]
        if when > 0 and (current is None or when > current[0]):
            ids = data[offset : offset + 48]
            if HEX_DIGITS.issuperset(ids):
                series.exemplars[bucket] = (when, value, ids)
