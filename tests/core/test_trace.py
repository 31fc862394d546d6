"""Core trace ids and traceparent in both twins: parsing, formatting, random ids."""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from tests.core._trace_values import HEX16, HEX32, PARENT, TRACE, VALID

# The W3C harness's traceparent cases (test/test.py) and a few more: value -> kept?
TRACEPARENT_CASES = [
    (VALID, True),
    (f"00-{TRACE}-{PARENT}-00", True),
    (f" 00-{TRACE}-{PARENT}-01", True),
    (f"\t00-{TRACE}-{PARENT}-01", True),
    (f"00-{TRACE}-{PARENT}-01 ", True),
    (f"\t 00-{TRACE}-{PARENT}-01 \t", True),
    (f"00-{TRACE}-{PARENT}-01.", False),
    (f"00-{TRACE}-{PARENT}-01-what-the-future-will-be-like", False),
    (f"cc-{TRACE}-{PARENT}-01", True),
    (f"cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like", True),
    (f"cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like", False),
    (f"ff-{TRACE}-{PARENT}-01", False),
    (f".0-{TRACE}-{PARENT}-01", False),
    (f"0.-{TRACE}-{PARENT}-01", False),
    (f"000-{TRACE}-{PARENT}-01", False),
    (f"0-{TRACE}-{PARENT}-01", False),
    (f"00-{'0' * 32}-{PARENT}-01", False),
    (f"00-.{TRACE[1:]}-{PARENT}-01", False),
    (f"00-{TRACE[:-1]}.-{PARENT}-01", False),
    (f"00-{TRACE}3-{PARENT}-01", False),
    (f"00-{TRACE[:-1]}-{PARENT}-01", False),
    (f"00-{TRACE}-{'0' * 16}-01", False),
    (f"00-{TRACE}-.{PARENT[1:]}-01", False),
    (f"00-{TRACE}-{PARENT}7-01", False),
    (f"00-{TRACE}-{PARENT[:-1]}-01", False),
    (f"00-{TRACE}-{PARENT}-.0", False),
    (f"00-{TRACE}-{PARENT}-001", False),
    (f"00-{TRACE}-{PARENT}-1", False),
    ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),
    ("00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", False),
    (f"00-{TRACE}-{PARENT}-0F", False),
    (f"0A-{TRACE}-{PARENT}-01", False),
    (f"00_{TRACE}-{PARENT}-01", False),
    (f"00-{TRACE}-{PARENT}-01\r\n", False),
    (f"00-{TRACE}-{PARENT}-01\x00", False),
    (f"00-{TRACE}-{PARENT}-01 x", False),
    ("", False),
    (" \t ", False),
    ("x" * 10_000, False),
]


@pytest.mark.parametrize(("value", "kept"), TRACEPARENT_CASES)
def test_parse_traceparent(core: ModuleType, value: str, kept: bool) -> None:
    for form in (value, value.encode()):
        parsed = core.parse_traceparent(form)
        assert (parsed is not None) is kept, form
        if kept:
            assert parsed[:2] == (TRACE, PARENT)


def test_parse_traceparent_flags_and_bad_input(core: ModuleType) -> None:
    assert core.parse_traceparent(f"00-{TRACE}-{PARENT}-ff") == (TRACE, PARENT, 255)
    assert core.parse_traceparent(f"cc-{TRACE}-{PARENT}-03-ÿ".encode("latin-1")) == (TRACE, PARENT, 3)
    assert core.parse_traceparent(f"cc-{TRACE}-{PARENT}-03-é") is None  # a str must be ASCII
    assert core.parse_traceparent("é" * 55) is None
    with pytest.raises(TypeError, match="traceparent must be str or bytes, not int"):
        core.parse_traceparent(1)


def test_format_traceparent(core: ModuleType) -> None:
    assert core.format_traceparent(TRACE, PARENT, 1) == VALID
    assert core.format_traceparent(TRACE, PARENT, 255).endswith("-ff")
    with pytest.raises(ValueError, match="span_id must be 16 lower-case hex digits"):
        core.format_traceparent(TRACE, TRACE, 1)
    with pytest.raises(ValueError, match="flags must be an int from 0 to 255, not '-1'"):
        core.format_traceparent(TRACE, PARENT, -1)


class LyingStr(str):
    """A str subclass whose __len__ and __eq__ lie: an id is read for its characters."""

    def __len__(self) -> int:
        return 3

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


def test_ids_of_a_str_subclass_are_read_for_their_characters(core: ModuleType) -> None:
    assert core.format_traceparent(LyingStr(TRACE), LyingStr(PARENT), 1) == VALID
    context = core.TraceContext(LyingStr(TRACE), LyingStr("a" * 16), LyingStr(PARENT))
    assert type(context.trace_id) is str and context.trace_id == TRACE
    assert type(context.parent_id) is str and context.parent_id == PARENT
    with pytest.raises(ValueError, match="span_id must be 16 lower-case hex digits"):
        core.format_traceparent(TRACE, LyingStr("0" * 16), 1)


# --------------------------------------------------------------------------- ids


def test_new_ids_are_random_hex_and_never_zero(core: ModuleType) -> None:
    traces = {core.new_trace_id() for _ in range(2000)}
    spans = {core.new_span_id() for _ in range(2000)}
    assert len(traces) == 2000 and len(spans) == 2000
    assert all(HEX32.fullmatch(value) and value != "0" * 32 for value in traces)
    assert all(HEX16.fullmatch(value) and value != "0" * 16 for value in spans)
    # Every nibble position varies: the whole id is random (so the random flag is honest).
    assert all(len({value[i] for value in traces}) > 8 for i in range(32))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_children_do_not_repeat_the_parents_trace_ids(core: ModuleType) -> None:
    core.new_span_id()  # fill the compiled core's random pool before forking
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ids = [core.new_trace_id(), core.new_span_id(), core.trace_from_headers([]).trace_id]
        os.write(write_end, ",".join(ids).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    child_ids = os.read(read_end, 4096).decode().split(",")
    os.close(read_end)
    parent_ids = [core.new_trace_id(), core.new_span_id(), core.trace_from_headers([]).trace_id]
    assert len(child_ids) == 3 and not set(child_ids) & set(parent_ids)
