"""Core operations and the request engine do not leak: run in a subprocess (every stage,
served, refused and failing requests), bounded RSS growth, exact refcounts."""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.hardening._subprocess import run_script

# Each iteration is a round of core operations and eleven requests through pipelines.
ITERATIONS = 30_000
RSS_BUDGET_KIB = 2048
# The probe objects tests/leak_scripts/core_ops.py reports the reference counts of.
CORE_PROBES = ("name", "value", "headers", "app_headers", "context", "app", "pipeline", "stage", "context_stage")


@pytest.mark.slow
@pytest.mark.once  # the core fixture gives both twins in the compiled pass
def test_core_operations_do_not_leak(core: ModuleType) -> None:
    twin = "pure" if core.__name__.endswith("_py") else "compiled"
    figures = run_script("tests.leak_scripts.core_ops", twin, str(ITERATIONS))
    assert figures["ref_deltas"] == dict.fromkeys(CORE_PROBES, 0), figures
    assert figures["rss_growth_kib"] < RSS_BUDGET_KIB, figures
