"""Core operations, compiled twin vs pure twin (one pytest-benchmark group per operation)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import _measure, core_ops
from benchmarks._record import record


@pytest.mark.parametrize("twin", ["compiled", "pure"])
@pytest.mark.parametrize("op", list(core_ops.OPS))
def test_core(benchmark: Any, op: str, twin: str) -> None:
    record(benchmark, _measure.core_group(op), twin)
