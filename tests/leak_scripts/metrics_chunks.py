"""Leak script: the scrape's renderer (``HistogramChunks``) made and dropped many times in one
process: read whole, closed half-way, and abandoned half-way (the generator of an ASGI app
whose client went away). Reports RSS growth after warm-up and the reference count change
of the counters file it read.

Usage: python -m tests.leak_scripts.metrics_chunks <compiled|pure> <iterations>
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

from fastmw import metrics
from tests.leak_scripts._measure import report, rss_kib

TWIN, ITERATIONS = sys.argv[1], int(sys.argv[2])
core = importlib.import_module("fastmw._core" if TWIN == "compiled" else "fastmw._core_py")
BOUNDS = (("0.01", "0.1", "1.0"), ("10.0", "1000.0"))
CHUNK = 2048


def counters_file() -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        store = metrics.MetricsStore(
            directory=directory, duration_buckets=(0.01, 0.1, 1.0), size_buckets=(10.0, 1000.0)
        )
        table = store.table_for(core)
        for route in range(20):
            table.record("GET", f"/r{route}", 200, 0.05, 5, 50, "ab" * 16, "cd" * 8, 1.0 + route)
        (path,) = Path(directory).glob("*.fmw")
        return path.read_bytes()


DATA = counters_file()


def one_round() -> None:
    for _ in core.HistogramChunks([DATA], *BOUNDS, True, CHUNK):
        pass
    closed = core.HistogramChunks([DATA], *BOUNDS, True, CHUNK)
    next(closed)
    closed.close()
    abandoned = core.HistogramChunks([DATA, DATA], *BOUNDS, False, CHUNK)
    next(abandoned)
    next(abandoned)


def main() -> None:
    for _ in range(max(ITERATIONS // 10, 50)):
        one_round()
    refs, rss = sys.getrefcount(DATA), rss_kib()
    for _ in range(ITERATIONS):
        one_round()
    report(twin=TWIN, iterations=ITERATIONS, rss_growth_kib=rss_kib() - rss, data_refs=sys.getrefcount(DATA) - refs)


if __name__ == "__main__":
    main()
