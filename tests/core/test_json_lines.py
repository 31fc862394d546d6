"""The JSON-lines access-record encoder and writer, in both twins."""

from __future__ import annotations

import io
import json
import math
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KEYS = ("method", "path", "status", "ua")

scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.binary(),
)


def test_encodes_plain_record(core: ModuleType) -> None:
    line = core.encode_access_record(KEYS, ("GET", "/x", 200, None))
    assert line == b'{"method":"GET","path":"/x","status":200,"ua":null}\n'


def test_escapes_hostile_bytes_and_text(core: ModuleType) -> None:
    line = core.encode_access_record(("a", "b", "c"), (b'\r\n\x00"\\\xff', "é\U0001f600\x7f", 1.5))
    assert line.isascii() and line.count(b"\n") == 1
    assert json.loads(line) == {"a": '\r\n\x00"\\\xff', "b": "é\U0001f600\x7f", "c": 1.5}


def test_non_finite_floats_are_null(core: ModuleType) -> None:
    line = core.encode_access_record(["x", "y"], [float("nan"), float("-inf")])
    assert json.loads(line) == {"x": None, "y": None}


@pytest.mark.parametrize(
    ("keys", "values", "error", "message"),
    [
        ({"a": 1}, (1,), TypeError, "keys must be a tuple or list, not dict"),
        (("a",), "x", TypeError, "values must be a tuple or list, not str"),
        (("a", "b"), (1,), ValueError, "1 values for 2 keys"),
        ((b"a",), (1,), TypeError, "access record key must be str, not bytes"),
        (("a",), (object(),), TypeError, "access record value for 'a' must be None, bool, int, float, str or bytes"),
    ],
)
def test_refuses_bad_input(core: ModuleType, keys: Any, values: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        core.encode_access_record(keys, values)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.text(), scalar), max_size=6))
def test_twins_agree_and_lines_parse(twins: tuple[ModuleType, ModuleType], pairs: list[tuple[str, Any]]) -> None:
    compiled, pure = twins
    keys = tuple(k for k, _ in pairs)
    values = [v for _, v in pairs]
    line = compiled.encode_access_record(keys, values)
    assert line == pure.encode_access_record(keys, values)
    assert line.endswith(b"\n") and line.count(b"\n") == 1 and line.isascii()
    decoded = json.loads(line)
    for key, _ in pairs:
        assert key in decoded
    last = dict(pairs)
    for key, value in last.items():
        if isinstance(value, bytes):
            assert decoded[key] == value.decode("latin-1")
        elif isinstance(value, str):
            assert decoded[key] == value


def test_writer_buffers_says_when_a_batch_is_due_and_flushes(core: ModuleType) -> None:
    stream = io.BytesIO()
    writer = core.JsonLinesWriter(stream, batch_lines=3)
    assert writer.write(core.encode_access_record(("n",), (1,))) is False
    assert writer.write(b'{"n":2}\n') is False
    assert stream.getvalue() == b"" and writer.pending == 2
    assert writer.write(core.encode_access_record(("n",), (3,))) is True
    assert stream.getvalue() == b"" and writer.pending == 3  # no I/O in write()
    writer.flush()
    assert stream.getvalue() == b'{"n":1}\n{"n":2}\n{"n":3}\n' and writer.pending == 0
    writer.write(b'{"n":4}\n')
    data = writer.take()
    assert data == b'{"n":4}\n' and writer.pending == 0
    writer.write_out(data)
    assert stream.getvalue().endswith(b'{"n":4}\n')


def test_a_full_writer_drops_and_counts(core: ModuleType) -> None:
    writer = core.JsonLinesWriter(io.BytesIO(), batch_lines=2, max_pending=3)
    results = [writer.write(b"{}\n") for _ in range(5)]
    # True once, for the line that completes the batch; the last two are dropped.
    assert results == [False, True, False, False, False]
    assert writer.pending == 3 and writer.dropped == 2
    assert writer.discard() == 3 and writer.dropped == 5 and writer.pending == 0


class Trickle(io.RawIOBase):
    """A raw stream taking at most ``room`` bytes in all and 7 bytes a call, then failing
    with ENOSPC, as a nearly full disk does; ``room`` can grow (space freed)."""

    def __init__(self, room: int = 1 << 30) -> None:
        self.data = bytearray()
        self.calls = 0
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.calls += 1
        left = self.room - len(self.data)
        if left <= 0:
            raise OSError(28, "No space left on device")
        taken = bytes(data[: min(7, left)])
        self.data += taken
        return len(taken)


