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
    height = 0.8 / max(1, len(columns))
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.62 * len(lines)))
    others = iter(OTHER * len(columns))
    for index, (kind, title) in enumerate(columns):
        positions, values = [], []
        for number, line in enumerate(lines):
            value = line["cells"].get(kind)
            if isinstance(value, float) and value > 0:
                positions.append(number + (index - (len(columns) - 1) / 2) * height)
                values.append(value / 1000)
        color = COLORS.get(kind) or next(others)
        ax.barh(positions, values, height=height, color=color, label=title)
    ax.set_yticks(range(len(lines)), [line["work"] for line in lines], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("overhead over the bare app, µs per request (log scale; shorter is better)", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    machine = doc["machine"]
    ax.set_title(f"{machine['python']}, {machine['cpu']} x{machine['cpus']}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
