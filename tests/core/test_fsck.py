"""fsck over loose and packed objects; objects.check_tree agreeing with decode_tree."""

from __future__ import annotations

import os
import random

import pytest

from muse.core.fsck import fsck
from muse.core.objects import (
    BLOB,
    MODE_FILE,
    MODE_TREE,
    ObjectFormatError,
    Signature,
    check_tree,
    decode_tree,
    encode_tree,
    object_id,
)
from muse.core.repo import Repository
from muse.core.writer import HistoryWriter

SIG = Signature("A", "a@example.org", 1704067200, 0)


def agree(body: bytes) -> None:
    try:
        decode_tree(body)
        ok = True
    except ObjectFormatError:
        ok = False
    try:
        check_tree(body)
        fast = True
    except ObjectFormatError:
        fast = False
    assert ok == fast, body


def test_fast_tree_check_agrees_with_decode_tree():
    b = object_id(BLOB, b"x")
    good = encode_tree([("a", MODE_FILE, b), ("b", MODE_TREE, b), ("\u00e9t\u00e9", 2, b)])
    agree(good)
    rng = random.Random(7)
    for _ in range(3000):
        body = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(body))
            body[i] = rng.choice([0, 1, 4, 5, ord("/"), ord("."), 0xFF, rng.randrange(256)])
        if rng.random() < 0.2:
            body = body[: rng.randrange(len(body))]
        agree(bytes(body))


def test_fsck_packed_history_and_corruption(tmp_path):
    repo = Repository.init(str(tmp_path / "r"))
    w = HistoryWriter(repo)
    for k in range(200):
        w.commit({f"part{k % 7}/f{k}": os.urandom(64)}, f"c{k}", SIG)
    w.close()
    rep = fsck(repo)
    assert rep.ok, rep.problems
    if rep.packed == 0:
        pytest.skip("pack support not installed")
    assert rep.reachable == rep.objects
    pack = [p for p in os.listdir(repo.store.packs_dir) if p.endswith(".pack")][0]
    path = os.path.join(repo.store.packs_dir, pack)
    os.chmod(path, 0o644)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    assert not fsck(Repository(repo.root)).ok


def test_fsck_checks_the_pack_file_not_only_the_objects(tmp_path):
    """A damaged trailer checksum leaves every object intact; fsck must still report it."""
    repo = Repository.init(str(tmp_path / "r"))
    w = HistoryWriter(repo)
    for k in range(200):
        w.commit({f"part{k % 7}/f{k}": os.urandom(64)}, f"c{k}", SIG)
    w.close()
    pack = [p for p in os.listdir(repo.store.packs_dir) if p.endswith(".pack")][0]
    path = os.path.join(repo.store.packs_dir, pack)
    os.chmod(path, 0o644)
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF
    open(path, "wb").write(bytes(data))
    rep = fsck(Repository(repo.root))
    assert not rep.ok
    assert any(pack in p for p in rep.problems)


def test_fsck_catches_a_blob_shorter_than_the_file_it_was_hashed_from(tmp_path):
    """What a read cut short at commit leaves: the index says the file had N bytes, the
    blob it names holds fewer. fsck reports it (status alone would call the tree clean)."""
    from muse.core.worktree import snapshot

    repo = Repository.init(str(tmp_path / "r"))
    with open(os.path.join(repo.root, "song.wav"), "wb") as f:
        f.write(b"x" * 1000)
    _res, idx = snapshot(repo)
    idx.save()
    assert fsck(repo).ok
    oid, flags, size, *rest = idx.entries["song.wav"]
    short = repo.store.put(BLOB, b"x" * 600)  # the truncated blob
    idx.entries["song.wav"] = (short, flags, size, *rest)
    idx.save()
    problems = fsck(repo).problems
    assert any("song.wav" in p and "1000 bytes" in p and "holds 600" in p for p in problems)


def test_leftover_temporary_packs_are_named_by_fsck_and_swept_by_the_next_pack(tmp_path):
    """A fetch killed mid-way leaves .muse/packs/.tmp-pack-<pid>-*: fsck names it (a warning,
    not corruption) and the next pack written removes it; a live writer's file stays."""
    import subprocess
    import sys

    repo = Repository.init(str(tmp_path / "r"))
    packs = repo.store.packs_dir
    os.makedirs(packs, exist_ok=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    killed = os.path.join(packs, f".tmp-pack-{dead}-abc.pack")
    old_style = os.path.join(packs, ".tmp-pack-xyz.pack")
    live = os.path.join(packs, f".tmp-pack-{os.getpid()}-live.pack")
    for p in (killed, old_style, live):
        with open(p, "wb") as f:
            f.write(b"half a pack")
    rep = fsck(repo)
    assert rep.ok
    assert sorted(w.split(":")[0] for w in rep.warnings) == sorted([killed, old_style])
    repo.store.write_pack([(BLOB, b"one %d" % i) for i in range(3)])
    assert not os.path.exists(killed) and not os.path.exists(old_style)
    assert os.path.exists(live)
    assert fsck(repo).warnings == []


def test_damaged_pack_index_is_fsck_s_to_find_not_every_command_s(tmp_path):
    """Opening packs does not re-hash their indexes (that cost every command the size of the
    repository); fsck does, and names the damaged index."""
    repo = Repository.init(str(tmp_path / "r"))
    with HistoryWriter(repo, branch="main") as w:
        w.commit({f"f{i}.txt": b"%d\n" % i for i in range(200)}, "many", SIG)
        tip = w.tip()
    (idx,) = [n for n in os.listdir(repo.store.packs_dir) if n.endswith(".idx")]
    path = os.path.join(repo.store.packs_dir, idx)
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    raw[-1] ^= 0x01  # the index's own trailing hash: every entry still reads right
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(raw)
    again = Repository.find(str(tmp_path / "r"))
    assert again.read_commit(tip).tree is not None  # reading still works
    problems = fsck(again).problems
    assert any(idx in p for p in problems), problems
