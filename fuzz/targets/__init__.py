"""One fuzz target per concept of the core; each exposes ``one_input(data: bytes)``."""

from __future__ import annotations

TARGETS = ("headers", "trace", "ids", "json_lines")
