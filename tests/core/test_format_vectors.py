"""The test vectors in docs/format.md are what the code computes."""

from __future__ import annotations

import os
import re

from muse.core.objects import (
    BLOB,
    COMMIT,
    EMPTY_TREE,
    KIND_CODES,
    MODE_EXEC,
    MODE_FILE,
    TREE,
    Commit,
    Signature,
    decode_commit,
    decode_tree,
    encode_tree,
    object_id,
    validate,
)

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "format.md")


def vectors() -> dict[str, tuple[int, bytes, bytes]]:
    text = open(DOC, encoding="utf-8").read()
    out = {}
    for block in re.findall(r"```vector\n(.*?)```", text, re.S):
        fields = dict(
            line.split(": ", 1) if ": " in line else (line.rstrip(":"), "")
            for line in block.strip().splitlines()
        )
        out[fields["name"]] = (
            KIND_CODES[fields["kind"]],
            bytes.fromhex(fields["body-hex"]),
            bytes.fromhex(fields["id"]),
        )
    return out


def test_vectors_hash_and_validate():
    vs = vectors()
    assert len(vs) == 6
    for name, (kind, body, oid) in vs.items():
        assert object_id(kind, body) == oid, name
        validate(kind, body)


def test_vectors_are_what_the_encoders_produce():
    vs = vectors()
    hello = object_id(BLOB, b"hello\n")
    empty = object_id(BLOB, b"")
    assert vs["empty blob"] == (BLOB, b"", empty)
    assert vs["hello blob"] == (BLOB, b"hello\n", hello)
    assert vs["empty tree"][1] == EMPTY_TREE
    tree = encode_tree([("run.sh", MODE_EXEC, empty), ("hello.txt", MODE_FILE, hello)])
    assert vs["two-entry tree"][1] == tree
    assert [e.name for e in decode_tree(tree)] == ["hello.txt", "run.sh"]
    tid = object_id(TREE, tree)
    ada = Signature("Ada Lovelace", "ada@example.org", 1704067200, 60)
    root = Commit(tid, (), ada, ada, "first\n")
    assert vs["root commit"][1] == root.encode() and vs["root commit"][2] == root.id
    later = Signature("Ada Lovelace", "ada@example.org", 1704070800, -330)
    child = Commit(tid, (root.id,), ada, later, "second\n\nwith a body\n")
    assert vs["child commit"][1] == child.encode()
    assert decode_commit(vs["child commit"][1]) == child
    assert vs["child commit"][0] == COMMIT
