"""objects.canonical_commit (one regex) never accepts what objects.decode_commit refuses."""

from __future__ import annotations

import random

from muse.core import objects as O


def _decodes(body: bytes) -> bool:
    try:
        O.decode_commit(body)
        return True
    except ValueError:  # ObjectFormatError, and check_identity's ValueError
        return False


def _samples() -> list[bytes]:
    out = []
    for name, email, when, tz, parents, msg in [
        ("A U Thor", "a@example.invalid", 1704067200, 0, 0, "m"),
        ("Zoë Ünïcode", "z@x", 0, -90, 1, "multi\nline\n\nmessage ✓"),
        ("x", "", -5, 5999, 2, ""),
        ("", "e", 12, -1, 3, "\n\n"),
    ]:
        sig = O.Signature(name, email, when, tz)
        ps = tuple(O.object_id(O.BLOB, b"%d" % i) for i in range(parents))
        out.append(O.Commit(O.object_id(O.TREE, b""), ps, sig, sig, msg).encode())
    return out


def test_valid_commits_take_the_fast_path() -> None:
    for body in _samples():
        assert _decodes(body)
        assert O.canonical_commit(body)


def test_fast_path_never_accepts_what_decode_refuses() -> None:
    rng = random.Random(7)
    alphabet = b" \t\n\r<>+-0123456789abcdefABCDEF\x00\xc3\xa9\xff\xed\xa0\x80\xc2\xa0x"
    special = [
        b" A",
        b"A ",
        b"\xc2\xa0",
        b"\xe2\x80\x83",
        b"-0000",
        b"+0060",
        b"-0",
        b"00",
        b"\n\n",
        b"parent " + b"0" * 64 + b"\n",
        b"tree ",
    ]
    for base in _samples():
        for _ in range(4000):
            b = bytearray(base)
            for _ in range(rng.randint(1, 3)):
                op = rng.randrange(4)
                i = rng.randrange(len(b) + 1)
                if op == 0 and b:
                    b[min(i, len(b) - 1)] = rng.choice(alphabet)
                elif op == 1:
                    b[i:i] = bytes([rng.choice(alphabet)])
                elif op == 2 and b:
                    del b[min(i, len(b) - 1)]
                else:
                    b[i:i] = rng.choice(special)
            body = bytes(b)
            if O.canonical_commit(body):
                assert _decodes(body), body
