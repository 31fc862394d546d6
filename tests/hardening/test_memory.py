"""Memory: many requests, websocket sessions, failing requests and a large stream through
the full stack in one process, and many lines through the JSON sink; RSS, allocator blocks,
gc objects and probe refcounts.

Each scenario runs in a subprocess (tests/leak_scripts/) in this run's core mode.
Counts scale with FASTMW_LEAK_SCALE (default 1: 10^5 requests, 10^4 websocket sessions
and raising requests, 500 MiB streamed; 10 gives the full 10^6/10^5).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import fastmw
from tests.hardening._subprocess import run_script, scaled
from tests.test_leaks_core import CORE_PROBES

RSS_BUDGET_KIB = 2048
# After warm-up the second half of the run may grow at most this much: measured growth
# is 0 KiB without a leak, while a leak grows both halves alike (the shared-error-response
# bug this caught grew ~500 KiB per 10^4 refusals).
TREND_SLACK_KIB = 192
STREAM_BUDGET_KIB = 16 * 1024
STREAM_MEBIBYTES = 500
# A leak of one allocator block or one gc object per request shows as thousands.
BLOCKS_BUDGET = 1000
OBJECTS_BUDGET = 100
COUNTS = {"http": 100_000, "websocket": 10_000, "raising": 10_000, "rejected": 20_000, "context": 100_000}
PROBES = {"scope": 0, "headers": 0, "message": 0, "start": 0, "context": 0}


def check_requests(figures: dict[str, object], expect_probes: bool) -> None:
    assert figures["compiled"] is fastmw.COMPILED
    assert figures["rss_growth_kib"] < RSS_BUDGET_KIB, figures  # type: ignore[operator]
    assert figures["second_half_kib"] < TREND_SLACK_KIB, figures  # type: ignore[operator]
    assert figures["blocks_delta"] < BLOCKS_BUDGET, figures  # type: ignore[operator]
    assert figures["objects_delta"] < OBJECTS_BUDGET, figures  # type: ignore[operator]
    assert figures["ref_deltas"] == (PROBES if expect_probes else {}), figures


@pytest.mark.slow
@pytest.mark.parametrize("scenario", sorted(COUNTS))
def test_full_stack_requests_do_not_leak(scenario: str) -> None:
    figures = run_script("tests.leak_scripts.stack_requests", scenario, str(scaled(COUNTS[scenario])))
    check_requests(figures, expect_probes=scenario in ("http", "raising", "context"))


@pytest.mark.slow
def test_streaming_is_not_buffered() -> None:
    mebibytes = scaled(STREAM_MEBIBYTES)
    figures = run_script("tests.leak_scripts.stack_stream", str(mebibytes))
    assert figures["bytes_echoed"] == mebibytes * 1024 * 1024
    assert figures["peak_growth_kib"] < STREAM_BUDGET_KIB, figures
    assert figures["rss_growth_kib"] < STREAM_BUDGET_KIB, figures


# The JSON sink over its own thread: lines written in all (FASTMW_LEAK_SCALE scales it). Its
# thread's malloc arena moves RSS by up to ~528 KiB between runs with no object or block growth,
# so RSS gets generous slack; a leak of 16 bytes a line still shows as 3 MiB per half.
SINK_LINES = 200_000
SINK_RSS_BUDGET_KIB = 4096
SINK_TREND_SLACK_KIB = 2048


@pytest.mark.slow
@pytest.mark.once  # both twins here, in the compiled pass
@pytest.mark.parametrize("twin", ["compiled", "pure"])
def test_the_json_sink_does_not_leak(tmp_path: Path, twin: str) -> None:
    if twin == "compiled":
        pytest.importorskip("fastmw._core")
    env = {"FASTMW_NO_EXTENSIONS": "1" if twin == "pure" else "0"}
    lines = scaled(SINK_LINES)
    figures = run_script("tests.leak_scripts.sink_lines", str(tmp_path / "access.jsonl"), str(lines), env=env)
    assert figures["compiled"] is (twin == "compiled")
    # Every line written, whole and in order, none dropped or left waiting.
    assert figures["lines_read"] == figures["lines"] > lines, figures
    assert figures["in_order"] and figures["ends_with_newline"], figures
    assert figures["dropped"] == 0 and figures["pending_before_close"] == 0, figures
    assert figures["blocks_delta"] < BLOCKS_BUDGET, figures
    assert figures["objects_delta"] < OBJECTS_BUDGET, figures
    assert figures["rss_growth_kib"] < SINK_RSS_BUDGET_KIB, figures
    assert figures["second_half_kib"] < SINK_TREND_SLACK_KIB, figures


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("tests.leak_scripts.core_ops", ("compiled" if fastmw.COMPILED else "pure", "1000")),
        ("tests.leak_scripts.stack_requests", ("http", "3000")),
        ("tests.leak_scripts.stack_requests", ("websocket", "2000")),
        ("tests.leak_scripts.stack_requests", ("raising", "2000")),
        ("tests.leak_scripts.stack_stream", ("32",)),
    ],
    ids=["core_ops", "http", "websocket", "raising", "stream"],
)
def test_leak_scripts_under_debug_allocator(module: str, args: tuple[str, ...]) -> None:
    """PYTHONMALLOC=debug catches buffer overruns, double frees and use after free (the
    child aborts with a 'Debug memory block' fatal error) and API misuse without the GIL."""
    figures = run_script(module, *args, env={"PYTHONMALLOC": "debug", "PYTHONDEVMODE": "1"})
    assert "Debug memory block" not in figures["stderr"]
    assert "Fatal Python error" not in figures["stderr"]
    assert figures.get("ref_deltas", {}) in ({}, PROBES, dict.fromkeys(CORE_PROBES, 0))


@pytest.mark.slow
def test_metrics_renderers_do_not_leak() -> None:
    # Scrapes rendered whole, half-read and abandoned, closed early: each compiled round would keep
    # tens of KiB of C memory if it were not freed.
    twin = "compiled" if fastmw.COMPILED else "pure"
    figures = run_script("tests.leak_scripts.metrics_chunks", twin, str(20_000 if fastmw.COMPILED else 500))
    assert figures["data_refs"] == 0, figures
    assert figures["rss_growth_kib"] < RSS_BUDGET_KIB, figures
