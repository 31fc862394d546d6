"""The JSON-lines sink over many lines, written by its own thread to a real file: gc objects and
allocator blocks (what a leak grows by the line) and RSS after each half, then every line read back.

``python -m tests.leak_scripts.sink_lines PATH LINES`` (the core twin from FASTMW_NO_EXTENSIONS).

The writing thread's malloc arena moves RSS by hundreds of KiB between runs without any growth of
objects or blocks, so RSS gets generous slack in the test; the object and block counts are exact.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import fastmw
from fastmw.sink import JsonLinesSink
from tests.leak_scripts._measure import report, rss_kib

PATH, LINES = Path(sys.argv[1]), int(sys.argv[2])
WARMUP = max(LINES // 10, 5_000)
# Lines handed over between waits for the thread: well under the sink's max_pending.
CHUNK = 4_096
DRAIN_TIMEOUT = 60.0
KEYS = ("time", "method", "path", "status", "duration_ms", "user_agent", "request_id")


def values(index: int) -> tuple[object, ...]:
    return (time.time(), "GET", f"/items/{index}", 200, index / 1000, "probe/1.0", f"{index:032x}")


def write(sink: JsonLinesSink, start: int, stop: int) -> None:
    """Lines ``start`` to ``stop``, handed to the sink's thread a chunk at a time."""
    for first in range(start, stop, CHUNK):
        for index in range(first, min(first + CHUNK, stop)):
            sink.write_record(KEYS, values(index))
        drained(sink)


def drained(sink: JsonLinesSink) -> None:
    """Wait (bounded) until the thread has written every waiting line."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while sink.pending and time.monotonic() < deadline:
        time.sleep(0.001)


def main() -> None:
    # No signal handlers: this process is the test's child and ends by itself.
    sink = JsonLinesSink(PATH, batch_lines=256, flush_interval=0.05, handle_signals=False)
    write(sink, 0, WARMUP)  # warm-up: the thread, its buffers, free lists
    gc.collect()
    objects0 = len(gc.get_objects())
    # RSS last: the object list above must not count as growth.
    blocks0, rss0 = sys.getallocatedblocks(), rss_kib()
    half = WARMUP + LINES // 2
    write(sink, WARMUP, half)
    gc.collect()
    rss1 = rss_kib()
    write(sink, half, WARMUP + LINES)
    gc.collect()
    rss2, blocks2, objects2 = rss_kib(), sys.getallocatedblocks(), len(gc.get_objects())
    pending, dropped = sink.pending, sink.dropped
    sink.close()
    data = PATH.read_bytes()
    PATH.unlink()  # tens of MiB
    lines = data.splitlines()
    ids = [json.loads(line)["request_id"] for line in lines]
    report(
        compiled=fastmw.COMPILED,
        lines=WARMUP + LINES,
        lines_read=len(lines),
        in_order=ids == [f"{index:032x}" for index in range(WARMUP + LINES)],
        ends_with_newline=data.endswith(b"\n"),
        pending_before_close=pending,
        dropped=dropped,
        rss_growth_kib=rss2 - rss0,
        second_half_kib=rss2 - rss1,
        blocks_delta=blocks2 - blocks0,
        objects_delta=objects2 - objects0,
    )


if __name__ == "__main__":
    main()
