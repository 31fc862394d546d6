"""Structured values drawn from one fuzz input (a tiny FuzzedDataProvider).

Kept here rather than taken from atheris so that the targets, and the replay of the seed
corpus in the test suite, run without the fuzzer installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class FuzzInput:
    """Reads the input front to back; an exhausted input reads as zeros and empty bytes."""

    __slots__ = ("_at", "_data")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def byte(self) -> int:
        if self._at >= len(self._data):
            return 0
        self._at += 1
        return self._data[self._at - 1]

    def below(self, limit: int) -> int:
        """An int from 0 to ``limit - 1`` (one or two bytes)."""
        if limit <= 256:
            return self.byte() % limit
        return (self.byte() << 8 | self.byte()) % limit

    def flag(self) -> bool:
        return bool(self.byte() & 1)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.below(len(options))]

    def raw(self, limit: int = 64) -> bytes:
        """Up to ``limit`` bytes, the length read first."""
        size = self.below(limit + 1)
        chunk = self._data[self._at : self._at + size]
        self._at += len(chunk)
        return chunk

    def text(self, limit: int = 64) -> str:
        """A str: mostly latin-1 bytes as they are, sometimes UTF-8 (non-latin-1 characters)."""
        chunk = self.raw(limit)
        if self.flag():
            return chunk.decode("utf-8", "replace")
        return chunk.decode("latin-1")

    def number(self) -> int:
        """A small int, or an edge value (negative, huge)."""
        return self.choice((0, 1, 2, 3, -1, 255, 256, 2**31, 2**63, -(2**63), self.byte()))
