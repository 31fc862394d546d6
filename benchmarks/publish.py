"""``python -m benchmarks.publish [--check]``: the docs' benchmark figures, from the last runs (``make bench-publish``).

The figures the docs show live in one file, ``benchmarks/published.json``, written only here:
from ``build/bench/``'s ``bench.json`` (``make bench``), ``instructions.json`` (``make
bench-instructions``), ``metrics.json`` and ``trace-cost.json``, whichever exist. Every block
between ``<!-- published: NAME -->`` and ``<!-- end: NAME -->`` in ``BLOCKS``' files is then
rendered from that file, and the chart is drawn when the ``bench`` figures changed. ``--check``
changes nothing and exits 1 when a block differs from what the file renders (a test runs it: a
figure edited by hand fails it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import RESULTS_DIR, ROOT

PUBLISHED = ROOT / "benchmarks" / "published.json"
CHART = ROOT / "docs" / "benchmarks.png"
# section -> (the run's results file, the keys of it the docs show)
SOURCES = {
    "bench": (
        "bench.json",
        ("generated", "git_revision", "git_dirty", "load_average", "machine", "versions", "config", "comparison"),
    ),
    "instructions": (
        "instructions.json",
        (
            "git_revision",
            "git_dirty",
            "python",
            "versions",
            "requests",
            "seeds",
            "bare_per_request",
            "groups",
            "pure_full_stack",
            "deltas",
            "floors",
        ),
    ),
    "metrics": (
        "metrics.json",
        ("git_revision", "git_dirty", "python", "versions", "instructions", "time", "scrape"),
    ),
    "trace-cost": ("trace-cost.json", ("git_revision", "git_dirty", "python", "iterations", "rows")),
}


def _bench_block(doc: dict[str, Any]) -> str:
    from benchmarks import report

    config, machine, versions = doc["config"], doc["machine"], doc["versions"]
    peers = ", ".join(f"{name} {versions[name]}" for name in ("starlette", "starlette-context", "asgi-correlation-id"))
    return "\n".join(
        [
            report.comparison_table(doc["comparison"], markdown=True),
            "",
            f"The process's CPU time per request, the median of {config['rounds']} rounds of "
            f"{config['requests_per_round']:,} requests, the rows of a line alternating; the last column is the "
            f"cheapest alternative's overhead over fastmw compiled's. {machine['python']}, "
            f"{machine['cpu']} x{machine['cpus']} (load average "
            f"{' to '.join(str(value) for value in doc['load_average'])}), fastmw at "
            f"{doc['git_revision'][:7]}{' with local changes' if doc['git_dirty'] else ''}, {peers}; "
            f"{doc['generated'][:10]}. The machine is shared and noisy: read the ratios within a line, not the "
            "absolute figures.",
            "",
            f"![µs per request over the bare app, log scale]({CHART.relative_to(ROOT)})",
        ]
    )


def _instructions_block(doc: dict[str, Any]) -> str:
    from benchmarks import _instr_groups, instructions

    floors = sorted({row["group"] for row in doc["floors"]})
    titles = {floor.key: floor for floor in _instr_groups.FLOORS if floor.key in floors}
    return "\n".join(
        [
            f"At {doc['git_revision'][:7]}{' with local changes' if doc['git_dirty'] else ''}, {doc['python']}, "
            f"Cython {doc['versions']['Cython']}, uvloop {doc['versions']['uvloop']}.",
            "",
            instructions.table(
                doc["groups"], doc["pure_full_stack"], doc["bare_per_request"], doc["requests"], len(doc["seeds"])
            ),
            instructions.delta_table(doc["deltas"]) if doc["deltas"] else "",
            instructions.floor_table(list(titles.values()), doc["floors"]) if titles else "",
        ]
    ).rstrip()


def _metrics_block(doc: dict[str, Any]) -> str:
    from benchmarks import metrics_cost

    revision = f"{doc['git_revision'][:7]}{' with local changes' if doc['git_dirty'] else ''}"
    return f"{metrics_cost.table(doc)}\n\nAt {revision}, {doc['python']}."


def _metrics_summary(doc: dict[str, Any]) -> str:
    from benchmarks import metrics_cost

    revision = f"{doc['git_revision'][:7]}{' with local changes' if doc['git_dirty'] else ''}"
    return (
        f"{metrics_cost.summary(doc)}\n\nMetricsMiddleware and the exporters users pick, each around the same "
        f"FastAPI app, in one run (instructions counted under callgrind; CPU time on the same shared, noisy "
        f"machine); {doc['python']}, fastmw at {revision}. Every row and the scrape: "
        "[docs/metrics.md](docs/metrics.md#cost)."
    )


def _trace_cost_block(doc: dict[str, Any]) -> str:
    from benchmarks import trace_cost

    return trace_cost.table(doc)


# file -> block name -> its renderer, given the published section of the same name
BLOCKS: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "README.md": {"bench": _bench_block, "metrics": _metrics_summary},
    "benchmarks/README.md": {"instructions": _instructions_block},
    "docs/metrics.md": {"metrics": _metrics_block},
    "docs/tracing.md": {"trace-cost": _trace_cost_block},
}


def _pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- published: {name} -->\n).*?(<!-- end: {name} -->)", re.DOTALL)


def render(text: str, published: dict[str, Any], blocks: dict[str, Callable[[dict[str, Any]], str]]) -> str:
    """``text`` with each block replaced by its rendering (a block whose section is missing is kept)."""
    for name, renderer in blocks.items():
        if name not in published:
            continue
        match = _pattern(name).search(text)
        if match is None:
            raise ValueError(f"no '<!-- published: {name} -->' ... '<!-- end: {name} -->' block")
        text = text[: match.end(1)] + renderer(published[name]).rstrip("\n") + "\n" + text[match.start(2) :]
    return text


def load() -> dict[str, Any]:
    return json.loads(PUBLISHED.read_text()) if PUBLISHED.exists() else {}


def stale(published: dict[str, Any] | None = None) -> list[str]:
    """The files whose blocks differ from what ``published`` renders."""
    published = load() if published is None else published
    stale = []
    for path, blocks in BLOCKS.items():
        text = (ROOT / path).read_text()
        if render(text, published, blocks) != text:
            stale.append(path)
    return stale


def _fresh(section: str, results: Path) -> dict[str, Any] | None:
    """The section from a run's results, or None (absent, or a run the docs must not show)."""
    name, keys = SOURCES[section]
    path = results / name
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    if doc.get("quick"):
        print(f"{path}: a --quick run, not published", file=sys.stderr)
        return None
    rows = [row for group in doc.get("groups", []) for row in group.get("rows", [])]
    errors = [row["name"] for row in rows if row.get("status") == "error"]
    if section == "bench" and errors:
        print(f"{path}: rows failed their checks ({', '.join(errors)}), not published", file=sys.stderr)
        return None
    return {key: doc[key] for key in keys if key in doc}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.publish", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a block is stale")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="the runs' folder (default build/bench)")
    args = parser.parse_args(argv)
    published = load()
    if args.check:
        for path in stale(published):
            print(f"{path}: a published block differs from benchmarks/published.json (run make bench-publish)")
        return 1 if stale(published) else 0
    changed = []
    for section in SOURCES:
        fresh = _fresh(section, args.results)
        if fresh is not None and fresh != published.get(section):
            published[section] = fresh
            changed.append(section)
    if changed:
        PUBLISHED.write_text(json.dumps(published, indent=1, ensure_ascii=False) + "\n")
    if "bench" in changed:
        from benchmarks import chart

        chart.draw(published["bench"], CHART)
    for path, blocks in BLOCKS.items():
        file = ROOT / path
        file.write_text(render(file.read_text(), published, blocks))
    print(f"published: {', '.join(changed) or 'nothing new'} ({args.results})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
