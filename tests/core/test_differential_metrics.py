"""Differential: the metrics table and the scrape's renderer give the same bytes, in the same
chunks, in both twins."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fastmw import metrics
from fastmw._impl import core

# The core fixture gives both twins in the compiled pass.
pytestmark = pytest.mark.once

METHODS = st.sampled_from(["GET", "POST", "HEAD", "BREW", "get", ""])
ROUTES = st.one_of(st.none(), st.sampled_from(["/a", "/items/{id}", 'q"\\\n', "é/ü", ""]), st.text(max_size=12))
HEX = "0123456789abcdef"
EVENTS = st.lists(
    st.tuples(
        METHODS,
        ROUTES,
        st.sampled_from([200, 201, 404, 500, 0, 999, 1000, -5]),
        st.floats(min_value=0, max_value=20, allow_nan=False),
        st.integers(min_value=0, max_value=20_000),
        st.integers(min_value=0, max_value=20_000),
        st.one_of(st.none(), st.tuples(st.text(HEX, min_size=32, max_size=32), st.text(HEX, min_size=16, max_size=16))),
        st.floats(min_value=1.0, max_value=2e9, allow_nan=False),
    ),
    max_size=40,
)


def files_recorded(twin: ModuleType, events: list[Any], directory: Path) -> list[bytes]:
    store = metrics.MetricsStore(directory=directory, duration_buckets=(0.01, 0.1, 1.0), size_buckets=(10.0, 1000.0))
    table = store.table_for(twin)
    for method, route, status, duration, request_bytes, response_bytes, ids, when in events:
        trace, span = ids if ids is not None else (None, None)
        table.record(method, route, status, duration, request_bytes, response_bytes, trace, span, when)
    return [path.read_bytes() for path in sorted(directory.glob("*.fmw"))]


def rendered(twin: ModuleType, files: list[bytes], *args: Any) -> tuple[list[bytes], int]:
    """The chunks ``twin``'s renderer yields, and the methods it saw."""
    chunks = twin.HistogramChunks(files, *args)
    return list(chunks), chunks.methods


CHUNK_SIZES = st.one_of(st.integers(min_value=1, max_value=4000), st.just(64 * 1024))


@settings(max_examples=60)
@given(events=EVENTS, openmetrics=st.booleans(), chunk_size=CHUNK_SIZES)
def test_record_and_render_agree(
    twins: tuple[ModuleType, ModuleType], events: list[Any], openmetrics: bool, chunk_size: int
) -> None:
    compiled, pure = twins
    with tempfile.TemporaryDirectory() as directory:
        from_compiled = files_recorded(compiled, events, Path(directory) / "c")
        from_pure = files_recorded(pure, events, Path(directory) / "p")
    args = (("0.01", "0.1", "1.0"), ("10.0", "1000.0"), openmetrics, chunk_size)
    # The same chunks, not only the same text: a chunk ends at the same block in both.
    chunks = rendered(compiled, from_compiled, *args)
    assert chunks == rendered(pure, from_compiled, *args)
    assert chunks == rendered(pure, from_pure, *args)
    # Two processes' files add up: the same file twice doubles every count.
    doubled = rendered(compiled, from_compiled * 2, *args)
    assert doubled == rendered(pure, from_compiled * 2, *args)


@settings(max_examples=20, deadline=None)
@given(chunk_size=st.integers(min_value=1, max_value=300_000), openmetrics=st.booleans())
def test_large_renders_chunk_alike(twins: tuple[ModuleType, ModuleType], chunk_size: int, openmetrics: bool) -> None:
    compiled, pure = twins
    args = (("0.01", "0.1", "1.0"), ("10.0", "1000.0"), openmetrics, chunk_size)
    chunks = rendered(compiled, large_files(), *args)
    assert chunks == rendered(pure, large_files(), *args)
    assert sum(map(len, chunks[0])) > 300_000


@functools.cache
def large_files() -> list[bytes]:
    """Two processes' files of 300 series each (with exemplars), half of them shared."""
    events = [
        (
            method,
            f"/r{route}/{{id}}",
            200 + route % 3,
            0.05 * route,
            route,
            2 * route,
            ("a" * 32, "b" * 16),
            1.0 + route,
        )
        for route in range(100)
        for method in ("GET", "POST", "BREW")
    ]
    with tempfile.TemporaryDirectory() as directory:
        return files_recorded(core, events, Path(directory) / "a") + files_recorded(
            core, events[150:] + [(m, r.upper(), *rest) for m, r, *rest in events[:150]], Path(directory) / "b"
        )


@settings(max_examples=200)
@given(data=st.binary(min_size=0, max_size=6000), cut=st.integers(min_value=0, max_value=6000))
# A damaged bucket count near 2**64: the sums across files wrap alike in both twins.
@example(data=bytes(16) + b"\x10" + bytes(7) + b"\xf0", cut=4151)
def test_damaged_files_render_alike(twins: tuple[ModuleType, ModuleType], data: bytes, cut: int) -> None:
    compiled, pure = twins
    with tempfile.TemporaryDirectory() as directory:
        (good,) = files_recorded(compiled, [("GET", "/a", 200, 0.5, 1, 2, None, 1.0)], Path(directory))
    damaged = [good[:cut] + data + good[cut + len(data) :], good[: 4096 + cut], data]
    args = (("0.01", "0.1", "1.0"), ("10.0", "1000.0"), True, 1 + cut % 700)
    assert rendered(compiled, damaged, *args) == rendered(pure, damaged, *args)


def test_render_refuses_what_is_not_bytes(twins: tuple[ModuleType, ModuleType]) -> None:
    for twin in twins:
        for files, le, error in (([bytearray(8)], ("1.0",), "files must hold bytes"), ([], (1.0,), "ASCII str")):
            try:
                twin.HistogramChunks(files, le, ("1.0",), False)
            except TypeError as exc:
                assert error in str(exc)
            else:
                raise AssertionError(f"{twin.__name__} took {files!r}, {le!r}")
