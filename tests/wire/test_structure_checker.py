"""StructureChecker (trees checked against the previous one) gives verify_structure's verdicts."""

from __future__ import annotations

import random

import pytest

from muse.core import objects as O
from muse.core.pack.codec import PackError
from muse.wire.verify import StructureChecker, verify_structure


def _tree(names: list[bytes], rng: random.Random) -> bytes:
    n = len(names)
    modes = bytes(rng.choice([O.MODE_FILE, O.MODE_TREE, O.MODE_EXEC]) for _ in names)
    ids = b"".join(rng.randbytes(32) for _ in names)
    return n.to_bytes(4, "big") + modes + ids + b"".join(x + b"\0" for x in names)


def _ok(fn: object, body: bytes) -> bool:
    try:
        fn(O.TREE, body)  # type: ignore[operator]
        return True
    except PackError as e:
        assert e.code == "bad_pack"
        return False


def _mutate(body: bytes, rng: random.Random) -> bytes:
    n = int.from_bytes(body[:4], "big")
    at = 4 + 33 * n
    b = bytearray(body)
    for _ in range(rng.randint(1, 2)):
        op = rng.randrange(6)
        if len(b) <= at:
            break
        i = rng.randrange(at, len(b))
        if op == 0:
            b[i] = rng.choice(b"\0/.a~\xff\xc3\xa9z0")
        elif op == 1:
            b[i:i] = bytes([rng.choice(b"\0/.a~\xc3z")])
        elif op == 2:
            del b[i]
        elif op == 3:
            b[rng.randrange(4, 4 + n)] = rng.randrange(256) if n else 0
        elif op == 4:  # swap two names
            names = bytes(b[at:]).split(b"\0")
            if len(names) > 2:
                x, y = rng.randrange(len(names) - 1), rng.randrange(len(names) - 1)
                names[x], names[y] = names[y], names[x]
                b[at:] = b"\0".join(names)
        else:  # duplicate a name
            names = bytes(b[at:]).split(b"\0")
            if len(names) > 2:
                x = rng.randrange(len(names) - 2)
                names[x + 1] = names[x]
                b[at:] = b"\0".join(names)
    return bytes(b)


@pytest.mark.parametrize("seed", range(6))
def test_same_verdicts_as_verify_structure(seed: int) -> None:
    rng = random.Random(seed)
    checker = StructureChecker()
    alphabet = "abz.~-_0é"
    names: set[bytes] = set()
    accepted = 0
    for _ in range(1500):
        # The next version of a directory: a few names added or removed.
        for _ in range(rng.randint(0, 3)):
            names.add("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))).encode())
        if names and rng.random() < 0.3:
            names.discard(rng.choice(sorted(names)))
        good = _tree(sorted(names - {b".", b".."}), rng)
        body = good if rng.random() < 0.4 else _mutate(good, rng)
        expect = _ok(verify_structure, body)
        got = _ok(checker.check, body)
        assert got == expect, body
        accepted += got
    assert accepted > 300


def test_shared_bytes_that_start_inside_a_name_are_not_trusted() -> None:
    rng = random.Random(1)
    checker = StructureChecker()
    checker.check(O.TREE, _tree([b"ab", b"az"], rng))
    bad = _tree([b"ab", b"az"], rng)
    n = 2
    bad = bad[: 4 + 33 * n] + b"b\0az\0"  # names "b", "az": not sorted
    assert not _ok(verify_structure, bad)
    assert not _ok(checker.check, bad)


def test_the_fast_path_is_taken() -> None:
    rng = random.Random(2)
    checker = StructureChecker()
    names = [b"n%04d" % i for i in range(0, 400, 2)]
    fast = 0
    for i in range(1, 50, 2):
        names = sorted([*names, b"n%04d" % i])
        body = _tree(names, rng)
        fast += checker._names_if_fast(body) is not None
        checker.check(O.TREE, body)
    assert fast >= 24
