"""``python -m benchmarks.instructions [--groups G ...] [--quick]``: instructions per request (callgrind).

For each group of ``_instr_groups``: fastmw compiled, fastmw pure
(``FASTMW_NO_EXTENSIONS=1``) and the reference, each in its own child process under
``valgrind --tool=callgrind --collect-atstart=no --toggle-collect=fastmw_bench_measured``
(and ``--instr-atstart=no`` when the region switches instrumentation on itself).
The child builds and checks the stack, warms it up, then drives N requests on one uvloop
loop inside a tiny C function (``_callgrind_region``, called through ctypes), so callgrind
counts those N requests and nothing of start-up, imports or warm-up. Instructions per request
over bare = (total - bare's total) / N, bare measured the same way, under each of ``SEEDS``
hash seeds (``PYTHONHASHSEED``), the median taken (see ``over_bare``); two
rows are measured twice as a determinism check. Children run in parallel (instruction counts
do not depend on load). A delta (``--groups trace``) measures what one stage adds: two fastmw
sides sent the same request, compiled and pure, both in one child per variant and seed (see
``units``: the process's layout is then shared and cancels), the median over the seeds of (with
the stage - without) under one seed (see ``stage_cost``), held to a budget. Deltas and the floor group's
sides (not fastmw) get tables of their own. Prints the tables, writes ``build/bench/instructions.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import RESULTS_DIR, ROOT, _callgrind_region, _instr_floors, _instr_groups, revision, versions
from benchmarks._instr_groups import BARE
from benchmarks._instr_sides import Delta, Floor, Group, Side

WORK_DIR = ROOT / "build" / "bench-instructions"
REQUESTS, WARMUP = 2000, 300
QUICK_REQUESTS, QUICK_WARMUP = 100, 20
# Hash seeds each stack runs under (the table gives the median): see over_bare.
SEEDS = 3
# Two runs of one stack differ by a few instructions per request: timing values formatted
# into headers and log lines have varying digits, and context variables hash by address. A
# difference above this fraction of the row's count is reported.
DETERMINISM_TOLERANCE = 0.001
# The full stack on the pure twin stays within 1.05x of its figure before the engine rewrite,
# measured by this module at that revision (compiled rows are held to their reference instead).
PURE_FULL_TARGET = 1.05
PURE_FULL_BASELINE = 222_668.3  # instructions/request over bare, N=2000
PURE_FULL_BASELINE_REVISION = "a3b0e94"


@dataclass(frozen=True)
class Job:
    side: Side
    variant: str  # compiled | pure | reference
    repeat: int = 0
    seed: int = 0  # the child's PYTHONHASHSEED

    @property
    def name(self) -> str:
        return f"{self.side.key.replace(':', '-')}.{self.variant}.{self.repeat}.s{self.seed}"


@dataclass(frozen=True)
class Measured:
    job: Job
    total: int
    requests: int
    child: dict[str, Any]
    seconds: float

    @property
    def per_request(self) -> float:
        return self.total / self.requests


# --------------------------------------------------------------------------- running


def jobs(
    groups: Iterable[Group],
    repeat: bool,
    floors: Iterable[Floor] = (),
    seeds: int = 1,
    deltas: Iterable[Delta] = (),
) -> list[Job]:
    """Bare, then each group's fastmw compiled, pure and reference (shared references once),
    then each delta's two sides compiled and pure, then each floor side once; every one under
    hash seeds 0 .. seeds-1."""
    base = [Job(BARE, "reference")]
    for group in groups:
        for job in (
            Job(group.fastmw, "compiled"),
            Job(group.fastmw, "pure"),
            Job(group.reference, "reference"),
        ):
            if job not in base:
                base.append(job)
    base += [
        Job(side, variant)
        for delta in deltas
        for side in (delta.base, delta.with_stage)
        for variant in ("compiled", "pure")
    ]
    base += [Job(side, "reference") for floor in floors for side in floor.sides]
    found = [Job(job.side, job.variant, seed=seed) for seed in range(seeds) for job in base]
    if repeat:  # the determinism check: the bare app and the first stack (fastmw where measured), twice
        first = base[1]
        pair = next(((d.base, d.with_stage) for d in deltas if first.side in (d.base, d.with_stage)), (first.side,))
        found += [Job(BARE, "reference", 1), *(Job(side, first.variant, 1) for side in pair)]
    return found


def units(todo: list[Job], deltas: Iterable[Delta] = _instr_groups.DELTAS) -> list[tuple[Job, ...]]:
    """The child processes to run, in ``todo``'s order: a delta's base and with_stage under one
    variant, repeat and seed share one child (measured in alternating blocks, each inside its
    own toggle target); every other job has one of its own."""
    pairs = {side: (delta.base, delta.with_stage) for delta in deltas for side in (delta.base, delta.with_stage)}
    wanted, placed = set(todo), set[Job]()
    found: list[tuple[Job, ...]] = []
    for job in todo:
        if job in placed:
            continue
        unit: tuple[Job, ...] = (job,)
        if job.side in pairs:
            both = tuple(Job(side, job.variant, job.repeat, job.seed) for side in pairs[job.side])
            unit = both if wanted.issuperset(both) else unit
        found.append(unit)
        placed.update(unit)
    return found


def child_env(variant: str, seed: int = 0) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = str(seed)
    env.pop("FASTMW_NO_EXTENSIONS", None)
    if variant == "pure":
        env["FASTMW_NO_EXTENSIONS"] = "1"
    return env


def callgrind_total(path: Path) -> int:
    """The collected ``Ir`` of one callgrind output file (its ``totals:`` line; with
    --instr-atstart=no the ``summary:`` line stays 0)."""
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals line in {path}")


def callgrind_options(instr_off: bool, pair: bool = False) -> list[str]:
    """Count only inside the region (a pair: inside either side's); with a region that switches
    instrumentation, start with it off."""
    toggles = _callgrind_region.SIDE_TOGGLES if pair else (_callgrind_region.TOGGLE,)
    return [
        "--tool=callgrind",
        "--quiet",
        *(["--instr-atstart=no"] if instr_off else []),
        "--collect-atstart=no",
        *(f"--toggle-collect={toggle}" for toggle in toggles),
    ]


def pair_totals(path: Path) -> tuple[int, int]:
    """A pair's two totals: the inclusive counts of its two toggle targets, which together
    must be everything collected."""
    found = _callgrind_region.inclusive(path, _callgrind_region.SIDE_TOGGLES)
    totals = (found[_callgrind_region.SIDE_TOGGLES[0]], found[_callgrind_region.SIDE_TOGGLES[1]])
    if sum(totals) != callgrind_total(path):
        raise RuntimeError(f"{path}: the two sides' inclusive counts {totals} do not add up to the total")
    return totals


def run(
    unit: tuple[Job, ...], region: Path, requests: int, warmup: int, valgrind: str, instr_off: bool
) -> list[Measured]:
    """One child process: one job, or a delta's two sides (``units``)."""
    job, pair = unit[0], len(unit) == 2
    out = WORK_DIR / "run" / f"{'+'.join(one.name for one in unit)}.callgrind"
    result = out.with_suffix(".json")
    for stale in (out, result):
        stale.unlink(missing_ok=True)
    command = [
        valgrind,
        *callgrind_options(instr_off, pair),
        f"--callgrind-out-file={out}",
        sys.executable,
        "-m",
        "benchmarks._instr_child",
        *(f"--side={one.side.key}" for one in unit),
        f"--variant={job.variant}",
        f"--requests={requests}",
        f"--warmup={warmup}",
        f"--region={region}",
        f"--result={result}",
    ]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=child_env(job.variant, job.seed), capture_output=True, text=True)
    seconds = time.monotonic() - started
    keys = " + ".join(one.side.key for one in unit)
    if done.returncode != 0 or not result.exists():
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-25:])
        raise RuntimeError(f"{keys} ({job.variant}) failed with exit code {done.returncode}:\n{tail}")
    child = json.loads(result.read_text())
    totals = pair_totals(out) if pair else (callgrind_total(out),)
    children = child if pair else [child]
    if min(totals) <= 0:
        raise RuntimeError(f"{keys} ({job.variant}): callgrind counted nothing inside the measured region")
    return [
        Measured(one, total, requests, found, seconds) for one, total, found in zip(unit, totals, children, strict=True)
    ]


