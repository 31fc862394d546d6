"""What a ``make bench`` run found: the comparison table, the per-group detail tables, the results file.

The comparison table has one line per work (a group, or a variant of it) and one column per
kind of row: fastmw compiled, fastmw pure, then the peers (``KIND_TITLES``; a kind not listed
there gets a column of its own, after them). A cell is the row's median overhead over the bare
app, in microseconds per request.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

from benchmarks import _driver, revision, versions
from benchmarks._measure import WARMUP, GroupResult, Row

FASTMW_KINDS = ("fastmw-c", "fastmw-py")
KIND_TITLES = {
    "fastmw-c": "fastmw compiled",
    "fastmw-py": "fastmw pure",
    "starlette-context": "starlette-context",
    "asgi-correlation-id": "asgi-correlation-id",
    "hand": "hand-written",
    "basehttp": "BaseHTTPMiddleware",
}
VERSUS = "alternative / compiled"
NA = "n/a"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "event_loop": _driver.loop_name(),
    }


# --------------------------------------------------------------------------- numbers


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


def _first(result: GroupResult, kind: str, variant: str) -> Row | None:
    return next((row for row in result.rows.values() if row.kind == kind and row.variant == variant), None)


def summarize(result: GroupResult) -> list[dict[str, Any]]:
    """Every row with its median, spread and overhead over the bare app (None where not measured)."""
    bare = _first(result, "bare", "")
    bare_ns = bare.median_ns if bare else None

    def overhead(row: Row | None) -> float | None:
        if row is None or row.median_ns is None or bare_ns is None or row.kind == "bare":
            return None
        return row.median_ns - bare_ns

    rows = []
    for row in result.rows.values():
        hand = _first(result, "hand", row.variant)
        rows.append(
            {
                "name": row.name,
                "kind": row.kind,
                "variant": row.variant,
                "status": row.status,
                "reason": row.reason,
                "median_ns": row.median_ns,
                "min_ns": row.min_ns,
                "iqr_pct": row.iqr_pct,
                "overhead_ns": overhead(row),
                "overhead_vs_hand": _ratio(overhead(row), overhead(hand)),
            }
        )
    return rows


def comparison(results: list[GroupResult]) -> dict[str, Any]:
    """The comparison table's data: its columns (kind, title) and one line per compared work."""
    lines = []
    kinds: list[str] = []
    for result in results:
        summary = {row["name"]: row for row in summarize(result)}
        for variant in result.group.compared_variants():
            cells: dict[str, float | str] = {}
            spread: list[float] = []
            for row in result.rows.values():
                if row.variant != variant or row.kind == "bare" or row.kind in cells:
                    continue
                kinds.append(row.kind)
                measured = summary[row.name]
                cells[row.kind] = row.status if measured["overhead_ns"] is None else round(measured["overhead_ns"], 1)
                if measured["iqr_pct"] is not None:
                    spread.append(measured["iqr_pct"])
            work = variant or result.group.title
            spread_pct = max(spread, default=None)
            lines.append({"work": work, "group": result.group.key, "cells": cells, "max_iqr_pct": spread_pct})
    known = [kind for kind in KIND_TITLES if kind in kinds]
    columns = [*known, *dict.fromkeys(kind for kind in kinds if kind not in KIND_TITLES)]
    return {"columns": [[kind, KIND_TITLES.get(kind, kind)] for kind in columns], "lines": lines}


def versus(cells: dict[str, float | str]) -> float | None:
    """The cheapest alternative's overhead over fastmw compiled's (None without both): how many
    times fastmw compiled's cost the cheapest other way of doing the same work costs."""
    peers = [value for kind, value in cells.items() if kind not in FASTMW_KINDS and isinstance(value, float)]
    compiled = cells.get("fastmw-c")
    if not peers or not isinstance(compiled, float):
        return None
    return _ratio(min(peers), compiled)


# --------------------------------------------------------------------------- text


def _us(value: float | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else f"{value / 1000:,.2f}"


def _times(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}x"


def _table(header: list[str], lines: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        align = ["---", *["---:"] * (len(header) - 1)]
        return "\n".join("| " + " | ".join(line) + " |" for line in [header, align, *lines])
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([fmt.format(*header), rule, *(fmt.format(*line) for line in lines)])


def comparison_table(data: dict[str, Any], markdown: bool = False) -> str:
    """The comparison table, aligned text for the terminal or Markdown for the README."""
    kinds = [kind for kind, _ in data["columns"]]
    header = ["µs per request over the bare app", *(title for _, title in data["columns"]), VERSUS]
    lines = [
        [line["work"], *(_us(line["cells"].get(kind)) for kind in kinds), _times(versus(line["cells"]))]
        for line in data["lines"]
    ]
    return _table(header, lines, markdown)


def detail_tables(results: list[GroupResult]) -> str:
    """One table per group: every row's median, minimum, spread and overhead."""
    blocks = []
    for result in results:
        lines = []
        for row in summarize(result):
            if row["status"] != "ok":
                lines.append([row["name"], row["status"], "", "", "", row["reason"][:60]])
                continue
            lines.append(
                [
                    row["name"],
                    f"{row['median_ns']:,.0f}",
                    f"{row['min_ns']:,.0f}",
                    NA if row["iqr_pct"] is None else f"{row['iqr_pct']:.1f}",
                    "-" if row["overhead_ns"] is None else f"{row['overhead_ns']:,.0f}",
                    _times(row["overhead_vs_hand"]) or "-",
                ]
            )
        group = result.group
        title = f"{group.key}  ({group.driver} driver, {result.rounds} rounds x {result.per_round} requests)"
        blocks.append(_table([title, "ns/req", "min", "IQR%", "overhead", "overhead / hand-written"], lines))
    return "\n\n".join(blocks)


# --------------------------------------------------------------------------- the results file


def started() -> dict[str, Any]:
    """What the results file says about the start of a run: the code measured, the machine's load."""
    return {"time": time.time(), **revision(), "load_average": load_average()}


def load_average() -> float | None:
    """The machine's one-minute load average (None where the OS has none)."""
    return round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None


def document(results: list[GroupResult], start: dict[str, Any], quick: bool) -> dict[str, Any]:
    """The results file; ``start`` is ``started()`` taken before the first group was measured."""
    first = results[0] if results else None
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(time.time() - start["time"], 1),
        "git_revision": start["git_revision"],
        "git_dirty": start["git_dirty"],
        "load_average": [start["load_average"], load_average()],
        "quick": quick,
        "machine": machine(),
        "versions": versions(),
        "config": {
            "rounds": first.rounds if first else 0,
            "requests_per_round": first.per_round if first else 0,
            "warmup_rounds": WARMUP,
        },
        "comparison": comparison(results),
        "groups": [
            {
                "key": r.group.key,
                "driver": r.group.driver,
                "rows": [
                    {**row, "samples_ns": [round(s * 1e9, 1) for s in r.rows[row["name"]].samples]}
                    for row in summarize(r)
                ],
            }
            for r in results
        ],
    }
