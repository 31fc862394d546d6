"""Core tracestate parsing in both twins: the Level 2 member grammar, combining, limits."""

from __future__ import annotations

from types import ModuleType

import pytest

KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
VALUE_CHARS = "".join(map(chr, [*range(0x20, 0x2C), *range(0x2D, 0x3D), *range(0x3E, 0x7F)]))

# (header values, the tracestate kept): the W3C harness's cases (test/test.py) and more.
CASES = [
    (("foo=1,bar=2",), "foo=1,bar=2"),
    (("foo=1 \t , \t bar=2, \t baz=3",), "foo=1,bar=2,baz=3"),
    (("foo=1\t \t,\t \tbar=2,\t \tbaz=3",), "foo=1,bar=2,baz=3"),
    ((" foo=1",), "foo=1"),
    (("\tfoo=1",), "foo=1"),
    (("foo=1 ",), "foo=1"),
    (("\t foo=1 \t",), "foo=1"),
    (("foo=1,bar=2", "rojo=1,congo=2", "baz=3"), "foo=1,bar=2,rojo=1,congo=2,baz=3"),
    (("",), None),
    (("foo=1", ""), "foo=1"),
    (("", "foo=1"), "foo=1"),
    ((",, ,\t,",), None),
    (("foo=1,,bar=2,",), "foo=1,bar=2"),
    ((), None),
    # duplicate keys: the first (left-most, most recent) is kept, the header is not dropped
    (("foo=1,foo=1",), "foo=1"),
    (("foo=1,foo=2",), "foo=1"),
    (("foo=1", "foo=2"), "foo=1"),
    (("a=1,b=2,a=3,c=4,b=5",), "a=1,b=2,c=4"),
    # keys
    (("foo =1",), None),
    (("FOO=1",), None),
    (("foo.bar=1",), None),
    (("foo@=1,bar=2",), "foo@=1,bar=2"),
    (("@foo=1,bar=2",), None),
    (("foo@@bar=1,bar=2",), "foo@@bar=1,bar=2"),
    (("foo@bar@baz=1,bar=2",), "foo@bar@baz=1,bar=2"),
    (("1vendor=1",), "1vendor=1"),
    (("_foo=1",), None),
    (("foo", "z" * 256 + "=1"), None),
    (("foo=1", "z" * 256 + "=1"), "foo=1," + "z" * 256 + "=1"),
    (("foo=1", "z" * 257 + "=1"), None),
    (("foo=1", "t" * 241 + "@" + "v" * 14 + "=1"), "foo=1," + "t" * 241 + "@" + "v" * 14 + "=1"),
    (("foo=1", "t" * 242 + "@v=1"), "foo=1," + "t" * 242 + "@v=1"),
    (("foo=1", "t@" + "v" * 15 + "=1"), "foo=1,t@" + "v" * 15 + "=1"),
    ((KEY_CHARS + "=" + VALUE_CHARS,), KEY_CHARS + "=" + VALUE_CHARS),
    ((KEY_CHARS + "@a-z0-9_-*/=" + VALUE_CHARS,), KEY_CHARS + "@a-z0-9_-*/=" + VALUE_CHARS),
    # values
    (("foo=bar=baz",), None),
    (("foo=,bar=3",), None),
    (("foo= ",), None),
    (("foo=  1",), "foo=  1"),
    (("foo=1 2",), "foo=1 2"),
    (("foo=1\t2",), None),
    (("foo=" + "v" * 256,), "foo=" + "v" * 256),
    (("foo=" + "v" * 257,), None),
    (("foo",), None),
    (("=1",), None),
    (("foo=1\r\nx-injected=1",), None),
    (("foo=1\x00",), None),
    (("foo=é",), None),
    (("foo=1,bar=\x7f",), None),
]


@pytest.mark.parametrize(("values", "expected"), CASES)
def test_parse_tracestate(core: ModuleType, values: tuple[str, ...], expected: str | None) -> None:
    assert core.parse_tracestate(*values) == expected
    assert core.parse_tracestate(*(value.encode("utf-8") for value in values)) == expected


def members(count: int, prefix: str = "bar") -> str:
    return ",".join(f"{prefix}{index:02d}={index:02d}" for index in range(1, count + 1))


def test_at_most_32_members(core: ModuleType) -> None:
    full = members(32)
    assert core.parse_tracestate(full) == full
    assert core.parse_tracestate(members(10), members(22, "baz")) == members(10) + "," + members(22, "baz")
    assert core.parse_tracestate(members(33)) is None
    assert core.parse_tracestate(members(32), "bar33=33") is None
    # Duplicates count as members as sent; empty members do not.
    assert core.parse_tracestate(",".join(["foo=1"] * 33)) is None
    assert core.parse_tracestate(full + "," * 100) == full


def test_long_tracestates_lose_whole_members(core: ModuleType) -> None:
    long = "long=" + "x" * 200
    short = [f"k{index}=" + "v" * 40 for index in range(12)]  # 44 characters each
    kept = core.parse_tracestate(",".join([short[0], long, *short[1:]]))
    # Over 512: the member over 128 characters goes first, then members from the right.
    assert kept == ",".join(short[:11])
    assert len(kept) <= 512
    assert core.parse_tracestate(",".join(short[:11])) == ",".join(short[:11])
    huge = "k=" + "v" * 256
    assert core.parse_tracestate(huge, "a=1", huge.replace("k=", "j=")) == huge + ",a=1"
    # Members of 513 characters (the longest valid) cannot fit at all.
    assert core.parse_tracestate(*("k" * 255 + f"{i}=" + "v" * 256 for i in range(3))) is None


def test_parse_tracestate_types(core: ModuleType) -> None:
    assert core.parse_tracestate("a=1", b"b=2") == "a=1,b=2"
    with pytest.raises(TypeError, match="tracestate must be str or bytes, not NoneType"):
        core.parse_tracestate("a=1", None)
    with pytest.raises(TypeError, match="tracestate must be str or bytes, not list"):
        core.parse_tracestate(["a=1"])


def test_hostile_values_are_never_kept_raw(core: ModuleType) -> None:
    trace = "12345678901234567890123456789012"
    for hostile in (b"a=1\r\nx: y", b"a=\x00", b"a=" + b"\xff" * 10, b"a=1," * 2500 + b"\n", b" " * 10_000):
        headers = [(b"traceparent", f"00-{trace}-1234567890123456-01".encode()), (b"tracestate", hostile)]
        context = core.trace_from_headers(headers)
        assert context.trace_id == trace and context.tracestate is None