def run_all(
    todo: list[Job], region: Path, requests: int, warmup: int, workers: int, instr_off: bool
) -> dict[Job, Measured]:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("valgrind not found: apt-get install -y valgrind (make bench-instructions does)")
    (WORK_DIR / "run").mkdir(parents=True, exist_ok=True)
    measured: dict[Job, Measured] = {}

    lock = threading.Lock()

    def one(unit: tuple[Job, ...]) -> list[Measured]:
        results = run(unit, region, requests, warmup, valgrind, instr_off)
        for result in results:
            job = result.job
            with lock:
                measured[job] = result
                count = len(measured)
            print(
                f"[{count:2}/{len(todo)}] {job.side.key:24} {job.variant:9} seed {job.seed} "
                f"{result.per_request:>10,.0f} instr/request "
                f"({result.seconds:.0f} s{', one child with the other side' if len(unit) > 1 else ''})",
                flush=True,
            )
        return results

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, unit) for unit in units(todo)]
        try:
            for future in as_completed(futures):
                future.result()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # the running children finish; nothing new starts
            raise
    return {job: measured[job] for job in todo}


# --------------------------------------------------------------------------- numbers


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


def seeds_of(measured: dict[Job, Measured]) -> list[int]:
    return sorted({job.seed for job in measured if job.side == BARE})


