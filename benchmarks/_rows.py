"""How a group and its rows are declared: ``Stack`` (one row), ``Group``, and the fastmw rows.

A fastmw row is built from the compiled package or its pure copy (``_twins``); a name it
needs that the package does not have (yet) makes it an "n/a" row, never an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

from benchmarks import _twins
from benchmarks._driver import ASGIApp

Build = Callable[[ASGIApp], ASGIApp]
# Given a row's build and the group's inner app, check a separate instance: '' when it is fine.
Check = Callable[[Build, ASGIApp], str]


@dataclass
class Stack:
    """One row of a group: how to wrap the inner app, or why it is n/a."""

    name: str
    # bare | fastmw-c | fastmw-py | hand | basehttp | a peer library's name: each kind but bare is
    # a column of the comparison table (report.KIND_TITLES orders and names them).
    kind: str
    build: Build | None
    missing: str = ""
    expect: dict[str, bytes | None] = field(default_factory=dict)  # header -> exact value (None: any)
    before: Callable[[], None] | None = None
    needs_loop: bool = False
    # Rows of one variant are compared with each other: each variant is a line of the comparison
    # table, titled by the variant ("" is the group's own line, titled by the group).
    variant: str = ""
    check: Callable[[ASGIApp], str] | None = None  # given the inner app: what the response does not show


@dataclass
class Group:
    """Rows measured together, around the raw ASGI endpoint: the bare app first, then the same work
    done by fastmw and by what users would otherwise pick."""

    key: str  # what ``python -m benchmarks -k`` matches and the results name
    title: str  # the comparison table's line for the rows of variant ""
    stacks: list[Stack]
    headers: list[tuple[bytes, bytes]]  # every request's
    detail_only: tuple[str, ...] = ()  # variants measured for the detail tables, not compared

    @property
    def driver(self) -> str:
        return "loop" if any(s.needs_loop and s.build is not None for s in self.stacks) else "sync"

    def compared_variants(self) -> list[str]:
        """The comparison table's lines of this group, in the order of their first row."""
        found = [s.variant for s in self.stacks if s.kind != "bare" and s.variant not in self.detail_only]
        return list(dict.fromkeys(found))


def _resolve(package: ModuleType, dotted: str) -> Any:
    target: Any = package
    for part in dotted.split("."):
        target = getattr(target, part, None)
        if target is None:
            return None
    return target


def fastmw_row(
    label: str,
    pure: bool,
    needs: tuple[str, ...],
    make: Callable[..., ASGIApp],
    check: Callable[[ModuleType], Check] | None = None,
    **kw: Any,
) -> Stack:
    """A fastmw row; ``make(app, *resolved_needs)``, ``check(package)`` its check. n/a when a needed name is missing."""
    package = _twins.pure_copy() if pure else _twins.original()
    kind = "fastmw-py" if pure else "fastmw-c"
    name = f"{label} {'pure' if pure else 'compiled'}"
    resolved = [_resolve(package, need) for need in needs]
    absent = [need for need, value in zip(needs, resolved, strict=True) if value is None]
    if not pure and not package.COMPILED:
        return Stack(name, kind, None, missing="fastmw is running its pure core (extension not built?)", **kw)
    if absent:
        return Stack(name, kind, None, missing="fastmw." + ", fastmw.".join(absent) + " not available", **kw)

    def build(app: ASGIApp) -> ASGIApp:
        return make(app, *resolved)

    return Stack(name, kind, build, check=None if check is None else partial(check(package), build), **kw)


def fastmw_rows(label: str, needs: tuple[str, ...], make: Callable[..., ASGIApp], **kw: Any) -> list[Stack]:
    """The compiled and the pure row."""
    return [fastmw_row(label, False, needs, make, **kw), fastmw_row(label, True, needs, make, **kw)]
