"""The metrics scrape's renderer: ``HistogramChunks`` (``_cy/metrics_render.pxi``) over
counters files that other processes wrote, damaged or cut short.

An input is two option bytes, then one or more file pieces separated by ``FILE_SEPARATOR``.
Option bytes: the first picks OpenMetrics (bit 0) and the bounds' texts (the rest: mostly the
seeds' layout, sometimes another, so that series are read at the wrong size); the second
the chunk size. A file piece is a mode byte, a 16-bit number, then the file's entries (what
a counters file holds after its header, up to its ``W_USED`` word): the target puts a header
before them and, by the mode, sets ``W_USED`` (the entries' end, past the file, near it, or
the number), adds zeros after them, cuts the file, repeats the previous file, or passes it
as a ``bytearray`` (which both twins refuse).

The seeds (``python -m fuzz.targets.metrics`` writes them to ``fuzz/corpus/metrics``) are
files written by a real ``MetricsStore``, so mutations start from valid entries.
"""

from __future__ import annotations

import struct
import sys
import tempfile
from hashlib import sha1
from pathlib import Path
from types import ModuleType
from typing import Any

from fastmw import _metrics_files, metrics
from fastmw._impl import core
from fuzz._differential import compare
from fuzz._input import FuzzInput

FILE_SEPARATOR = b"\n--fmw-file--\n"
HEADER = 4096
W_USED = 4
U64 = (1 << 64) - 1
# The seeds' layout (the store they come from), then others, some refused.
SEED_DURATION = (0.01, 0.1, 1.0)
SEED_SIZE = (10.0, 1000.0)
SEED_LAYOUT = (("0.01", "0.1", "1.0"), ("10.0", "1000.0"))
LAYOUTS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    *[SEED_LAYOUT] * 10,
    (("1",), ("2",)),
    (("0.5", "+Inf"), ("1e+300", "x" * 300, "")),
    (tuple(f"{n / 10}" for n in range(64)), ("0",)),
    ((), ()),
    (tuple("0" * 65), ("1",)),  # too many bounds: ValueError
    (("0.01", "0.1", "1.é"), ("10.0", "1000.0")),  # not ASCII: TypeError
)
CHUNK_SIZES: tuple[Any, ...] = (1, 2, 7, 64, 100, 333, 1000, 4096, 64 * 1024, 1 << 30, 0, -1, (1 << 30) + 1, True)


def _file(piece: bytes, previous: Any) -> Any:
    """One counters file from its piece of the input (see the module's docstring)."""
    source = FuzzInput(piece[:3])
    mode, number = source.byte(), source.byte() << 8 | source.byte()
    entries = piece[3:]
    if mode & 0x80 and previous is not None:
        return previous
    end = HEADER + len(entries)
    used = (end, U64, (end - number) & U64, number)[mode & 3]
    header = bytearray(HEADER)
    header[:8] = _metrics_files.MAGIC
    struct.pack_into("<QQ", header, 8, len(SEED_DURATION), len(SEED_SIZE))
    struct.pack_into("<Q", header, W_USED * 8, used)
    data = bytes(header) + entries + bytes((0, 8, 4096, 5)[mode >> 2 & 3])
    if mode & 0x10:
        data = data[: number % len(data)]  # cut short (a read of a file being truncated)
    if mode & 0x60 == 0x60:
        return bytearray(data)  # not bytes: refused alike
    return data


def _files(pieces: list[bytes]) -> list[Any]:
    files: list[Any] = []
    for piece in pieces:
        files.append(_file(piece, files[-1] if files else None))
    return files