def over_bare(measured: dict[Job, Measured], side: Side, variant: str) -> float:
    """Instructions per request over bare: the median over the hash seeds of (side - bare) under one seed.

    A context variable's hash mixes its address with its name's hash, so where CPython's
    context HAMT puts this request's variables (and how deep it goes) changes with the seed:
    one seed alone can land on a collision that costs ~1k instructions per request."""
    return statistics.median(
        measured[Job(side, variant, seed=seed)].per_request - measured[Job(BARE, "reference", seed=seed)].per_request
        for seed in seeds_of(measured)
    )


def summarize(groups: list[Group], measured: dict[Job, Measured]) -> list[dict[str, Any]]:
    def over(side: Side, variant: str) -> float:
        return over_bare(measured, side, variant)

    rows = []
    for group in groups:
        compiled, pure, reference = (
            over(group.fastmw, "compiled"),
            over(group.fastmw, "pure"),
            over(group.reference, "reference"),
        )
        ratio = _ratio(compiled, reference)
        rows.append(
            {
                "group": group.key,
                "title": group.title,
                "fastmw": group.fastmw.label,
                "reference": group.reference.label,
                "fastmw_compiled": round(compiled, 1),
                "fastmw_pure": round(pure, 1),
                "reference_over_bare": round(reference, 1),
                "ratio": None if ratio is None else round(ratio, 4),
                "pure_ratio": None if _ratio(pure, reference) is None else round(pure / reference, 4),
                "target": group.target,
                "holds": None if group.target is None else ratio is not None and ratio <= group.target,
            }
        )
    return rows


def summarize_floors(floors: list[Floor], measured: dict[Job, Measured]) -> list[dict[str, Any]]:
    return [
        {
            "group": floor.key,
            "side": side.key,
            "label": side.label,
            "over_bare": round(over_bare(measured, side, "reference"), 1),
        }
        for floor in floors
        for side in floor.sides
    ]


def stage_cost(measured: dict[Job, Measured], delta: Delta, variant: str) -> tuple[float, list[float]]:
    """What ``delta``'s stage adds per request: the median over the hash seeds of (with_stage -
    base) under one seed, and those differences. Both sides move with the seed, so the
    difference is taken within one seed, as for ``over_bare``."""
    per_seed = [
        measured[Job(delta.with_stage, variant, seed=seed)].per_request
        - measured[Job(delta.base, variant, seed=seed)].per_request
        for seed in seeds_of(measured)
    ]
    return statistics.median(per_seed), per_seed


def summarize_deltas(deltas: list[Delta], measured: dict[Job, Measured]) -> list[dict[str, Any]]:
    rows = []
    for delta in deltas:
        compiled, compiled_seeds = stage_cost(measured, delta, "compiled")
        pure, pure_seeds = stage_cost(measured, delta, "pure")
        rows.append(
            {
                "delta": delta.key,
                "title": delta.title,
                "base": delta.base.key,
                "with_stage": delta.with_stage.key,
                "compiled": round(compiled, 1),
                "pure": round(pure, 1),
                "compiled_per_seed": [round(value, 1) for value in compiled_seeds],
                "pure_per_seed": [round(value, 1) for value in pure_seeds],
                "budget": delta.budget,
                "holds": compiled <= delta.budget,
            }
        )
    return rows


