"""Middleware groups: bare app vs fastmw (compiled, pure) vs competitors vs hand-written."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import _measure, stacks
from benchmarks._record import record

GROUPS = {group.name: group for group in stacks.groups()}
CASES = [pytest.param(g.name, s.name, id=f"{g.name}-{s.name}") for g in GROUPS.values() for s in g.stacks]


@pytest.mark.parametrize(("group", "stack"), CASES)
def test_middleware(benchmark: Any, group: str, stack: str) -> None:
    record(benchmark, _measure.middleware_group(GROUPS[group]), stack)
