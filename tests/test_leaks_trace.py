"""The trace kernel does not leak: run in a subprocess, bounded RSS growth, exact refcounts."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.hardening._subprocess import run_script
from tests.test_leaks_core import RSS_BUDGET_KIB

ITERATIONS = 30_000


@pytest.mark.slow
@pytest.mark.once  # the core fixture gives both twins in the compiled pass
def test_trace_kernel_does_not_leak(core: ModuleType) -> None:
    twin = "pure" if core.__name__.endswith("_py") else "compiled"
    figures = run_script("tests.leak_scripts.trace_ops", twin, str(ITERATIONS))
    assert figures["ref_deltas"] == {"traceparent": 0, "tracestate": 0, "headers": 0, "split": 0}
    assert figures["rss_growth_kib"] < RSS_BUDGET_KIB, figures