def test_writer_gives_a_raw_stream_the_rest_of_a_batch(core: ModuleType) -> None:
    stream = Trickle()
    writer = core.JsonLinesWriter(stream, batch_lines=3)
    lines = [core.encode_access_record(("n", "text"), (n, "x" * n)) for n in range(3)]
    for line in lines:
        writer.write(line)
    writer.flush()
    assert bytes(stream.data) == b"".join(lines) and stream.calls > 3

    class Stuck(Trickle):
        def write(self, data: Any) -> int:
            return 0

    writer = core.JsonLinesWriter(Stuck(), batch_lines=1)
    writer.write(b'{"n":1}\n')
    with pytest.raises(OSError, match="the stream took none of 8 bytes"):
        writer.flush()
    assert writer.pending == 1  # kept for the next try


def test_a_line_cut_short_is_completed_first_when_space_returns(core: ModuleType) -> None:
    stream = Trickle(room=20)
    writer = core.JsonLinesWriter(stream, batch_lines=100)
    lines = [core.encode_access_record(("n",), (n,)) for n in range(4)]  # 8 or 9 bytes each
    for line in lines[:3]:
        writer.write(line)
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    assert len(stream.data) == 20 and not stream.data.endswith(b"\n")  # a torn line, for now
    assert writer.pending == 1  # the torn line: its rest waits
    writer.write(lines[3])
    with pytest.raises(OSError):
        writer.flush()  # still full: nothing glued, nothing lost
    stream.room = 1 << 30
    writer.flush()
    assert bytes(stream.data) == b"".join(lines) and writer.pending == 0 and writer.dropped == 0


class Refilled(Trickle):
    """A nearly full disk, and an event loop that buffers lines while a write is under way
    (the writing thread waits in ``os.write``, which lets the loop run): each write call
    first hands the writer the next group of ``arriving`` lines."""

    def __init__(self, room: int) -> None:
        super().__init__(room)
        self.writer: Any = None
        self.arriving: list[list[bytes]] = []

    def write(self, data: Any) -> int:
        if self.arriving:
            for line in self.arriving.pop(0):
                self.writer.write(line)
        return super().write(data)


def test_lines_buffered_while_a_write_fails_are_held_to_the_bound(core: ModuleType) -> None:
    """The lines a write held did not count against ``max_pending`` while it was under way;
    when it fails and gives them back, the newest lines beyond the bound are dropped, so a
    full disk under traffic cannot grow the buffer one failed write after another."""
    lines = [core.encode_access_record(("n",), (n,)) for n in range(20)]  # 8 bytes each
    stream = Refilled(room=12)
    writer = stream.writer = core.JsonLinesWriter(stream, batch_lines=2, max_pending=6)
    for line in lines[:4]:
        writer.write(line)
    # 4..9 arrive with lines 0-3 in flight (all taken), 10..13 once 6 wait (dropped at once).
    stream.arriving = [lines[4:10], lines[10:14]]
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    # Given back: the rest of 0-3 (1 torn, 2, 3); of 4..9 the oldest three fit the bound.
    assert writer.pending == 6 and writer.dropped == 4 + 3
    stream.arriving = [lines[14:20]]  # all taken again, then nothing written at all
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    assert writer.pending == 6 and writer.dropped == 7 + 6
    stream.room = 1 << 30
    writer.flush()
    assert bytes(stream.data) == b"".join(lines[:7]) and writer.pending == 0 and writer.dropped == 13


def test_writer_validates(core: ModuleType) -> None:
    with pytest.raises(ValueError, match="batch_lines must be a positive int"):
        core.JsonLinesWriter(io.BytesIO(), batch_lines=0)
    with pytest.raises(ValueError, match="max_pending must be an int of at least batch_lines"):
        core.JsonLinesWriter(io.BytesIO(), batch_lines=4, max_pending=3)
    with pytest.raises(TypeError, match="stream must have a write"):
        core.JsonLinesWriter(object())
    with pytest.raises(TypeError, match="line must be bytes, not str"):
        core.JsonLinesWriter(io.BytesIO()).write("x")
    with pytest.raises(TypeError, match="data must be bytes, not str"):
        core.JsonLinesWriter(io.BytesIO()).write_out("x")


ROUNDED = st.builds(round, st.floats(-1e12, 1e12), st.integers(0, 7))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(ROUNDED, st.floats(), st.integers(-(2**70), 2**70)), min_size=1, max_size=4))
def test_numbers_are_written_as_repr_writes_them(twins: tuple[ModuleType, ModuleType], numbers: list[Any]) -> None:
    # The compiled encoder writes ints and short decimals itself; the text must be repr's.
    compiled, pure = twins
    keys = tuple(f"n{index}" for index in range(len(numbers)))
    expected = (
        "{"
        + ",".join(
            f'"{key}":{repr(number) if not isinstance(number, float) or math.isfinite(number) else "null"}'
            for key, number in zip(keys, numbers, strict=True)
        )
        + "}\n"
    )
    assert compiled.encode_access_record(keys, numbers) == pure.encode_access_record(keys, numbers) == expected.encode()
