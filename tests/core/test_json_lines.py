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


def test_writer_batches_and_flushes(core: ModuleType) -> None:
    stream = io.BytesIO()
    writer = core.JsonLinesWriter(stream, batch_lines=3)
    writer.write(core.encode_access_record(("n",), (1,)))
    writer.write(b'{"n":2}\n')
    assert stream.getvalue() == b"" and writer.pending == 2
    writer.write(core.encode_access_record(("n",), (3,)))
    assert stream.getvalue() == b'{"n":1}\n{"n":2}\n{"n":3}\n' and writer.pending == 0
    writer.write(core.encode_access_record(("n",), (4,)))
    writer.flush()
    assert stream.getvalue().endswith(b'{"n":4}\n')


def test_writer_gives_a_raw_stream_the_rest_of_a_batch(core: ModuleType) -> None:
    class Trickle(io.RawIOBase):
        """A raw stream taking at most 7 bytes a call, as a pipe or a full disk may."""

        def __init__(self) -> None:
            self.data = bytearray()
            self.calls = 0

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            self.calls += 1
            taken = bytes(data[:7])
            self.data += taken
            return len(taken)

    stream = Trickle()
    writer = core.JsonLinesWriter(stream, batch_lines=3)
    lines = [core.encode_access_record(("n", "text"), (n, "x" * n)) for n in range(3)]
    for line in lines:
        writer.write(line)
    assert bytes(stream.data) == b"".join(lines) and stream.calls > 3

    class Stuck(Trickle):
        def write(self, data: Any) -> int:
            return 0

    writer = core.JsonLinesWriter(Stuck(), batch_lines=1)
    with pytest.raises(OSError, match="the stream took none of 8 bytes"):
        writer.write(b'{"n":1}\n')
    assert writer.pending == 0


def test_writer_drops_failed_batch(core: ModuleType) -> None:
    class Broken:
        def write(self, data: bytes) -> None:
            raise OSError("disk full")

    writer = core.JsonLinesWriter(Broken(), batch_lines=1)
    with pytest.raises(OSError, match="disk full"):
        writer.write(b"{}\n")
    assert writer.pending == 0


def test_writer_validates(core: ModuleType) -> None:
    with pytest.raises(ValueError, match="batch_lines must be a positive int"):
        core.JsonLinesWriter(io.BytesIO(), batch_lines=0)
    with pytest.raises(TypeError, match="stream must have a write"):
        core.JsonLinesWriter(object())
    with pytest.raises(TypeError, match="line must be bytes, not str"):
        core.JsonLinesWriter(io.BytesIO()).write("x")


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
