"""checkout_tree: writes only what differs, refuses to lose work, refuses hostile trees."""

from __future__ import annotations

import os

import pytest
from coretest_helpers import commit_all, write

from muse.core.checkout import CheckoutConflict, UnsafePath, checkout_tree
from muse.core.objects import (
    BLOB,
    MODE_FILE,
    MODE_LINK,
    MODE_TREE,
    TREE,
    decode_tree,
    encode_tree,
)
from muse.core.repo import Repository
from muse.core.worktree import status


@pytest.fixture
def repo(tmp_path):
    return Repository.init(str(tmp_path / "w"))


def snapshot_tree(repo):
    return repo.read_commit(repo.head_commit()).tree


def files_on_disk(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".muse"]
        for f in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, root)
            out[rel] = os.readlink(p) if os.path.islink(p) else open(p, "rb").read()
    return out


def test_switch_writes_only_differences(repo):
    r = repo.root
    write(r, "same", b"s")
    write(r, "gone/x", b"g")
    write(r, "changes", b"1")
    write(r, "tool", b"#!", 0o755)
    os.symlink("same", os.path.join(r, "ln"))
    t1 = repo.read_commit(commit_all(repo)).tree
    os.unlink(os.path.join(r, "gone/x"))
    os.rmdir(os.path.join(r, "gone"))
    write(r, "changes", b"2")
    write(r, "added/deep/y", b"y")
    t2 = repo.read_commit(commit_all(repo)).tree
    ino_same = os.stat(os.path.join(r, "same")).st_ino
    st = checkout_tree(repo, t1)
    assert (st.written, st.removed) == (2, 1)  # changes + gone/x written; added/deep/y removed
    assert files_on_disk(r) == {
        "same": b"s",
        "gone/x": b"g",
        "changes": b"1",
        "tool": b"#!",
        "ln": "same",
    }
    assert not os.path.exists(os.path.join(r, "added"))
    assert os.stat(os.path.join(r, "same")).st_ino == ino_same
    assert os.stat(os.path.join(r, "tool")).st_mode & 0o100
    checkout_tree(repo, t2)
    assert files_on_disk(r)["added/deep/y"] == b"y"


def test_refuses_to_overwrite_local_changes(repo):
    r = repo.root
    write(r, "f", b"1")
    t1 = repo.read_commit(commit_all(repo)).tree
    write(r, "f", b"2")
    t2 = repo.read_commit(commit_all(repo)).tree
    write(r, "f", b"local edit")
    with pytest.raises(CheckoutConflict) as e:
        checkout_tree(repo, t1)
    assert e.value.paths == ["f"]
    assert open(os.path.join(r, "f"), "rb").read() == b"local edit"
    checkout_tree(repo, t1, force=True)
    assert open(os.path.join(r, "f"), "rb").read() == b"1"
    del t2


def test_refuses_to_overwrite_untracked(repo):
    r = repo.root
    write(r, "a", b"1")
    t1 = repo.read_commit(commit_all(repo)).tree
    write(r, "b", b"tracked later")
    t2 = repo.read_commit(commit_all(repo)).tree
    checkout_tree(repo, t1)
    assert not os.path.exists(os.path.join(r, "b"))
    write(r, "b", b"untracked!")
    with pytest.raises(CheckoutConflict):
        checkout_tree(repo, t2)
    assert open(os.path.join(r, "b"), "rb").read() == b"untracked!"
    write(r, "b", b"tracked later")  # identical content is not a conflict
    checkout_tree(repo, t2)
    assert status(repo).clean


def test_local_changes_elsewhere_are_kept(repo):
    r = repo.root
    write(r, "a", b"1")
    write(r, "b", b"1")
    t1 = repo.read_commit(commit_all(repo)).tree
    write(r, "a", b"2")
    t2 = repo.read_commit(commit_all(repo)).tree
    write(r, "b", b"mine")
    checkout_tree(repo, t1)
    assert open(os.path.join(r, "b"), "rb").read() == b"mine"
    del t2


def test_file_becomes_dir_and_back(repo):
    r = repo.root
    write(r, "x", b"file")
    t1 = repo.read_commit(commit_all(repo)).tree
    os.unlink(os.path.join(r, "x"))
    write(r, "x/inner", b"in")
    t2 = repo.read_commit(commit_all(repo)).tree
    checkout_tree(repo, t1)
    assert open(os.path.join(r, "x"), "rb").read() == b"file"
    checkout_tree(repo, t2)
    assert open(os.path.join(r, "x/inner"), "rb").read() == b"in"


