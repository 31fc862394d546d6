"""Measures whole groups once (interleaved) and keeps the results for the report.

The pytest-benchmark tests ask for a group's samples; the first ask measures
every row of the group together, so rows of one table share the same rounds.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from benchmarks import _driver, core_ops, stacks
from benchmarks._rows import Group, Stack

QUICK = os.environ.get("FASTMW_BENCH_QUICK", "") == "1"
ROUNDS = int(os.environ.get("FASTMW_BENCH_ROUNDS", "3" if QUICK else "30"))
BATCH = int(os.environ.get("FASTMW_BENCH_BATCH", "20" if QUICK else "1000"))
CORE_BATCH = int(os.environ.get("FASTMW_BENCH_CORE_BATCH", "200" if QUICK else "50000"))
WARMUP = 1


@dataclass
class Row:
    name: str
    kind: str
    variant: str = ""
    status: str = "ok"  # ok | n/a | error
    reason: str = ""
    samples: list[float] = field(default_factory=list)  # seconds per item (request or op), one per round

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
    name: str
    kind: str  # core | middleware
    driver: str
    per_round: int
    rounds: int
    rows: dict[str, Row]


RESULTS: dict[str, GroupResult] = {}


def _store(result: GroupResult, samples: dict[str, list[float]]) -> GroupResult:
    for name, seconds in samples.items():
        result.rows[name].samples = [value / result.per_round for value in seconds]
    RESULTS[result.name] = result
    return result


def core_group(op: str) -> GroupResult:
    """``core: <op>``: the compiled and pure twins doing ``op``."""
    name = f"core: {op}"
    if name in RESULTS:
        return RESULTS[name]
    rows: dict[str, Row] = {}
    batches: dict[str, Callable[[], float]] = {}
    for twin, module in core_ops.twins().items():
        rows[twin] = Row(twin, "fastmw-c" if twin == "compiled" else "fastmw-py")
        if module is None:
            rows[twin].status, rows[twin].reason = "n/a", "compiled core not built"
        else:
            batches[twin] = partial(core_ops.OPS[op](module), CORE_BATCH)
    result = GroupResult(name, "core", "call", CORE_BATCH, ROUNDS, rows)
    return _store(result, _driver.interleave(batches, ROUNDS, WARMUP))


def _check(stack: Stack, app: _driver.ASGIApp, group: Group, inner: _driver.ASGIApp) -> str:
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
    return "" if stack.check is None else stack.check(inner)


def middleware_group(group: Group) -> GroupResult:
    """Every stack of ``group`` around the group's inner app, interleaved."""
    if group.name in RESULTS:
        return RESULTS[group.name]
    inner = stacks.inner_app(group.inner)
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
                app = stack.build(inner)
                problem = _check(stack, app, group, inner)
            except Exception as exc:  # a broken stack is reported in its row, the others still run
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                row.status, row.reason = "error", problem
                continue
            batches[stack.name] = partial(run, app, BATCH, group.headers)
            if stack.before is not None:
                before[stack.name] = stack.before
        result = GroupResult(group.name, "middleware", group.driver, BATCH, ROUNDS, rows)
        return _store(result, _driver.interleave(batches, ROUNDS, WARMUP, before))