def one_input(data: bytes) -> None:
    """Render the files of ``data`` with both twins: equal chunks and methods, or equal errors."""
    options = FuzzInput(data[:2])
    flags, chunk_size = options.byte(), options.choice(CHUNK_SIZES)
    duration_le, size_le = LAYOUTS[(flags >> 1) % len(LAYOUTS)]
    files = _files(data[2:].split(FILE_SEPARATOR))
    # After this many chunks the renderer is closed (0: read to the end).
    stop = flags >> 5

    def render(core: ModuleType) -> Any:
        chunks = core.HistogramChunks(files, duration_le, size_le, bool(flags & 1), chunk_size)
        taken = []
        for chunk in chunks:
            taken.append(chunk)
            if len(taken) == stop:
                chunks.close()
        return taken, chunks.methods

    sizes = ", ".join(f"{type(data).__name__} of {len(data)} (used {_used(data)})" for data in files)
    compare(f"HistogramChunks([{sizes}], {duration_le!r}, {size_le!r}, {bool(flags & 1)}, {chunk_size!r})", render)


def _used(data: Any) -> int | None:
    return struct.unpack_from("<Q", data, W_USED * 8)[0] if len(data) >= HEADER else None


# --------------------------------------------------------------------------- the seeds


def _recorded(directory: Path, events: list[tuple[Any, ...]]) -> bytes:
    """The entries of the counters file a ``MetricsStore`` writes for ``events``."""
    store = metrics.MetricsStore(directory=directory, duration_buckets=SEED_DURATION, size_buckets=SEED_SIZE)
    table = store.table_for(core)
    for event in events:
        table.record(*event)
    (path,) = directory.glob("*" + _metrics_files.SUFFIX)
    data = path.read_bytes()
    return data[HEADER : struct.unpack_from("<Q", data, W_USED * 8)[0]]


TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
SEED_EVENTS: tuple[list[tuple[Any, ...]], ...] = (
    [("GET", "/a", 200, 0.5, 1, 2)],
    [("GET", "/items/{id}", 200, 0.005, 10, 2000, TRACE, SPAN, 1.7e9), ("POST", "/items/{id}", 201, 2.0, 500, 0)],
    [
        ("BREW", 'q"\\\n', 418, 0.05, 0, 0),
        ("HEAD", None, 0, 0.2, 0, 0, TRACE, SPAN, 2.0),
        ("GET", "é/ü", 999, 1.0, 5, 5),
    ],
    [("DELETE", f"/r{n}", 200 + n, 0.01 * n, n, n, TRACE, SPAN, 1.0 + n) for n in range(4)],
)


def _pad(entries: bytes, size: int) -> bytes:
    """``entries`` with a pad entry of ``size`` bytes after its first route (as at a chunk's end)."""
    route = 16 + (-(-(struct.unpack_from("<Q", entries)[0] >> 32) // 8)) * 8
    pad = struct.pack("<QQ", _metrics_files.PAD | size << 32, 0).ljust(size, b"\0")
    return entries[:route] + pad + entries[route:]


def seed_inputs() -> list[bytes]:
    """Inputs built from the files a real store writes: alone, two processes', cut, padded."""
    with tempfile.TemporaryDirectory() as directory:
        files = [_recorded(Path(directory) / str(n), events) for n, events in enumerate(SEED_EVENTS)]
    whole = b"\0\0\0"  # W_USED at the entries' end, nothing after them
    seeds = [b"\0\x08" + whole + entries for entries in files]
    seeds += [b"\x01\x04" + whole + entries for entries in files]  # OpenMetrics, with exemplars
    seeds.append(b"\x00\x03" + FILE_SEPARATOR.join(whole + entries for entries in files))
    seeds.append(b"\x01\x00" + whole + files[1] + FILE_SEPARATOR + b"\x80\0\0" + FILE_SEPARATOR + whole + files[3])
    seeds.append(b"\x01\x08" + b"\x02\x00\x10" + files[3])  # W_USED 16 bytes short: the last series is cut
    seeds.append(b"\x00\x08" + b"\x0c\x00\x00" + files[2])  # zeros after the entries, W_USED beyond them
    seeds.append(b"\x01\x08" + whole + _pad(files[1], 32))
    return seeds


def write_seeds(folder: Path) -> None:
    """Write the seed inputs into ``folder``, named by their SHA-1 as libFuzzer names them."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seed_inputs():
        (folder / sha1(seed).hexdigest()).write_bytes(seed)


if __name__ == "__main__":
    write_seeds(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "corpus" / "metrics")
