"""``python -m benchmarks [pytest args]``: run the suite, print the summary, write the results.

Runs pytest-benchmark over ``benchmarks/`` (grouped tables), then prints one
summary table and writes ``results/latest.json`` and ``results/latest.png``.
``FASTMW_BENCH_QUICK=1`` makes a seconds-long smoke run (results go to
``results/quick.*`` so ``latest`` is kept); FASTMW_BENCH_ROUNDS / _BATCH /
_CORE_BATCH tune the run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from benchmarks import without_sentry

HERE = Path(__file__).parent
PYTEST_ARGS = [
    str(HERE),
    "-p",
    "no:cacheprovider",
    "-q",
    "--benchmark-group-by=group",
    "--benchmark-sort=mean",
    "--benchmark-columns=min,median,mean,iqr,rounds",
]


def main(argv: list[str]) -> int:
    started = time.time()
    quick = os.environ.get("FASTMW_BENCH_QUICK", "") == "1"
    stem = "quick" if quick else "latest"
    raw = HERE / "results" / f"{stem}-pytest-benchmark.json"
    # Import nothing that imports starlette/anyio before pytest starts: its plugin
    # rewrite check warns about already-imported modules, and warnings are errors.
    without_sentry()
    code = pytest.main([*PYTEST_ARGS, f"--benchmark-json={raw}", *argv])
    from benchmarks import _measure, _twins, chart, report

    for problem in _twins.verify():
        print(f"WARNING: {problem}", file=sys.stderr)
    results = list(_measure.RESULTS.values())
    if not results:
        print("no benchmark results", file=sys.stderr)
        return int(code) or 1
    doc = report.document(results, started)
    print()
    print(f"machine: {doc['machine']}")
    print(f"versions: {doc['versions']}")
    print()
    print(report.text(results))
    report.write_json(doc, report.RESULTS_DIR / f"{stem}.json")
    chart.draw(doc, report.RESULTS_DIR / f"{stem}.png")
    print(f"\nwrote {report.RESULTS_DIR / stem}.json and .png ({doc['duration_s']} s)")
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
