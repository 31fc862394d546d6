"""The comparison table as a bar chart (matplotlib's Agg backend): one bar per cell, log scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLORS = {
    "fastmw-c": "#1b7837",
    "fastmw-py": "#7fbf7b",
    "starlette-context": "#2166ac",
    "asgi-correlation-id": "#67a9cf",
    "hand": "#e08214",
    "basehttp": "#b2182b",
}
OTHER = ("#8073ac", "#542788", "#888888")


def draw(doc: dict[str, Any], path: Path) -> None:
    """``doc["comparison"]`` drawn into ``path``: a row of bars per work, one colour per column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = doc["comparison"]
    columns = data["columns"]
    lines = data["lines"]
    others = iter(OTHER * len(columns))
    colors = {kind: COLORS.get(kind) or next(others) for kind, _ in columns}
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.55 * len(lines)))
    labelled: set[str] = set()
    for number, line in enumerate(lines):
        # Only the cells this line has, centred on its tick: no gaps for the columns it lacks.
        cells = [(kind, title, line["cells"].get(kind)) for kind, title in columns]
        bars = [(kind, title, value) for kind, title, value in cells if isinstance(value, float) and value > 0]
        height = 0.8 / max(1, len(bars))
        for index, (kind, title, value) in enumerate(bars):
            position = number + (index - (len(bars) - 1) / 2) * height
            label = title if kind not in labelled else None
            labelled.add(kind)
            ax.barh(position, value / 1000, height=height, color=colors[kind], label=label)
    ax.set_yticks(range(len(lines)), [line["work"] for line in lines], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("overhead over the bare app, µs per request (log scale; shorter is better)", fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    order = [title for _, title in columns if title in labels]
    ax.legend([handles[labels.index(t)] for t in order], order, fontsize=7, loc="lower right")
    machine = doc["machine"]
    ax.set_title(f"{machine['python']}, {machine['cpu']} x{machine['cpus']}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
