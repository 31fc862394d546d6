"""The shared include/exclude path matcher."""

from __future__ import annotations

import pytest

from fastmw.errors import ConfigurationError
from fastmw.middleware._paths import PathFilter


@pytest.mark.parametrize(
    ("include", "exclude", "path", "expected"),
    [
        (None, None, "/anything", True),
        (None, ["/health"], "/health", False),
        (None, ["/health"], "/health/", False),
        (None, ["/health"], "/health/db", False),
        (None, ["/health"], "/healthz", True),
        (None, ["/static*"], "/static2/x", False),
        (["/api"], None, "/api/v1", True),
        (["/api"], None, "/apis", False),
        (["/api"], ["/api/internal"], "/api/internal/x", False),
        (["/"], None, "/x", True),
    ],
)
def test_matching(include: list[str] | None, exclude: list[str] | None, path: str, expected: bool) -> None:
    assert PathFilter(include, exclude).applies({"path": path}) is expected


@pytest.mark.parametrize("bad", ["/health", ["health"], [3]])
def test_validation(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        PathFilter(exclude_paths=bad)  # type: ignore[arg-type]
