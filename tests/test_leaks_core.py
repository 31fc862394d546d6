"""Core operations and the request engine do not leak: run in a subprocess (every stage,
served, refused and failing requests), bounded RSS growth, exact refcounts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Each iteration is a round of core operations and eleven requests through pipelines.
ITERATIONS = 30_000
RSS_BUDGET_KIB = 2048
# The probe objects tests/leak_scripts/core_ops.py reports the reference counts of.
CORE_PROBES = ("name", "value", "headers", "app_headers", "context", "app", "pipeline", "stage", "context_stage")


def run_script(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.once  # the core fixture gives both twins in the compiled pass
def test_core_operations_do_not_leak(core: ModuleType) -> None:
    twin = "pure" if core.__name__.endswith("_py") else "compiled"
    figures = run_script("tests.leak_scripts.core_ops", twin, str(ITERATIONS))
    assert figures["ref_deltas"] == dict.fromkeys(CORE_PROBES, 0), figures
    assert figures["rss_growth_kib"] < RSS_BUDGET_KIB, figures
