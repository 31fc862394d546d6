"""The summary of a run: one text table, ``results/latest.json`` and ``results/latest.png``."""

from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import _driver, _twins
from benchmarks._measure import BATCH, CORE_BATCH, ROUNDS, WARMUP, GroupResult, Row

RESULTS_DIR = Path(__file__).parent / "results"
PACKAGES = (
    "fastmw",
    "starlette",
    "starlette-context",
    "asgi-correlation-id",
    "fastapi",
    "anyio",
    "uvicorn",
    "uvloop",
    "httptools",
    "Cython",
    "pytest-benchmark",
)
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
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "event_loop": _driver.loop_name(),
    }


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = NA
    return found


# --------------------------------------------------------------------------- numbers


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


def _reference(result: GroupResult, kind: str, variant: str = "") -> Row | None:
    """The first measured row of ``kind``, preferring one of the same ``variant``."""
    measured = [row for row in result.rows.values() if row.kind == kind and row.samples]
    return next((row for row in measured if row.variant == variant), measured[0] if measured else None)


def summarize(result: GroupResult) -> list[dict[str, Any]]:
    """Rows with medians, overhead over bare and ratios (None where not measurable)."""
    bare = _reference(result, "bare")
    bare_ns = bare.median_ns if bare else None

    def overhead(row: Row | None) -> float | None:
        if row is None or row.median_ns is None or bare_ns is None:
            return None
        return row.median_ns - bare_ns

    rows = []
    for row in result.rows.values():
        fastmw = _reference(result, "fastmw-c", row.variant)
        hand = _reference(result, "hand", row.variant)
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
                "overhead_ns": overhead(row) if row.kind != "bare" else None,
                "ratio_vs_fastmw_c": _ratio(row.median_ns, fastmw.median_ns if fastmw else None),
                "overhead_ratio_vs_fastmw_c": _ratio(overhead(row), overhead(fastmw)) if row.kind != "bare" else None,
                "overhead_ratio_vs_hand": _ratio(overhead(row), overhead(hand)) if row.kind != "bare" else None,
                "samples_ns": [round(value * 1e9, 1) for value in row.samples],
            }
        )
    return rows


# --------------------------------------------------------------------------- text


def _num(value: float | None, digits: int = 0) -> str:
    return NA if value is None else f"{value:,.{digits}f}"


def _times(value: float | None) -> str:
    return NA if value is None else f"{value:.2f}x"


def _table(header: list[str], lines: list[list[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([fmt.format(*header), rule, *(fmt.format(*line) for line in lines)])


def core_table(results: list[GroupResult]) -> str:
    lines = []
    for result in results:
        compiled, pure = result.rows.get("compiled"), result.rows.get("pure")
        c_ns = compiled.median_ns if compiled else None
        p_ns = pure.median_ns if pure else None
        ratio = _ratio(c_ns, p_ns)
        lines.append(
            [
                result.name.removeprefix("core: "),
                _num(c_ns, 1),
                _num(p_ns, 1),
                NA if ratio is None else f"{ratio:.3f}",
                _times(_ratio(p_ns, c_ns)),
                f"{_num(compiled.iqr_pct if compiled else None, 1)}/{_num(pure.iqr_pct if pure else None, 1)}",
            ]
        )
    header = ["core op (ns/op)", "compiled", "pure", "compiled/pure", "speedup", "IQR% c/p"]
    return _table(header, lines)


def middleware_table(result: GroupResult) -> str:
    lines = []
    for row in summarize(result):
        if row["status"] != "ok":
            lines.append([row["name"], row["status"], "", "", "", "", "", ""])
            continue
        lines.append(
            [
                row["name"],
                _num(row["median_ns"]),
                _num(row["min_ns"]),
                _num(row["iqr_pct"], 1),
                "-" if row["kind"] == "bare" else _num(row["overhead_ns"]),
                "-" if row["kind"] == "bare" else _times(row["ratio_vs_fastmw_c"]),
                "-" if row["kind"] == "bare" else _times(row["overhead_ratio_vs_fastmw_c"]),
                "-" if row["kind"] == "bare" else _times(row["overhead_ratio_vs_hand"]),
            ]
        )
    title = f"{result.name}  (driver: {result.driver}, {result.rounds} rounds x {result.per_round} requests)"
    header = [title, "ns/req", "min", "IQR%", "overhead", "x fastmw-c", "ovh x fastmw-c", "ovh x hand"]
    return _table(header, lines)


def text(results: list[GroupResult]) -> str:
    core = [r for r in results if r.kind == "core"]
    blocks = [core_table(core)] if core else []
    blocks += [middleware_table(r) for r in results if r.kind == "middleware"]
    return "\n\n".join(blocks)


# --------------------------------------------------------------------------- files


def document(results: list[GroupResult], started: float) -> dict[str, Any]:
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(time.time() - started, 1),
        "machine": machine(),
        "versions": versions(),
        "config": {"rounds": ROUNDS, "warmup_rounds": WARMUP, "batch": BATCH, "core_batch": CORE_BATCH},
        "twins": {
            "original_compiled": _twins.original().COMPILED,
            "pure_copy_compiled": _twins.pure_copy().COMPILED,
            "problems": _twins.verify(),
        },
        "groups": [
            {
                "name": r.name,
                "kind": r.kind,
                "driver": r.driver,
                "rounds": r.rounds,
                "per_round": r.per_round,
                "rows": summarize(r),
            }
            for r in results
        ],
    }


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