def pure_full_stack(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    full = next((row for row in rows if row["group"] == "full"), None)
    if full is None:
        return None
    ratio = _ratio(full["fastmw_pure"], PURE_FULL_BASELINE)
    return {
        "over_bare": full["fastmw_pure"],
        "baseline": PURE_FULL_BASELINE,
        "baseline_revision": PURE_FULL_BASELINE_REVISION,
        "ratio": None if ratio is None else round(ratio, 4),
        "target": PURE_FULL_TARGET,
        "holds": ratio is not None and ratio <= PURE_FULL_TARGET,
    }


def determinism(measured: dict[Job, Measured]) -> list[dict[str, Any]]:
    checks = []
    for job, result in measured.items():
        if job.repeat:
            first = measured[Job(job.side, job.variant)]
            diff = abs(result.total - first.total) / result.requests
            relative = diff / first.per_request
            checks.append(
                {
                    "side": job.side.key,
                    "variant": job.variant,
                    "totals": [first.total, result.total],
                    "diff_per_request": round(diff, 3),
                    "relative": round(relative, 6),
                    "ok": relative <= DETERMINISM_TOLERANCE,
                }
            )
    return checks


# --------------------------------------------------------------------------- output


def _k(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1000:.1f}k"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}x"


def heading(bare: float, requests: int, seeds: int) -> str:
    return (
        f"instructions per request over the bare raw ASGI app (callgrind, {requests} requests on one uvloop loop; "
        f"median over {seeds} hash seed{'s' if seeds > 1 else ''}; bare app {bare:,.0f}/request)"
    )


def table(rows: list[dict[str, Any]], pure_full: dict[str, Any] | None, bare: float, requests: int, seeds: int) -> str:
    lines = [
        heading(bare, requests, seeds),
        "",
        "| group | fastmw compiled | fastmw pure | reference | ratio | pure / ref | target | holds |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        target = "none" if row["target"] is None else f"<= {row['target']:.2f}x"
        holds = "-" if row["holds"] is None else "yes" if row["holds"] else "**no**"
        lines.append(
            f"| {row['title']} | {_k(row['fastmw_compiled'])} | {_k(row['fastmw_pure'])} | "
            f"{row['reference']}: {_k(row['reference_over_bare'])} | {_x(row['ratio'])} | {_x(row['pure_ratio'])} | "
            f"{target} | {holds} |"
        )
    if pure_full is not None:
        baseline = pure_full["baseline"]
        lines.append(
            f"| the full stack on the pure-Python twin | | {_k(pure_full['over_bare'])} | "
            f"figure at {pure_full['baseline_revision']}: {_k(baseline)} | {_x(pure_full['ratio'])} | | "
            f"<= {PURE_FULL_TARGET:.2f}x | {'yes' if pure_full['holds'] else '**no**'} |"
        )
    return "\n".join(lines)


def floor_table(floors: list[Floor], rows: list[dict[str, Any]]) -> str:
    """One table per floor group: exact counts, since the floors differ by a few hundred."""
    lines = []
    for floor in floors:
        lines += ["", floor.title, "", "| floor | instructions/request over bare |", "|---|---:|"]
        lines += [f"| {row['label']} | {row['over_bare']:,.0f} |" for row in rows if row["group"] == floor.key]
    return "\n".join(lines)


def delta_table(rows: list[dict[str, Any]]) -> str:
    """What each measured stage adds, exact counts (budgets are in instructions, not ratios)."""
    lines = [
        "",
        "what one stage adds per request (the same request on both sides; median over the seeds of the difference)",
        "",
        "| stage | fastmw compiled adds | fastmw pure adds | budget (compiled) | holds |",
        "|---|---:|---:|---:|---|",
    ]
    lines += [
        f"| {row['title']} | {row['compiled']:,.0f} | {row['pure']:,.0f} | {row['budget']:,} | "
        f"{'yes' if row['holds'] else '**no**'} |"
        for row in rows
    ]
    return "\n".join(lines)


def document(
    measured: dict[Job, Measured],
    rows: list[dict[str, Any]],
    floor_rows: list[dict[str, Any]],
    delta_rows: list[dict[str, Any]],
    requests: int,
    warmup: int,
    instr_off: bool,
    started: float,
) -> dict[str, Any]:
    bare = measured[Job(BARE, "reference")]
    compiled = {m.child["fastmw_compiled"] for job, m in measured.items() if job.variant == "compiled"}
    return {
        "method": (
            "callgrind Ir inside fastmw_bench_measured only: N requests on one uvloop loop after warm-up, "
            "one child process per stack and hash seed (PYTHONHASHSEED=0..seeds-1); "
            "over_bare = median over the seeds of (total - bare total under that seed) / N; "
            "a delta's two sides share one child per variant and seed, N requests each in alternating blocks "
            "(A B B A A B B A), each side's total the inclusive Ir of its own toggle target "
            "(fastmw_bench_measured_a, _b)"
        ),
        "seeds": seeds_of(measured),
        "callgrind_options": callgrind_options(instr_off),
        "requests": requests,
        "warmup": warmup,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "compiled": compiled == {True},
        **revision(),
        "valgrind": _valgrind_version(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "versions": versions(),
        "event_loop": bare.child["event_loop"],
        "bare_per_request": round(bare.per_request, 1),
        "groups": rows,
        "pure_full_stack": pure_full_stack(rows),
        "floors": floor_rows,
        "deltas": delta_rows,
        "determinism": determinism(measured),
        "rows": [
            {
                "side": job.side.key,
                "label": job.side.label,
                "variant": job.variant,
                "repeat": job.repeat,
                "seed": job.seed,
                "total": m.total,
                "requests": m.requests,
                "per_request": round(m.per_request, 1),
                "over_bare": round(m.per_request - bare.per_request, 1),
                "gc_collections": m.child["gc_collections"],
                "warnings": m.child["warnings"],
                "seconds": round(m.seconds, 1),
            }
            for job, m in measured.items()
        ],
        "duration_s": round(time.time() - started, 1),
    }


def _valgrind_version() -> str:
    try:
        return subprocess.run(["valgrind", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "n/a"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--groups", nargs="+", metavar="GROUP", help=f"some of: {' '.join(_instr_groups.GROUP_KEYS)}")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_REQUESTS} requests, one seed, no repeat (smoke test)"
    )
    parser.add_argument("--seeds", type=int, help=f"hash seeds per stack, median taken (default {SEEDS})")
    parser.add_argument("--requests", type=int, help=f"measured requests per stack (default {REQUESTS})")
    parser.add_argument("--warmup", type=int, help=f"warm-up requests per stack (default {WARMUP})")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="children run at once")
    parser.add_argument("--output", type=Path, help="results file (default build/bench/instructions[-quick].json)")
    args = parser.parse_args(argv)
    started = time.time()
    groups, floors, deltas = _instr_groups.select(args.groups)
    requests = args.requests or (QUICK_REQUESTS if args.quick else REQUESTS)
    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else WARMUP)
    full_run = not args.quick and not args.groups and requests == REQUESTS
    output = args.output or RESULTS_DIR / ("instructions.json" if full_run else "instructions-quick.json")

    region = _callgrind_region.build(os.environ.get("CC", "cc"), WORK_DIR)
    instr_off = _callgrind_region.switches_instrumentation(region)
    if floors:
        _instr_floors.build()  # once here, so the children only load it
    seeds = max(1, args.seeds or (1 if args.quick else SEEDS))
    todo = jobs(groups, repeat=not args.quick, floors=floors, seeds=seeds, deltas=deltas)
    measured = run_all(todo, region, requests, warmup, max(1, args.jobs), instr_off)
    rows = summarize(groups, measured)
    floor_rows = summarize_floors(floors, measured)
    delta_rows = summarize_deltas(deltas, measured)
    doc = document(measured, rows, floor_rows, delta_rows, requests, warmup, instr_off, started)

    print()
    print(
        f"{doc['python']}, fastmw {doc['versions']['fastmw']} at {doc['git_revision'][:12]}"
        f"{' (dirty)' if doc['git_dirty'] else ''}, {doc['valgrind']}, {doc['event_loop']}"
    )
    if rows:
        print(table(rows, doc["pure_full_stack"], doc["bare_per_request"], requests, seeds))
    else:
        print(heading(doc["bare_per_request"], requests, seeds))
    if delta_rows:
        print(delta_table(delta_rows))
    if floor_rows:
        print(floor_table(floors, floor_rows))
    for check in doc["determinism"]:
        totals = " vs ".join(f"{total:,}" for total in check["totals"])
        verdict = "ok" if check["ok"] else "WARNING: not deterministic"
        print(
            f"determinism: {check['side']} ({check['variant']}) twice: {totals} "
            f"({check['diff_per_request']} instr/request apart, {check['relative']:.4%}) {verdict}"
        )
    for row in doc["rows"]:
        for warning in row["warnings"]:
            print(f"WARNING: {row['side']} ({row['variant']}): {warning}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nwrote {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output} ({doc['duration_s']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
