"""Fixtures of the fusion tests (``_fusion_harness`` holds the rest of their harness)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.middleware._fusion_harness import TWIN_NAMES, LogCapture, package


@pytest.fixture(params=TWIN_NAMES)
def mw(request: pytest.FixtureRequest) -> Any:
    """fastmw on each core twin in turn."""
    return package(request.param)


@pytest.fixture
def capture() -> Iterator[LogCapture]:
    handler = LogCapture()
    logger = logging.getLogger("fastmw")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
