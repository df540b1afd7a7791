"""verify_structure (same verdicts as objects.validate) and check_connectivity."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from wire_helpers import MemStore

from muse.core import objects as O
from muse.core.pack.codec import PackError
from muse.core.pack.file import PackFile
from muse.core.pack.write import write_pack_file
from muse.wire.verify import check_connectivity, verify_structure


def same_verdict(kind: int, body: bytes) -> None:
    try:
        O.validate(kind, body)
        expected = True
    except (O.ObjectFormatError, ValueError):
        expected = False
    try:
        verify_structure(kind, body)
        got = True
    except PackError as e:
        assert e.code == "bad_pack"
        got = False
    assert got == expected, (kind, body)


def _raw_tree(names: list[bytes], modes: list[int] | None = None) -> bytes:
    n = len(names)
    modes = modes if modes is not None else [O.MODE_FILE] * n
    return (
        n.to_bytes(4, "big")
        + bytes(modes)
        + b"".join(bytes([i]) * 32 for i in range(n))
        + b"".join(x + b"\0" for x in names)
    )


def test_tree_cases() -> None:
    cases = [
        [],
        [b"a"],
        [b"a", b"b"],
        [b"b", b"a"],
        [b"a", b"a"],
        [b"."],
        [b".."],
        [b".", b"a"],
        [b"-", b".."],
        [b""],
        [b"a", b""],
        [b"a/b"],
        [b"\xff"],
        ["é".encode(), "ü".encode()],
        [b"a.", b"a.b"],
    ]
    for names in cases:
        same_verdict(O.TREE, _raw_tree(names))
    for mode in (0, 5, 255, O.MODE_EXEC, O.MODE_LINK, O.MODE_TREE):
        same_verdict(O.TREE, _raw_tree([b"x"], [mode]))
    good = _raw_tree([b"a", b"b"])
    for cut in range(len(good) + 2):
        same_verdict(O.TREE, good[:cut])
    same_verdict(O.TREE, good + b"x")
    same_verdict(O.TREE, good + b"x\0")
    same_verdict(O.TREE, (3).to_bytes(4, "big") + good[4:])


def test_random_tree_mutations_agree_with_objects_validate() -> None:
    rng = random.Random(11)
    alphabet = [b"a", b"b", b".", b"/", b"\0", b"\xc3", b"\xa9", b"z", b"-"]
    for _ in range(3000):
        names = sorted({b"".join(rng.choices(alphabet, k=rng.randint(1, 3))) for _ in range(4)})
        if rng.random() < 0.3:
            rng.shuffle(names)
        body = bytearray(_raw_tree(names, [rng.choice([1, 2, 3, 4]) for _ in names]))
        if rng.random() < 0.3 and body:
            body[rng.randrange(len(body))] = rng.randrange(256)
        same_verdict(O.TREE, bytes(body))


def test_commits() -> None:
    sig = O.Signature("A", "a@example.invalid", 5, 60)
    good = O.Commit(bytes(32), (bytes(32),), sig, sig, "msg").encode()
    same_verdict(O.COMMIT, good)
    for bad in (good.replace(b"tree", b"tref"), good[:-4] + b"\xff", b"", good[:20]):
        same_verdict(O.COMMIT, bad)
    verify_structure(O.BLOB, b"\xff anything")
    with pytest.raises(PackError):
        verify_structure(9, b"")


# --------------------------------------------------------------------------- connectivity


def history(tmp_path: Path) -> tuple[MemStore, list[bytes], PackFile]:
    s = MemStore()
    files: dict[str, bytes] = {}
    commits: list[bytes] = []
    for k in range(20):
        files[f"d{k % 4}/sub{k % 2}/f{k}"] = b"%d" % k
        commits.append(s.commit(dict(files), commits[-1:], 100 + k))
    pf = write_pack_file(str(tmp_path), list(s.objects.values()))
    return s, commits, pf


class Empty:
    def get(self, oid: bytes) -> tuple[int, bytes] | None:
        return None

    def has(self, oid: bytes) -> bool:
        return False


def test_connected_pack_passes(tmp_path: Path) -> None:
    s, commits, pf = history(tmp_path)
    check_connectivity(pf, Empty(), [commits[-1]])
    check_connectivity(pf, Empty(), [])
    kinds = {oid: kind for oid, (kind, _) in s.objects.items()}
    check_connectivity(kinds, s, [commits[-1]])  # bodies read from `existing`


def _without(s: MemStore, tmp_path: Path, oid: bytes, name: str) -> PackFile:
    d = tmp_path / name
    d.mkdir()
    return write_pack_file(str(d), [v for k, v in s.objects.items() if k != oid])


def _refused(new: object, existing: object, tips: list[bytes]) -> PackError:
    with pytest.raises(PackError) as info:
        check_connectivity(new, existing, tips)  # type: ignore[arg-type]
    assert info.value.code == "missing_objects"
    return info.value


def test_missing_blob_tree_parent_and_tip(tmp_path: Path) -> None:
    s, commits, _ = history(tmp_path)
    tip = commits[-1]
    tree = O.commit_refs(s.objects[commits[7]][1])[0]
    sub = next(e.id for e in O.decode_tree(s.objects[tree][1]) if e.mode == O.MODE_TREE)
    blob = O.object_id(O.BLOB, b"3")
    for i, (oid, what) in enumerate(
        [(blob, "blob"), (tree, "tree"), (sub, "tree"), (commits[3], "commit")]
    ):
        pf = _without(s, tmp_path, oid, f"w{i}")
        err = _refused(pf, Empty(), [tip])
        assert oid.hex() in str(err) and what in str(err)
        # ... and the same pack is fine when the repository already has the object.
        check_connectivity(pf, s, [tip])
    _refused(_without(s, tmp_path, tip, "tip"), Empty(), [tip])
    unknown = O.object_id(O.COMMIT, b"x")
    _refused(_without(s, tmp_path, unknown, "u"), Empty(), [unknown])


def test_wrong_kinds_are_refused(tmp_path: Path) -> None:
    s = MemStore()
    blob = s.put(O.BLOB, b"data")
    tree = s.put(O.TREE, O.encode_tree([("x", O.MODE_TREE, blob)]))  # a blob posing as a tree
    sig = O.Signature("A", "a@b", 1)
    c = s.put(O.COMMIT, O.Commit(tree, (), sig, sig, "m").encode())
    pf = write_pack_file(str(tmp_path), list(s.objects.values()))
    err = _refused(pf, Empty(), [c])
    assert "referenced as a tree" in str(err) or "both" in str(err)
    # A tip that is not a commit.
    good_tree = s.put(O.TREE, O.encode_tree([("x", O.MODE_FILE, blob)]))
    d = tmp_path / "t"
    d.mkdir()
    pf2 = write_pack_file(str(d), [s.objects[good_tree], s.objects[blob]])
    _refused(pf2, Empty(), [good_tree])


def test_existing_objects_need_no_bodies(tmp_path: Path) -> None:
    """Only the new objects' references are followed: a push on top of a big repository
    reads nothing from the repository but has() (and kind() where it is cheap)."""
    s, commits, _ = history(tmp_path)
    base = MemStore()
    base.objects = dict(s.objects)
    c = s.commit({"d0/sub0/new": b"new"}, [commits[-1]], 999)  # a new commit on top
    new = {oid: v for oid, v in s.objects.items() if oid not in base.objects}
    d = tmp_path / "n"
    d.mkdir()
    pf = write_pack_file(str(d), list(new.values()))
    base.reads = 0
    check_connectivity(pf, base, [c])
    assert base.reads == 0


def test_a_commit_with_an_identity_encode_refuses_is_bad_pack_not_a_crash() -> None:
    """A name with a leading space parses as a signature but cannot be re-encoded: that is
    a malformed commit (400 bad_pack on the hub), never a ValueError escaping the check."""
    from muse.wire.verify import verify_structure

    body = b"tree " + b"ab" * 32 + b"\nauthor  A <a@b.c> 1 +0000\ncommitter  A <a@b.c> 1 +0000\n\nm"
    with pytest.raises(PackError) as info:
        verify_structure(O.COMMIT, body)
    assert info.value.code == "bad_pack"
