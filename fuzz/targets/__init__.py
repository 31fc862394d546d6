"""One fuzz target per concept of the core; each exposes ``one_input(data: bytes)``."""

from __future__ import annotations

TARGETS = ("headers", "trace", "ids", "json_lines", "metrics")
# The longest input libFuzzer tries, by target: a few dozen bytes per argument, but kilobytes
# for the counters files of a few series.
MAX_LEN = dict.fromkeys(TARGETS, 1024) | {"metrics": 8192}
