"""Helpers shared by the leak scripts: RSS reading and a JSON report on stdout."""

from __future__ import annotations

import gc
import json
import sys
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
