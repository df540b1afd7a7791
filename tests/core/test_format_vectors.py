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
    assert len(vs) == 8
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


def _cdc_vector() -> tuple[bytes, list[int]]:
    text = open(DOC, encoding="utf-8").read()
    block = re.findall(r"```cdc\n(.*?)```", text, re.S)[0]
    fields = dict(line.split(": ", 1) for line in block.strip().splitlines())
    n = int(fields["input"].split()[0])
    import hashlib

    parts = [hashlib.sha256(b"muse chunk vector %d" % i).digest() for i in range(n // 32 + 1)]
    return b"".join(parts)[:n], [int(x) for x in fields["lengths"].split()]


def test_chunk_boundaries_and_chunk_list_vector(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from muse.core import chunking
    from muse.core.objects import CHUNKS, check_chunks, encode_chunks

    data, lengths = _cdc_vector()
    cut = [(oid, bytes(d)) for oid, d in chunking.cut_bytes(data)]
    assert [len(d) for _, d in cut] == lengths
    # cutting a file as a stream (how commit reads it) gives the same chunks
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert [(oid, bytes(d)) for oid, d in chunking.cut(fd)] == cut
    finally:
        os.close(fd)
    kind, body, oid = vectors()["chunk list of the CDC input"]
    assert kind == CHUNKS
    assert encode_chunks([o for o, _ in cut], lengths) == body
    assert object_id(CHUNKS, body) == oid
    check_chunks(body)
