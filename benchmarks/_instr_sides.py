"""What ``make bench-instructions`` measures: a side (one stack, built around the inner app,
and how to tell it works), the groups, deltas and floors that pair sides, and the measured
request with the check of its answer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from benchmarks import _driver
from benchmarks._driver import ASGIApp

QUERY_STRING = b"page=2&sort=name"
REQUEST_ID = {b"x-request-id": _driver.REQUEST_ID}
BOTH_IDS = {**REQUEST_ID, b"x-correlation-id": _driver.CORRELATION_ID}
TIMING = {b"server-timing": None}

Expect = Mapping[bytes, bytes | None]  # response header -> exact value (None: present)
Build = Callable[[ASGIApp], ASGIApp]
Headers = tuple[tuple[bytes, bytes], ...]


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one object per side
class Side:
    """One measured stack: how to build it around the inner app and how to tell it works."""

    key: str
    label: str
    build: Build
    expect: Expect
    quiet: tuple[str, ...] = ()  # loggers disabled before building the measured stack
    verify: Callable[[], list[str]] | None = None  # raises if broken; returns warnings
    extra_headers: Headers = ()  # sent after the bench request's headers

    @property
    def is_fastmw(self) -> bool:
        return self.key.startswith("fastmw")


@dataclass(frozen=True)
class Group:
    key: str
    title: str
    fastmw: Side
    reference: Side
    # The bound on fastmw compiled / reference (overheads over bare); None: compared only.
    target: float | None


@dataclass(frozen=True)
class Delta:
    """What one stage adds: ``base`` and ``with_stage`` get the same request, compiled and pure."""

    key: str
    title: str
    base: Side
    with_stage: Side
    budget: int  # instructions per request the stage may add (fastmw compiled)


@dataclass(frozen=True)
class Floor:
    """Design floors: sides that are not fastmw, each measured once, with no target."""

    key: str
    title: str
    sides: tuple[Side, ...]


# --------------------------------------------------------------------------- requests


def request_scope(extra_headers: Headers = ()) -> dict[str, Any]:
    """The measured request: GET / with a small query string, valid request/correlation ids and
    a side's extra headers."""
    scope = _driver.new_scope()
    scope["query_string"] = QUERY_STRING
    if extra_headers:
        scope["headers"] += extra_headers
    return scope


async def request(app: ASGIApp, capture: _driver.Capture, extra_headers: Headers = ()) -> None:
    await app(request_scope(extra_headers), _driver.Receive(), capture)


def answer(app: ASGIApp, extra_headers: Headers = ()) -> _driver.Capture:
    """One request on the loop driver's persistent loop, with everything sent captured."""
    capture = _driver.Capture()
    _driver.loop().run_until_complete(request(app, capture, extra_headers))
    return capture


def check_answer(capture: _driver.Capture, expect: Expect, status: int = 200, body: bytes | None = b"ok") -> None:
    """Raise unless the captured response has this status, body and headers."""
    if capture.status != status:
        raise AssertionError(f"expected one response start with status {status}, got {capture.messages!r}")
    if body is not None and capture.body != body:
        raise AssertionError(f"expected body {body!r}, got {capture.body!r}")
    headers = capture.headers
    for name, value in expect.items():
        got = headers.get(name)
        if got is None:
            raise AssertionError(f"response header {name!r} missing; headers: {headers!r}")
        if value is not None and got != value:
            raise AssertionError(f"response header {name!r} is {got!r}, expected {value!r}")