def test_into_empty_directory(tmp_path, repo):
    r = repo.root
    write(r, "a/b/c", b"c")
    write(r, "e", b"e", 0o755)
    tree = repo.read_commit(commit_all(repo)).tree
    other = Repository.init(str(tmp_path / "other"))
    for oid in repo.store.iter_ids():
        kind, body = repo.store.get(oid)  # type: ignore[misc]
        other.store.put(kind, body)
    checkout_tree(other, tree)
    assert files_on_disk(other.root) == {"a/b/c": b"c", "e": b"e"}
    assert os.stat(os.path.join(other.root, "e")).st_mode & 0o100


# ------------------------------------------------------------------------- hostile trees
def blob(repo, data=b"pwned"):
    return repo.store.put(BLOB, data)


def raw_tree(names_modes_ids):
    """Hand-craft a tree body, bypassing encode_tree's checks (layout n|modes|ids|names)."""
    n = len(names_modes_ids)
    return b"".join(
        [
            n.to_bytes(4, "big"),
            bytes(m for _, m, _ in names_modes_ids),
            b"".join(i for _, _, i in names_modes_ids),
        ]
        + [name + b"\0" for name, _, _ in names_modes_ids]
    )


def hostile_trees(repo):
    b = blob(repo)
    link_up = blob(repo, b"..")
    link_abs = blob(repo, b"/tmp")
    sub = repo.store.put(TREE, encode_tree([("evil", MODE_FILE, b)]))
    yield "dotdot", repo.store.put(TREE, raw_tree([(b"..", MODE_TREE, sub)]))
    yield "dot", repo.store.put(TREE, raw_tree([(b".", MODE_TREE, sub)]))
    yield "slash", repo.store.put(TREE, raw_tree([(b"a/../../x", MODE_FILE, b)]))
    yield "nul", repo.store.put(TREE, raw_tree([(b"a\0b", MODE_FILE, b)]))
    yield "empty-name", repo.store.put(TREE, raw_tree([(b"", MODE_FILE, b)]))
    yield "absolute", repo.store.put(TREE, raw_tree([(b"/etc", MODE_TREE, sub)]))
    yield "dotmuse", repo.store.put(TREE, encode_tree([(".muse", MODE_TREE, sub)]))
    yield "DOTMUSE", repo.store.put(TREE, encode_tree([(".MUSE", MODE_TREE, sub)]))
    yield "dotmuse-file", repo.store.put(TREE, encode_tree([(".Muse", MODE_FILE, b)]))
    yield "dotmuse-ignorable", repo.store.put(TREE, encode_tree([(".mu\u200cse", MODE_TREE, sub)]))
    yield "dotmuse-trailing-dot", repo.store.put(TREE, encode_tree([(".muse.", MODE_TREE, sub)]))
    deep_muse = repo.store.put(TREE, encode_tree([(".muse", MODE_TREE, sub)]))
    yield "nested-dotmuse", repo.store.put(TREE, encode_tree([("ok", MODE_TREE, deep_muse)]))
    yield (
        "case-collision",
        repo.store.put(TREE, encode_tree([("A", MODE_FILE, b), ("a", MODE_FILE, b)])),
    )
    yield (
        "case-collision-link-dir",
        repo.store.put(TREE, encode_tree([("D", MODE_LINK, link_abs), ("d", MODE_TREE, sub)])),
    )
    yield (
        "nfc-collision",
        repo.store.put(TREE, encode_tree([("\u00e9", MODE_FILE, b), ("e\u0301", MODE_FILE, b)])),
    )
    # a symlink dir followed by a file under it: names may not hold '/', so the only way is a
    # raw tree entry "l/evil" next to the link "l"
    yield (
        "link-then-file-under",
        repo.store.put(TREE, raw_tree([(b"l", MODE_LINK, link_up), (b"l/evil", MODE_FILE, b)])),
    )
    yield "unsorted", repo.store.put(TREE, raw_tree([(b"b", MODE_FILE, b), (b"a", MODE_FILE, b)]))
    yield "bad-mode", repo.store.put(TREE, raw_tree([(b"x", 9, b)]))
    yield "missing-blob", repo.store.put(TREE, encode_tree([("x", MODE_FILE, bytes(32))]))
    yield "blob-as-tree", repo.store.put(TREE, encode_tree([("x", MODE_TREE, b)]))
    yield (
        "nul-link-target",
        repo.store.put(TREE, encode_tree([("x", MODE_LINK, blob(repo, b"a\0b"))])),
    )
    # a good file first, then a bad entry deep down: nothing at all may be written
    bad_deep = repo.store.put(TREE, raw_tree([(b"..", MODE_TREE, sub)]))
    yield (
        "good-then-bad",
        repo.store.put(
            TREE, encode_tree([("aaa-good", MODE_FILE, b), ("zzz", MODE_TREE, bad_deep)])
        ),
    )


