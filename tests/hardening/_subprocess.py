"""Run a leak script in a fresh interpreter (same core mode as this run) and read its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
TIMEOUT = 1800
# Multiplies every leak-test count; FASTMW_LEAK_SCALE=10 gives the full counts (10^6 requests).
SCALE = float(os.environ.get("FASTMW_LEAK_SCALE", "1") or "1")


def scaled(count: int) -> int:
    """``count`` times FASTMW_LEAK_SCALE (at least 1)."""
    return max(int(count * SCALE), 1)


def run_script(module: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m module args`` from the repository root; returns its JSON report plus
    ``seconds`` and ``stderr``. The child inherits FASTMW_NO_EXTENSIONS, so it runs the
    same core twin as the test run."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    figures["seconds"] = round(time.perf_counter() - started, 2)
    figures["stderr"] = result.stderr
    return figures
