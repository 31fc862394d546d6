"""Helpers shared by the leak scripts: RSS reading and a JSON report on stdout."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any


def rss_kib() -> int:
    """Resident set size of this process in KiB (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def report(**fields: Any) -> None:
    gc.collect()
    print(json.dumps(fields))
    sys.stdout.flush()


def report_rounds(twin: str, iterations: int, one_round: Callable[[], object], probes: Mapping[str, object]) -> None:
    """Warm up, then run ``one_round`` ``iterations`` times; report RSS growth and the probes'
    reference count changes."""
    for _ in range(max(iterations // 10, 1000)):  # warm-up: caches, free lists, arenas
        one_round()
    before_refs = {key: sys.getrefcount(value) for key, value in probes.items()}
    before_rss = rss_kib()
    for _ in range(iterations):
        one_round()
    after_rss = rss_kib()
    after_refs = {key: sys.getrefcount(value) for key, value in probes.items()}
    report(
        twin=twin,
        iterations=iterations,
        rss_growth_kib=after_rss - before_rss,
        ref_deltas={key: after_refs[key] - before_refs[key] for key in probes},
    )
