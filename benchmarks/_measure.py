"""Measures a group: every row checked once, then timed in interleaved rounds (``_driver``)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from benchmarks import _driver, stacks
from benchmarks._rows import Group, Stack

ROUNDS, BATCH = 30, 1000  # rounds per group, requests per round
QUICK_ROUNDS, QUICK_BATCH = 3, 20
WARMUP = 1


@dataclass
class Row:
    name: str
    kind: str
    variant: str = ""
    status: str = "ok"  # ok | n/a | error
    reason: str = ""
    samples: list[float] = field(default_factory=list)  # seconds per request, one per round

    @property
    def median_ns(self) -> float | None:
        return statistics.median(self.samples) * 1e9 if self.samples else None

    @property
    def min_ns(self) -> float | None:
        return min(self.samples) * 1e9 if self.samples else None

    @property
    def iqr_pct(self) -> float | None:
        if len(self.samples) < 4:
            return None
        q1, _, q3 = statistics.quantiles(self.samples, n=4)
        return (q3 - q1) / statistics.median(self.samples) * 100


@dataclass
class GroupResult:
    group: Group
    per_round: int
    rounds: int
    rows: dict[str, Row]


def _check(stack: Stack, app: _driver.ASGIApp, group: Group) -> str:
    """Why one request of ``group`` through ``app``, or the row's own check, looks wrong ('' when fine)."""
    if stack.before is not None:
        stack.before()
    capture = _driver.request_once(app, group.headers)
    if capture.status != 200 or capture.body != b"ok":
        return f"expected 200 'ok', got {capture.status} {capture.body[:40]!r}"
    for header, value in stack.expect.items():
        got = capture.headers.get(header.encode())
        if got is None or (value is not None and got != value):
            return f"response header {header}: expected {value!r}, got {got!r}"
    return "" if stack.check is None else stack.check(stacks.raw_app)


def measure(group: Group, rounds: int = ROUNDS, batch: int = BATCH) -> GroupResult:
    """Every stack of ``group`` around the raw endpoint, interleaved; a broken row is reported in it."""
    run = _driver.run_loop if group.driver == "loop" else _driver.run_sync
    rows, before = {}, {}
    batches: dict[str, Callable[[], float]] = {}
    with stacks.saved_loggers():
        for stack in group.stacks:
            row = rows[stack.name] = Row(stack.name, stack.kind, stack.variant)
            if stack.build is None:
                row.status, row.reason = "n/a", stack.missing
                continue
            try:
                app = stack.build(stacks.raw_app)
                problem = _check(stack, app, group)
            except Exception as exc:  # a broken stack is reported in its row, the others still run
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                row.status, row.reason = "error", problem
                continue
            batches[stack.name] = partial(run, app, batch, group.headers)
            if stack.before is not None:
                before[stack.name] = stack.before
        samples = _driver.interleave(batches, rounds, WARMUP, before)
    for name, seconds in samples.items():
        rows[name].samples = [value / batch for value in seconds]
    return GroupResult(group, batch, rounds, rows)
