"""Every fast path of core's grammars against its reference, on generated and mutated input.

- ``encode_tree(checked=True)`` (working-tree scans, HistoryWriter) gives the bytes of the
  checked ``encode_tree``;
- ``config._loads_simple`` (TOML without importing tomllib) gives exactly tomllib's result
  whenever it answers at all (None hands the text to tomllib);
- ``check_object`` gives ``validate``'s verdict (trees: check_tree vs decode_tree; commits:
  canonical_commit, then decode_commit).
"""

from __future__ import annotations

import random
import tomllib

import pytest

from muse.core import config
from muse.core import objects as O


def _names(rng: random.Random) -> set[str]:
    alphabet = "abAB.\u00e9-_~z0 \u4e2d"
    names = {
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 5)))
        for _ in range(rng.randint(0, 9))
    }
    return names - {".", ".."}


@pytest.mark.parametrize("seed", range(4))
def test_checked_tree_encoding_is_the_canonical_encoding(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(500):
        ents = [(n, rng.choice(sorted(O.MODES)), rng.randbytes(32)) for n in _names(rng)]
        rng.shuffle(ents)
        body = O.encode_tree(list(ents), checked=True)
        assert body == O.encode_tree(list(ents))
        assert [tuple(e) for e in O.decode_tree(body)] == sorted(ents)


_KEYS = ["a", "b", "user", "name", '"q.k"', '"x y"', "a.b", '"esc\\"', "k-1", "_", "", "é"]
_VALUES = [
    '"v"',
    '"with space"',
    '""',
    '"esc\\n"',
    '"tab\t"',
    "1",
    "0",
    "-3",
    "007",
    "+1",
    "-0",
    "true",
    "false",
    "True",
    "1.5",
    "[1]",
    '"a" # c',
    "'lit'",
    '"\\u00e9"',
    "9" * 30,
]
_TABLES = ["[a]", "[a.b]", '["q.k"]', "[ a . b ]", "[[arr]]", "[a", "[]", '["x" . y]', "[user]"]


def _toml(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randint(0, 8)):
        r = rng.random()
        if r < 0.2:
            lines.append(rng.choice(_TABLES))
        elif r < 0.3:
            lines.append(rng.choice(["", "# comment", "  # indented", "\t", "#\x01"]))
        else:
            sep = rng.choice([" = ", "=", " =", "\t=\t", " : "])
            lines.append(rng.choice(_KEYS) + sep + rng.choice(_VALUES))
    return rng.choice(["\n", "\r\n", "\n"]).join(lines) + rng.choice(["", "\n"])


@pytest.mark.parametrize("seed", range(4))
def test_simple_toml_parser_agrees_with_tomllib(seed: int) -> None:
    rng = random.Random(seed)
    answered = 0
    for _ in range(3000):
        text = _toml(rng)
        fast = config._loads_simple(text)
        if fast is None:
            continue
        answered += 1
        assert fast == tomllib.loads(text), text
    assert answered > 300  # the fast path is exercised, not just declined


def test_simple_toml_parser_reads_what_dumps_writes() -> None:
    cfg = {"user": {"name": "A B", "email": "a@b.c"}, "remote": {"origin": {"url": "h"}}, "n": 3}
    text = config.dumps(cfg)
    assert config._loads_simple(text) == cfg == tomllib.loads(text)


def _verdict(fn: object, kind: int, body: bytes) -> bool:
    try:
        fn(kind, body)  # type: ignore[operator]
        return True
    except O.ObjectFormatError:
        return False


@pytest.mark.parametrize("seed", range(4))
def test_check_object_agrees_with_validate(seed: int) -> None:
    rng = random.Random(seed)
    sig = O.Signature("A U", "a@example.org", 1_700_000_000, 60)
    for _ in range(400):
        ents = [(n, rng.choice(sorted(O.MODES)), rng.randbytes(32)) for n in _names(rng)]
        tree = bytearray(O.encode_tree(ents))
        commit = bytearray(
            O.Commit(rng.randbytes(32), (rng.randbytes(32),), sig, sig, "msg\n").encode()
        )
        for kind, body in ((O.TREE, tree), (O.COMMIT, commit)):
            for _ in range(rng.randint(0, 3)):
                if not body:
                    break
                i = rng.randrange(len(body))
                op = rng.randrange(3)
                if op == 0:
                    body[i] = rng.choice(b"\0/.a \n<>+-0\xff\xc3")
                elif op == 1:
                    del body[i]
                else:
                    body[i:i] = bytes([rng.choice(b"\0/.a \n<>")])
            raw = bytes(body)
            assert _verdict(O.check_object, kind, raw) == _verdict(O.validate, kind, raw), raw
