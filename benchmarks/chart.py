"""The bar chart of a run (``results/latest.png``), drawn with matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "bare": "#9e9e9e",
    "fastmw-c": "#1b7837",
    "fastmw-py": "#7fbf7b",
    "competitor": "#2166ac",
    "hand": "#e08214",
    "basehttp": "#b2182b",
}


def _core_axes(ax: Any, groups: list[dict[str, Any]]) -> None:
    names = [g["name"].removeprefix("core: ") for g in groups]
    for offset, twin, color in ((-0.2, "compiled", COLORS["fastmw-c"]), (0.2, "pure", COLORS["fastmw-py"])):
        values = [next((r["median_ns"] or 0 for r in g["rows"] if r["name"] == twin), 0) for g in groups]
        ax.bar([i + offset for i in range(len(names))], values, width=0.4, color=color, label=twin)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("ns / op (log)")
    ax.set_title("core ops: compiled vs pure")
    ax.legend(fontsize=8)


def _group_axes(ax: Any, group: dict[str, Any]) -> None:
    rows = [r for r in group["rows"] if r["kind"] != "bare"]
    values = [(r["overhead_ns"] or 0) / 1000 if r["status"] == "ok" else 0 for r in rows]
    labels = [r["name"] if r["status"] == "ok" else f"{r['name']} ({r['status']})" for r in rows]
    ax.barh(range(len(rows)), values, color=[COLORS.get(r["kind"], "#555555") for r in rows])
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("overhead over bare app, us / request", fontsize=8)
    ax.set_title(group["name"], fontsize=9)
    positive = [v for v in values if v > 0]
    if positive and max(positive) > 20 * min(positive):  # BaseHTTP rows dwarf the rest
        ax.set_xscale("symlog", linthresh=1.0)


def draw(doc: dict[str, Any], path: Path) -> None:
    """One panel for the core ops, one per middleware group (overhead over bare)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    core = [g for g in doc["groups"] if g["kind"] == "core"]
    middleware = [g for g in doc["groups"] if g["kind"] == "middleware"]
    rows = 1 + (len(middleware) + 1) // 2
    fig = plt.figure(figsize=(15, 3.2 * rows))
    grid = fig.add_gridspec(rows, 2)
    if core:
        _core_axes(fig.add_subplot(grid[0, :]), core)
    for index, group in enumerate(middleware):
        _group_axes(fig.add_subplot(grid[1 + index // 2, index % 2]), group)
    machine = doc["machine"]
    fig.suptitle(f"fastmw benchmarks - {machine['cpu']} x{machine['cpus']}, {machine['python']}", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
