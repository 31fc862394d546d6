"""Request ids, UUID checks and the monotonic clock."""

from __future__ import annotations

import os
import re
import time
import uuid
from types import ModuleType

import pytest

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_request_ids_are_uuid4_hex_and_unique(core: ModuleType) -> None:
    ids = [core.new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:500]:
        assert HEX32.match(value)
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_children_do_not_repeat_the_parents_ids(core: ModuleType) -> None:
    core.new_request_id()  # fill the compiled core's random pool before forking
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.write(write_end, ",".join(core.new_request_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child_ids = os.read(read_end, 4096).decode().split(",")
    os.close(read_end)
    parent_ids = [core.new_request_id() for _ in range(3)]
    assert len(child_ids) == 3 and not set(child_ids) & set(parent_ids)


@pytest.mark.parametrize(
    ("value", "any_uuid", "v4"),
    [
        ("5b2a7f3c9e1d4a6b8c0d1e2f3a4b5c6d", True, True),
        ("5b2a7f3c-9e1d-4a6b-8c0d-1e2f3a4b5c6d", True, True),
        ("{5b2a7f3c-9e1d-4a6b-8c0d-1e2f3a4b5c6d}", True, True),
        ("urn:uuid:5b2a7f3c-9e1d-4a6b-8c0d-1e2f3a4b5c6d", True, True),
        ("5B2A7F3C9E1D4A6B8C0D1E2F3A4B5C6D", True, True),
        ("5b2a7f3c9e1d1a6b8c0d1e2f3a4b5c6d", True, False),  # version 1
        ("5b2a7f3c9e1d4a6b0c0d1e2f3a4b5c6d", True, False),  # NCS variant: no version
        ("not-a-uuid", False, False),
        ("5b2a7f3c9e1d4a6b8c0d1e2f3a4b5c6", False, False),
        ("5b2a7f3c-9e1d-4a6b-8c0d1e2f3a4b5c6d", True, True),  # uuid.UUID ignores hyphen placement
        ("", False, False),
        (None, False, False),
        (b"5b2a7f3c9e1d4a6b8c0d1e2f3a4b5c6d", False, False),
    ],
)
def test_uuid_checks_follow_uuid_module(core: ModuleType, value: object, any_uuid: bool, v4: bool) -> None:
    assert core.is_uuid(value) is any_uuid
    assert core.is_uuid4(value) is v4


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("abc-123_XYZ", 128, True),
        ("", 128, False),
        ("a b", 128, False),
        ("a\r\n", 128, False),
        ("é", 128, False),
        ("x" * 129, 128, False),
        ("x" * 128, 128, True),
        ("\x7f", 5, False),
        (b"abc", 5, False),
    ],
)
def test_visible_ascii(core: ModuleType, value: object, limit: int, expected: bool) -> None:
    assert core.is_visible_ascii(value, limit) is expected


def test_monotonic_is_the_time_monotonic_clock(core: ModuleType) -> None:
    before = time.monotonic()
    ours = core.monotonic()
    after = time.monotonic()
    assert before <= ours <= after
