"""``python -m benchmarks [-k WORD ...] [--quick]``: the comparison table (``make bench``).

Measures every group (``stacks.groups()``), prints the comparison table first, then writes
``build/bench/bench.json`` (every row, every round), ``build/bench/tables.txt`` (one detail
table per group) and ``build/bench/chart.png``. ``python -m benchmarks.publish`` puts the
table and the chart into the README from that file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks import RESULTS_DIR, ROOT, without_sentry


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("-k", dest="words", nargs="+", metavar="WORD", help="only the groups whose key has a WORD")
    parser.add_argument("--quick", action="store_true", help="a few rounds of a few requests (a smoke run)")
    parser.add_argument("--rounds", type=int, help="rounds per group (default 30)")
    parser.add_argument("--batch", type=int, help="requests per round (default 1000)")
    parser.add_argument("--out", default=RESULTS_DIR, type=Path, help="where the results go (default build/bench)")
    args = parser.parse_args(argv)
    without_sentry()
    from benchmarks import _measure, chart, report, stacks

    rounds = args.rounds or (_measure.QUICK_ROUNDS if args.quick else _measure.ROUNDS)
    batch = args.batch or (_measure.QUICK_BATCH if args.quick else _measure.BATCH)
    keys = [key for key in stacks.GROUPS if not args.words or any(word in key for word in args.words)]
    if not keys:
        print(f"no group matches {args.words}; groups: {', '.join(stacks.GROUPS)}", file=sys.stderr)
        return 2
    start = report.started()
    results = []
    for group in stacks.groups(keys):
        print(f"measuring {group.key} ({len(group.stacks)} rows)...", file=sys.stderr, flush=True)
        results.append(_measure.measure(group, rounds, batch))
    doc = report.document(results, start, quick=args.quick or rounds < _measure.ROUNDS)
    config, machine = doc["config"], doc["machine"]
    print()
    print(report.comparison_table(doc["comparison"]))
    print()
    print(
        f"medians of {config['rounds']} rounds x {config['requests_per_round']} requests, rounds alternating; "
        f"{machine['python']}, {machine['cpu']} x{machine['cpus']} (load average {doc['load_average'][0]} at the "
        f"start, {doc['load_average'][1]} at the end), fastmw at {doc['git_revision'][:10]}"
        f"{' with local changes' if doc['git_dirty'] else ''}"
    )
    errors = [row for group in doc["groups"] for row in group["rows"] if row["status"] == "error"]
    for row in errors:
        print(f"ERROR: {row['name']}: {row['reason']}", file=sys.stderr)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "tables.txt").write_text(report.detail_tables(results) + "\n")
    chart.draw(doc, out / "chart.png")
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"every row and round: {shown}/bench.json; per-group tables: {shown}/tables.txt; chart: {shown}/chart.png")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
