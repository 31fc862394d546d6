"""The hostile request ids: hand-made attacks plus seeded random ones, as raw header bytes."""

from __future__ import annotations

import random

COUNT = 1000
SEED = 20240601
UUID = "5b2a7f3c9e1d4a6b8c0d1e2f3a4b5c6d"
MIB = 1024 * 1024
# Alphabets the random ids draw from: controls, separators, latin-1, hex, splitting tokens.
CONTROLS = bytes([*range(0, 32), 127])
PIECES = [b"\r\n", b"\r", b"\n", b"\x00", b"Set-Cookie: x=1", b": ", b"\r\n\r\n", b'"', b"\\", b"%0d%0a", UUID.encode()]


def handmade() -> list[bytes]:
    ids = [
        b"abc\r\nSet-Cookie: x=1",
        b"abc\r\n\r\n<html>injected</html>",
        b"\r\n",
        b"\x00",
        UUID.encode() + b"\r\n",
        b"\r\n" + UUID.encode(),
        b" " + UUID.encode(),
        UUID.encode() + b"\x00",
        b"{" + UUID.encode() + b"}\r\nX-Evil: 1",
        UUID.encode()[:16] + b"\n" + UUID.encode()[16:],
        b"a" * MIB,
        UUID.encode() * (MIB // 32),
        b"\xff\xfe\xfd",
        b"\xc3\x28",  # invalid UTF-8 sequence
        "☃ snowman".encode(),
        "é".encode("latin-1"),
        "\u2028line separator".encode(),
        "\u202eRTL override".encode(),
        b"x" * 129,
        b"x" * 8193,
        b"%0d%0aSet-Cookie:%20x=1",
        b'"quoted" \\escaped',
        b"\t" + UUID.encode(),
        b"\x1b[31mred\x1b[0m",
        b"\x7f",
    ]
    ids += [b"id" + bytes([control]) + b"tail" for control in CONTROLS]
    return ids


def random_id(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 8)):
        kind = rng.random()
        if kind < 0.3:
            parts.append(rng.choice(PIECES))
        elif kind < 0.5:
            parts.append(bytes(rng.choice(CONTROLS) for _ in range(rng.randint(1, 4))))
        elif kind < 0.7:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))))
        elif kind < 0.9:
            parts.append(rng.choice(["☃", "é", "日本", "\u2028", "\ud7ff"]).encode("utf-8"))
        else:
            parts.append(b"y" * rng.choice([100, 129, 1000, 9000, 70000]))
    return b"".join(parts)


def hostile_ids() -> list[bytes]:
    """COUNT distinct hostile ids (the hand-made ones first)."""
    ids = handmade()
    seen = set(ids)
    rng = random.Random(SEED)
    while len(ids) < COUNT:
        value = random_id(rng)
        if value and value not in seen:
            seen.add(value)
            ids.append(value)
    return ids
