"""core/warm: a receive keeps the tip's trees and small files for the checkout after it, and
that checkout then inflates no block of the pack again (issue 13: clone and pull of a real
history read every block twice)."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest

from muse.core import objects as O
from muse.core.checkout import checkout_tree
from muse.core.objects import BLOB, TREE, Signature
from muse.core.pack import file as pack_file
from muse.core.pack.codec import BlockReader, PackWriter, iter_records
from muse.core.repo import Repository
from muse.core.warm import WarmBlobs
from muse.core.writer import HistoryWriter

SIG = Signature("T", "t@example.org", 1704067200, 0)


def _history(repo: Repository) -> bytes:
    """Five commits that rewrite files in three directories; the tip is returned."""
    rng = random.Random(3)
    w = HistoryWriter(repo)
    tip = b""
    for i in range(5):
        changes: dict[str, bytes | None] = {
            f"src/mod{j}.py": f"# v{i}\n".encode() + rng.randbytes(3000) for j in range(4)
        }
        changes[f"docs/page{i}.md"] = b"page %d\n" % i
        changes["README"] = b"readme v%d\n" % i
        if i == 3:
            changes["docs/page0.md"] = None
        tip = w.commit(changes, f"c{i}", SIG)
    w.close()
    return tip


def _tip_objects(repo: Repository, tip: bytes) -> dict[bytes, int]:
    """The commit, and every tree and blob a checkout of it reads: id -> kind."""
    out: dict[bytes, int] = {tip: O.COMMIT}
    todo = [repo.read_commit(tip).tree]
    while todo:
        tid = todo.pop()
        out[tid] = TREE
        found = repo.store.get(tid)
        assert found is not None
        for e in O.decode_tree(found[1]):
            if e.mode == O.MODE_TREE:
                todo.append(e.id)
            else:
                out[e.id] = BLOB
    return out


def _pack_path(repo: Repository) -> str:
    (name,) = [n for n in os.listdir(repo.store.packs_dir) if n.endswith(".pack")]
    return os.path.join(repo.store.packs_dir, name)


def _receive(src: Repository, dest: Repository, warm: WarmBlobs) -> None:
    """What a clone does: receive the pack, feeding every verified object to ``warm``."""
    with open(_pack_path(src), "rb") as f:
        dest.store.receive_pack(
            f,
            inspect=warm.see,
            inspect_kinds=(O.BLOB, O.TREE, O.COMMIT, O.CHUNKS, O.TAG),
        )


def test_the_tips_trees_and_files_are_kept_and_nothing_else(tmp_path: Path) -> None:
    src = Repository.init(str(tmp_path / "src"))
    tip = _history(src)
    dest = Repository.init(str(tmp_path / "dest"))
    warm = WarmBlobs([tip])
    _receive(src, dest, warm)
    want = _tip_objects(src, tip)
    assert {oid: kind for oid, (kind, _b) in warm.kept.items()} == want
    for oid, (kind, body) in warm.kept.items():
        assert O.object_id(kind, body) == oid  # exactly the verified object


def test_the_budget_bounds_what_is_kept(tmp_path: Path) -> None:
    src = Repository.init(str(tmp_path / "src"))
    tip = _history(src)
    dest = Repository.init(str(tmp_path / "dest"))
    warm = WarmBlobs([tip], budget=5000)
    _receive(src, dest, warm)
    assert 0 < sum(len(b) for _k, b in warm.kept.values()) <= 5000
    assert len(warm.kept) < len(_tip_objects(src, tip))


def test_a_blob_met_before_the_tree_naming_it_is_not_kept() -> None:
    blob = b"content\n"
    bid = O.object_id(BLOB, blob)
    tree = O.encode_tree([O.TreeEntry("f", O.MODE_FILE, bid)])
    tid = O.object_id(TREE, tree)
    commit = O.Commit(tid, (), SIG, SIG, "m").encode()
    cid = O.object_id(O.COMMIT, commit)
    warm = WarmBlobs([cid])
    warm.see(BLOB, bid, memoryview(blob))
    warm.see(O.COMMIT, cid, memoryview(commit))
    warm.see(TREE, tid, memoryview(tree))
    assert set(warm.kept) == {cid, tid}
    warm.see(BLOB, bid, memoryview(blob))  # (in a later pack, say)
    assert warm.kept[bid] == (BLOB, blob)


def test_trees_added_before_blobs_are_written_before_them() -> None:
    """PackWriter puts a pending block of trees and commits out before a block of blobs, so a
    receiver meets a laid-out history's trees before the blobs they name."""
    rng = random.Random(5)
    out = io.BytesIO()
    w = PackWriter(out)
    tree = O.encode_tree([O.TreeEntry("f", O.MODE_FILE, b"\1" * 32)])
    w.add(TREE, tree)
    for _ in range(300):  # about 19 MiB: more than one block of blobs
        w.add(BLOB, rng.randbytes(64 << 10))
    w.finish()
    out.seek(0)
    kinds = [
        [kind for kind, _oid, _body, _rec in iter_records(block)]
        for block in BlockReader(out)
        if block.record is None
    ]
    assert kinds[0] == [TREE]
    assert all(k == [BLOB] * len(k) for k in kinds[1:]) and len(kinds) > 2


def test_a_checkout_after_a_warmed_receive_inflates_no_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = Repository.init(str(tmp_path / "src"))
    tip = _history(src)
    dest = Repository.init(str(tmp_path / "dest"))
    warm = WarmBlobs([tip])
    _receive(src, dest, warm)
    dest.store.warm(warm.kept)

    def refuse(*_a: object) -> bytes:
        raise AssertionError("a block was inflated again")

    monkeypatch.setattr(pack_file, "decompress_block", refuse)
    checkout_tree(dest, dest.read_commit(tip).tree)
    assert open(dest.root + "/README", "rb").read() == b"readme v4\n"
    assert not os.path.exists(dest.root + "/docs/page0.md")
    assert sorted(os.listdir(dest.root + "/src")) == [f"mod{j}.py" for j in range(4)]
    dest.store.cool()
    assert dest.store.warm_objects == {}
    with pytest.raises(AssertionError, match="inflated again"):
        dest.store.get(next(iter(warm.kept)))  # read from the pack again once cooled
