"""Which request paths a middleware applies to (``include_paths`` / ``exclude_paths``).

An entry matches the path itself and everything below it as a path segment
(``/health`` matches ``/health`` and ``/health/db`` but not ``/healthz``); an
entry ending in ``*`` is a plain string prefix (``/static*`` matches ``/static2``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastmw.errors import ConfigurationError

WILDCARD = "*"


def _compile(entries: Iterable[str] | None, option: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """(exact paths, prefixes) for one option."""
    if entries is None:
        return frozenset(), ()
    if isinstance(entries, (str, bytes)):
        raise ConfigurationError(f"{option} must be a list of paths, not a single string")
    exact: set[str] = set()
    prefixes: list[str] = []
    for entry in entries:
        if not isinstance(entry, str) or not entry.startswith("/"):
            raise ConfigurationError(f"{option} entries must be str paths starting with '/', got {entry!r}")
        if entry.endswith(WILDCARD):
            prefixes.append(entry[:-1])
            continue
        bare = entry.rstrip("/") or "/"
        exact.add(bare)
        # "/" as an entry already covers everything through the prefix "/".
        prefixes.append(bare if bare == "/" else bare + "/")
    return frozenset(exact), tuple(prefixes)


class PathFilter:
    """Decides per request path whether a middleware does its work."""

    __slots__ = ("_ex_exact", "_ex_prefix", "_in_exact", "_in_prefix", "everything")

    def __init__(self, include_paths: Iterable[str] | None = None, exclude_paths: Iterable[str] | None = None) -> None:
        self._in_exact, self._in_prefix = _compile(include_paths, "include_paths")
        self._ex_exact, self._ex_prefix = _compile(exclude_paths, "exclude_paths")
        # The common case (no lists) skips the lookup entirely.
        self.everything = not (self._in_exact or self._in_prefix or self._ex_exact or self._ex_prefix)

    def applies(self, scope: Mapping[str, Any]) -> bool:
        """Whether the middleware should act on this scope's path."""
        if self.everything:
            return True
        path = scope.get("path", "")
        if self._in_exact or self._in_prefix:
            if path not in self._in_exact and not path.startswith(self._in_prefix):
                return False
        return path not in self._ex_exact and not path.startswith(self._ex_prefix)
