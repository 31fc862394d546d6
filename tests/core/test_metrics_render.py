"""The scrape's renderer (``HistogramChunks``), against both core twins: its chunks, and that
one abandoned or closed half-way frees what it holds."""

from __future__ import annotations

import gc
import re
import struct
import weakref
from pathlib import Path
from types import ModuleType

import pytest

from fastmw import metrics

# The core fixture gives both twins in the compiled pass.
pytestmark = pytest.mark.once

DURATION_LE = ("0.01", "0.1", "1.0")
SIZE_LE = ("10.0", "1000.0")
# Where a unit starts: a family's header, or a series' block (its first bucket line).
UNIT_START = re.compile(rb"^(# TYPE |\w+_bucket\{.*le=\"0\.01\"|\w+_bucket\{.*le=\"10\.0\")", re.MULTILINE)


def counters_files(core: ModuleType, directory: Path, routes: int = 30) -> list[bytes]:
    store = metrics.MetricsStore(directory=directory, duration_buckets=(0.01, 0.1, 1.0), size_buckets=(10.0, 1000.0))
    table = store.table_for(core)
    for route in range(routes):
        for method in ("GET", "POST"):
            table.record(method, f"/r{route}", 200 + route % 2, 0.05, 5, 50)
    return [path.read_bytes() for path in sorted(directory.glob("*.fmw"))]


def units(text: bytes) -> list[bytes]:
    """``text`` cut before each family header and series block."""
    starts = [match.start() for match in UNIT_START.finditer(text)]
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


@pytest.mark.parametrize("openmetrics", [False, True])
def test_a_chunk_ends_at_the_first_block_reaching_its_size(core: ModuleType, tmp_path: Path, openmetrics: bool) -> None:
    files = counters_files(core, tmp_path)
    whole = list(core.HistogramChunks(files, DURATION_LE, SIZE_LE, openmetrics, 1 << 30))
    assert len(whole) == 1
    # 3 family headers and 3 blocks of 60 series.
    blocks = units(whole[0])
    assert len(blocks) == 3 + 3 * 60 and all(block.endswith(b"\n") for block in blocks)
    assert list(core.HistogramChunks(files, DURATION_LE, SIZE_LE, openmetrics, 1)) == blocks
    for size in (100, 700, 5000, 60_000):
        chunks = list(core.HistogramChunks(files, DURATION_LE, SIZE_LE, openmetrics, size))
        assert b"".join(chunks) == whole[0]
        for chunk in chunks:
            parts = units(chunk)
            # Each chunk is whole blocks, reaching the size only with its last one.
            assert b"".join(parts) == chunk and sum(map(len, parts[:-1])) < size
        assert all(len(chunk) >= size for chunk in chunks[:-1])


def test_the_default_chunk_size(core: ModuleType, tmp_path: Path) -> None:
    files = counters_files(core, tmp_path, routes=400)
    chunks = list(core.HistogramChunks(files, DURATION_LE, SIZE_LE, False))
    assert core.CHUNK_SIZE == 64 * 1024 and len(chunks) > 3
    assert all(core.CHUNK_SIZE <= len(chunk) < core.CHUNK_SIZE + 4096 for chunk in chunks[:-1])


def test_methods_seen(core: ModuleType, tmp_path: Path) -> None:
    files = counters_files(core, tmp_path)
    chunks = core.HistogramChunks(files, DURATION_LE, SIZE_LE, False)
    get, post = core.method_index("GET"), core.method_index("POST")
    assert chunks.methods == 1 << get | 1 << post
    assert core.HistogramChunks([], DURATION_LE, SIZE_LE, False).methods == 0


@pytest.mark.parametrize("pad", [8, 16, 12, 20])
def test_a_pad_of_whole_words_is_skipped_any_other_ends_the_file(core: ModuleType, tmp_path: Path, pad: int) -> None:
    # A pad entry fills a chunk's end, so its size is whole 8-byte words; any other size is
    # damage, and the file's series after it are not read (both twins: a difference once).
    (good,) = counters_files(core, tmp_path, routes=1)
    used = struct.unpack_from("<Q", good, core.W_USED * 8)[0]
    route = 16 + 8  # "/r0", padded to a word
    entries = good[core.COUNTERS_HEADER : used]
    padding = struct.pack("<Q", core.ENTRY_PAD | pad << 32).ljust(pad, b"\0")
    padded = bytearray(good[: core.COUNTERS_HEADER]) + entries[:route] + padding + entries[route:]
    struct.pack_into("<Q", padded, core.W_USED * 8, len(padded))
    chunks = core.HistogramChunks([bytes(padded)], DURATION_LE, SIZE_LE, False)
    text = b"".join(chunks)
    if pad % 8 == 0:
        assert text == b"".join(core.HistogramChunks([good], DURATION_LE, SIZE_LE, False))
        assert chunks.methods == 1 << core.method_index("GET") | 1 << core.method_index("POST")
    else:
        assert chunks.methods == 0 and text.count(b"# TYPE ") == 3 and b"_bucket" not in text


def test_exhausted_and_closed_yield_nothing(core: ModuleType, tmp_path: Path) -> None:
    files = counters_files(core, tmp_path)
    chunks = core.HistogramChunks(files, DURATION_LE, SIZE_LE, False, 1000)
    assert iter(chunks) is chunks
    assert len(list(chunks)) > 1 and list(chunks) == []
    chunks.close()
    half = core.HistogramChunks(files, DURATION_LE, SIZE_LE, False, 1000)
    assert next(half).startswith(b"# TYPE ")
    half.close()
    half.close()
    with pytest.raises(StopIteration):
        next(half)
    # No series: the three headers alone.
    assert b"".join(core.HistogramChunks([], DURATION_LE, SIZE_LE, True)).count(b"# UNIT ") == 3


def test_an_abandoned_renderer_is_freed(core: ModuleType, tmp_path: Path) -> None:
    files = counters_files(core, tmp_path)
    chunks = core.HistogramChunks(files, DURATION_LE, SIZE_LE, False, 1000)
    next(chunks)
    gone = weakref.ref(chunks)
    gc.disable()
    try:
        del chunks  # half-read: freed at once (no reference cycle waits for the collector)
        assert gone() is None
    finally:
        gc.enable()


def test_never_initialised_is_refused(core: ModuleType) -> None:
    # Made with __new__ alone: an AttributeError, never a crash.
    chunks = core.HistogramChunks.__new__(core.HistogramChunks)
    for use in (next, lambda chunks: chunks.methods, lambda chunks: chunks.close()):
        with pytest.raises(AttributeError):
            use(chunks)
