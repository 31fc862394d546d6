"""Hands interleaved samples to pytest-benchmark so its grouped tables show them."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks._measure import GroupResult


def record(benchmark: Any, result: GroupResult, row_name: str) -> None:
    """Report ``row_name`` of ``result`` through the ``benchmark`` fixture (skip when n/a)."""
    row = result.rows[row_name]
    if row.status == "n/a":
        pytest.skip(f"n/a: {row.reason}")
    if row.status == "error":
        pytest.fail(f"{result.name} / {row_name}: {row.reason}")
    benchmark.group = result.name
    benchmark.extra_info.update(kind=row.kind, driver=result.driver, per_round=result.per_round)
    # pytest-benchmark times one target per test; our rounds were timed interleaved
    # across the whole group, so feed them in the way pedantic() does internally
    # (a round of ``per_round`` items -> stats.update(round seconds)).
    stats = benchmark._make_stats(result.per_round)
    for seconds_per_item in row.samples:
        stats.update(seconds_per_item * result.per_round)
    benchmark._mode = "interleaved rounds (benchmarks._measure)"
