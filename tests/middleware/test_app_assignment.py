"""Fusion and ``stack()`` never change what is served: setting ``.app`` at any level of a chain
is seen by every pipeline that runs that level, exactly as with every middleware a layer of its
own (``FASTMW_NO_FUSE=1``), on both core twins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fastmw.middleware._fusion import FUSE
from tests.middleware import _app_assignment

ROOT = Path(__file__).resolve().parent.parent.parent


def unfused_report() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.middleware._app_assignment"],
        cwd=ROOT,
        env={**os.environ, "FASTMW_NO_FUSE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_every_level_serves_the_app_set_on_it() -> None:
    # The model: after ``level.app = new`` (an app, or a middleware around one), the
    # outermost app and every level down to the one set (and the new middleware) serve ``new``.
    for name, core in _app_assignment.cores().items():
        report = _app_assignment.report(core)
        for chain, rows in report.items():
            for index, (replacement, outermost, *by_level) in enumerate(rows):
                level = index // 2
                expected_new = f"new {level}"
                assert outermost == expected_new, (name, chain, replacement, level)
                depth = level + (2 if replacement == "middleware" else 1)
                assert by_level == [expected_new] * depth, (name, chain, replacement, level)


def test_fused_and_unfused_serve_the_same_apps() -> None:
    assert FUSE, "this process runs with fusion on"
    fused = {name: _app_assignment.report(core) for name, core in _app_assignment.cores().items()}
    assert fused == unfused_report()