def test_hostile_corpus_is_refused_without_writing(tmp_path):
    outer = tmp_path / "outer"
    outer.mkdir()
    repo = Repository.init(str(outer / "w"))
    write(repo.root, "existing", b"keep")
    commit_all(repo)
    before_outer = sorted(os.listdir(outer))
    before_tmp = sorted(os.listdir(tmp_path))
    cases = list(hostile_trees(repo))
    assert len(cases) >= 20
    idx_path = os.path.join(repo.muse_dir, "index")
    idx_before = open(idx_path, "rb").read()
    for name, tree in cases:
        for force in (False, True):
            with pytest.raises((UnsafePath, CheckoutConflict)):
                checkout_tree(repo, tree, force=force)
            assert files_on_disk(repo.root) == {"existing": b"keep"}, name
            assert sorted(os.listdir(os.path.join(repo.muse_dir))) == sorted(
                ["HEAD", "config", "objects", "packs", "refs", "index", "logs"]  # logs: reflogs
            ), name
            assert open(idx_path, "rb").read() == idx_before, name
    assert sorted(os.listdir(outer)) == before_outer
    assert sorted(os.listdir(tmp_path)) == before_tmp


def test_never_writes_through_a_symlinked_directory(tmp_path, repo):
    r = repo.root
    write(r, "d/f", b"1")
    t1 = repo.read_commit(commit_all(repo)).tree
    write(r, "d/f", b"2")
    t2 = repo.read_commit(commit_all(repo)).tree
    checkout_tree(repo, t1)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "f").write_bytes(b"1")
    # the user (or an attacker) replaced the directory d with a symlink elsewhere
    os.unlink(os.path.join(r, "d/f"))
    os.rmdir(os.path.join(r, "d"))
    os.symlink(str(victim), os.path.join(r, "d"))
    with pytest.raises((UnsafePath, CheckoutConflict)):
        checkout_tree(repo, t2)
    assert (victim / "f").read_bytes() == b"1"
    checkout_tree(repo, t2, force=True)  # force replaces the link, never follows it
    assert (victim / "f").read_bytes() == b"1"
    assert not os.path.islink(os.path.join(r, "d"))
    assert open(os.path.join(r, "d/f"), "rb").read() == b"2"


def test_mode_and_link_changes(repo):
    r = repo.root
    write(r, "tool", b"x")
    os.symlink("a", os.path.join(r, "ln"))
    t1 = repo.read_commit(commit_all(repo)).tree
    os.chmod(os.path.join(r, "tool"), 0o755)
    os.unlink(os.path.join(r, "ln"))
    os.symlink("b", os.path.join(r, "ln"))
    t2 = repo.read_commit(commit_all(repo)).tree
    checkout_tree(repo, t1)
    assert not os.stat(os.path.join(r, "tool")).st_mode & 0o100
    assert os.readlink(os.path.join(r, "ln")) == "a"
    checkout_tree(repo, t2)
    assert os.stat(os.path.join(r, "tool")).st_mode & 0o100
    assert os.readlink(os.path.join(r, "ln")) == "b"
    assert status(repo).clean


def test_many_files_use_the_threaded_writer(tmp_path, repo):
    r = repo.root
    for i in range(700):
        write(r, f"d{i % 7}/f{i}", str(i).encode(), 0o755 if i % 50 == 0 else None)
    tree = repo.read_commit(commit_all(repo)).tree
    other = Repository.init(str(tmp_path / "other"))
    for oid in repo.store.iter_ids():
        kind, body = repo.store.get(oid)  # type: ignore[misc]
        other.store.put(kind, body)
    st = checkout_tree(other, tree)
    assert st.written == 700
    assert files_on_disk(other.root) == files_on_disk(r)
    assert os.stat(os.path.join(other.root, "d0/f0")).st_mode & 0o100
    other.refs.update("refs/heads/main", repo.head_commit(), None)
    assert status(other).clean


def test_tracked_symlink_replaced_by_directory_is_not_followed(tmp_path, repo):
    """Commit 1 tracks d -> victim (a symlink); commit 2 turns d into a directory with a file."""
    r = repo.root
    victim = tmp_path / "victim2"
    victim.mkdir()
    os.symlink(str(victim), os.path.join(r, "d"))
    write(r, "keep", b"k")
    t1 = repo.read_commit(commit_all(repo)).tree
    os.unlink(os.path.join(r, "d"))
    write(r, "d/f", b"inside")
    t2 = repo.read_commit(commit_all(repo)).tree
    checkout_tree(repo, t1)
    assert os.path.islink(os.path.join(r, "d"))
    checkout_tree(repo, t2)
    assert not os.path.islink(os.path.join(r, "d"))
    assert open(os.path.join(r, "d/f"), "rb").read() == b"inside"
    assert list(victim.iterdir()) == []


