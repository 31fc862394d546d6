"""One stack measured under callgrind: the child process of ``benchmarks.instructions``.

``python -m benchmarks._instr_child --side KEY --variant V --requests N --warmup W --region LIB --result JSON``

Builds the side, checks that it answers correctly (and runs its ``verify``), warms it up,
then drives N requests (the bench request plus the side's ``extra_headers``) on the loop
driver's persistent uvloop loop inside ``fastmw_bench_region`` (``_callgrind_region``), the
only code callgrind counts. The request count, garbage collections and checks go to the
result file; the instruction total is in callgrind's output, read by the parent. Any failed
check exits non-zero.

With two ``--side`` options (a delta's base and with_stage), ``measure_pair`` builds, checks
and warms both stacks in this one process, then measures each side's N requests in ``BLOCKS``
blocks, alternating A B B A A B B A, each side inside its own C function: the process's heap
layout (type version tags, the type attribute cache, dict probe lengths), which moves with
anything that changes start-up, is then the same for both sides and cancels in the difference.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
from pathlib import Path
from typing import Any

from benchmarks import without_sentry

# Run as the child, before fastmw is imported: the request-id groups measure the request-id work,
# not Sentry's tag (imported by the harness's checks, it leaves sys.modules alone).
if __name__ == "__main__":
    without_sentry()

from benchmarks import _callgrind_region, _driver, _instr_groups, _instr_sides, stacks
from benchmarks._driver import ASGIApp

VARIANTS = ("compiled", "pure", "reference")
# Blocks per side in measure_pair: neither side always runs in the later heap state.
BLOCKS = 4


async def _batch(app: ASGIApp, count: int, extra_headers: _instr_sides.Headers) -> None:
    for _ in range(count):
        await app(_instr_sides.request_scope(extra_headers), _driver.Receive(), _driver.discard)


def _fastmw_compiled(variant: str) -> bool:
    import fastmw

    compiled = bool(fastmw.COMPILED)
    if compiled != (variant == "compiled"):
        raise SystemExit(f"fastmw.COMPILED is {compiled} in the {variant!r} child (extension not built?)")
    return compiled


def measure(side: _instr_sides.Side, variant: str, requests: int, warmup: int, library: str) -> dict[str, Any]:
    compiled = _fastmw_compiled(variant) if side.is_fastmw else None
    warnings = side.verify() if side.verify is not None else []
    for name in side.quiet:
        stacks.set_logger(name, "disabled")
    app = side.build(stacks.raw_app)
    _instr_sides.check_answer(_instr_sides.answer(app, side.extra_headers), side.expect)
    loop = _driver.loop()
    loop.run_until_complete(_batch(app, warmup, side.extra_headers))

    failures: list[BaseException] = []

    def body() -> None:
        # An exception cannot cross the ctypes callback: keep it and raise it after the region.
        try:
            loop.run_until_complete(_batch(app, requests, side.extra_headers))
        except BaseException as exc:
            failures.append(exc)

    callback = _callgrind_region.Body(body)
    region = _callgrind_region.function(library)
    # No garbage pending, and the start-up heap out of the collector's way, so what the
    # collector does inside the region is the stack's own doing.
    gc.collect()
    gc.freeze()
    before = [stats["collections"] for stats in gc.get_stats()]
    region(callback)
    after = [stats["collections"] for stats in gc.get_stats()]
    gc.unfreeze()
    if failures:
        raise failures[0]
    # Still answering after the run.
    _instr_sides.check_answer(_instr_sides.answer(app, side.extra_headers), side.expect)
    return {
        "side": side.key,
        "variant": variant,
        "requests": requests,
        "warmup": warmup,
        "fastmw_compiled": compiled,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "event_loop": _driver.loop_name(),
        "gc_collections": [b - a for a, b in zip(before, after, strict=True)],
        "warnings": warnings,
    }


def blocks(requests: int, count: int = BLOCKS) -> list[int]:
    """``requests`` split into at most ``count`` blocks, as evenly as possible."""
    count = max(1, min(count, requests))
    return [requests // count + (index < requests % count) for index in range(count)]


def measure_pair(
    sides: tuple[_instr_sides.Side, _instr_sides.Side], variant: str, requests: int, warmup: int, library: str
) -> list[dict[str, Any]]:
    """Both sides in this process: each checked and warmed up, then ``requests`` each in
    alternating blocks, side A inside ``fastmw_bench_measured_a`` and side B inside ``_b``.
    One result per side, as ``measure`` gives."""
    if sides[0].quiet != sides[1].quiet:
        raise ValueError(f"{sides[0].key} and {sides[1].key} share a process: they must quiet the same loggers")
    compiled = [_fastmw_compiled(variant) if side.is_fastmw else None for side in sides]
    warnings = [side.verify() if side.verify is not None else [] for side in sides]
    for name in sides[0].quiet:
        stacks.set_logger(name, "disabled")
    apps = [side.build(stacks.raw_app) for side in sides]
    for app, side in zip(apps, sides, strict=True):
        _instr_sides.check_answer(_instr_sides.answer(app, side.extra_headers), side.expect)
    loop = _driver.loop()
    for app, side in zip(apps, sides, strict=True):
        loop.run_until_complete(_batch(app, warmup, side.extra_headers))

    entries = _callgrind_region.side_functions(library)
    collections = [[0] * len(gc.get_stats()) for _ in sides]
    failures: list[BaseException] = []

    def one_block(which: int, count: int) -> None:
        app, extra_headers = apps[which], sides[which].extra_headers

        def body() -> None:
            try:
                loop.run_until_complete(_batch(app, count, extra_headers))
            except BaseException as exc:
                failures.append(exc)

        # Each block starts as measure's region does: no garbage pending, the heap frozen.
        gc.collect()
        gc.freeze()
        before = [stats["collections"] for stats in gc.get_stats()]
        entries[which](_callgrind_region.Body(body))
        after = [stats["collections"] for stats in gc.get_stats()]
        collections[which] = [total + b - a for total, a, b in zip(collections[which], before, after, strict=True)]

    # Instrumentation on once for all the blocks (each switch flushes valgrind's translations);
    # only the two side functions are collected.
    _callgrind_region.instrument(library, True)
    try:
        for index, count in enumerate(blocks(requests)):
            for which in (0, 1) if index % 2 == 0 else (1, 0):
                one_block(which, count)
                if failures:
                    raise failures[0]
    finally:
        _callgrind_region.instrument(library, False)
        gc.unfreeze()
    for app, side in zip(apps, sides, strict=True):
        _instr_sides.check_answer(_instr_sides.answer(app, side.extra_headers), side.expect)
    return [
        {
            "side": side.key,
            "variant": variant,
            "requests": requests,
            "warmup": warmup,
            "blocks": len(blocks(requests)),
            "fastmw_compiled": compiled[which],
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "event_loop": _driver.loop_name(),
            "gc_collections": collections[which],
            "warnings": warnings[which],
        }
        for which, side in enumerate(sides)
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._instr_child")
    parser.add_argument(
        "--side", required=True, action="append", choices=sorted(_instr_groups.sides()), help="twice: a pair"
    )
    parser.add_argument("--variant", required=True, choices=VARIANTS)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--region", required=True, help="the compiled _callgrind_region library")
    parser.add_argument("--result", required=True, type=Path)
    args = parser.parse_args(argv)
    found = [_instr_groups.sides()[key] for key in args.side]
    if len(found) == 1:
        result: object = measure(found[0], args.variant, args.requests, args.warmup, args.region)
    elif len(found) == 2:
        result = measure_pair((found[0], found[1]), args.variant, args.requests, args.warmup, args.region)
    else:
        parser.error("one --side, or two (a pair)")
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