def test_names_and_paths_longer_than_file_systems_allow_are_refused_up_front(repo):
    """A hostile tree with a 256-byte name, or a path over 4,095 bytes, is refused before
    anything is written, with a message (not ENAMETOOLONG half-way through)."""
    blob = repo.store.put(BLOB, b"x")
    long_name = encode_tree([("n" * 256, MODE_FILE, blob)])
    t = repo.store.put(TREE, long_name)
    with pytest.raises(UnsafePath, match="256 bytes"):
        checkout_tree(repo, t)
    sub = repo.store.put(TREE, encode_tree([("f", MODE_FILE, blob)]))
    for depth in range(20):  # 20 levels of 250-byte names: a path over 5,000 bytes
        sub = repo.store.put(TREE, encode_tree([(f"{depth:03d}" + "d" * 247, MODE_TREE, sub)]))
    with pytest.raises(UnsafePath, match="a path of"):
        checkout_tree(repo, sub)
    assert os.listdir(repo.root) == [".muse"]
    ok = repo.store.put(TREE, encode_tree([("é" * 127, MODE_FILE, blob)]))  # 254 bytes
    checkout_tree(repo, ok)
    assert os.path.exists(os.path.join(repo.root, "é" * 127))


def test_a_small_change_is_validated_alone_and_a_hostile_change_still_refused(repo):
    """Subtrees the working tree already holds (same id, same path as the base) are not
    walked again; what changed is checked as fully as a fresh checkout."""
    r = repo.root
    write(r, "kept/a", b"a")
    write(r, "kept/deep/b", b"b")
    write(r, "edit/c", b"c1")
    base = repo.read_commit(commit_all(repo)).tree
    kept = {e.name: e.id for e in decode_tree(repo.store.get(base)[1])}["kept"]
    # A blob of the unchanged directory goes missing from the store: a checkout that
    # rewrote or re-checked that directory would fail; one that costs the change does not.
    blob_b = repo.store.put(BLOB, b"b")
    os.chmod(repo.store.loose_path(blob_b), 0o644)
    os.unlink(repo.store.loose_path(blob_b))
    c2 = repo.store.put(BLOB, b"c2")
    edit2 = repo.store.put(TREE, encode_tree([("c", MODE_FILE, c2)]))
    good = repo.store.put(
        TREE, encode_tree([("edit", MODE_TREE, edit2), ("kept", MODE_TREE, kept)])
    )
    checkout_tree(repo, good)
    assert open(os.path.join(r, "edit", "c"), "rb").read() == b"c2"
    # The changed directory is checked in full: a name checkout must never write and a
    # blob that is missing are both refused, before anything is written.
    for entries in (
        [("c", MODE_FILE, c2), (".MUSE", MODE_FILE, c2)],
        [("c", MODE_FILE, c2), ("l", MODE_FILE, bytes([0x11]) * 32)],
    ):
        edit3 = repo.store.put(TREE, encode_tree(entries))
        bad = repo.store.put(
            TREE, encode_tree([("edit", MODE_TREE, edit3), ("kept", MODE_TREE, kept)])
        )
        with pytest.raises(UnsafePath):
            checkout_tree(repo, bad)
        assert sorted(os.listdir(os.path.join(r, "edit"))) == ["c"]


def test_a_large_file_just_restored_is_trusted_by_the_next_command(repo, monkeypatch):
    """The index saved right after a large file was written is newer than the file's mtime
    (the checkout waits out the timestamp tick), so the next pull, status or checkout trusts
    the stat cache instead of re-hashing the whole file."""
    from muse.core import chunking
    from muse.core.index import SETTLE_MIN_BYTES, load_index, stat_unchanged

    r = repo.root
    first, second = os.urandom(SETTLE_MIN_BYTES + 1), os.urandom(SETTLE_MIN_BYTES + 1)
    write(r, "take.wav", first)
    write(r, "notes.txt", b"tiny")
    t1 = repo.read_commit(commit_all(repo)).tree
    write(r, "take.wav", second)
    t2 = repo.read_commit(commit_all(repo)).tree
    checkout_tree(repo, t1)
    idx = load_index(repo.muse_dir)
    st = os.lstat(os.path.join(r, "take.wav"))
    assert idx.racy_ns > st.st_mtime_ns
    assert stat_unchanged(idx.entries["take.wav"], st, idx.racy_ns)

    def no_rehash(*_args, **_kwargs):
        raise AssertionError("the large file was re-hashed")

    monkeypatch.setattr(chunking, "file_chunks", no_rehash)
    checkout_tree(repo, t2)  # its precheck proves take.wav unchanged from the stat cache
    with open(os.path.join(r, "take.wav"), "rb") as f:
        assert f.read() == second
