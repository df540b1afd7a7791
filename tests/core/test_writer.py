"""HistoryWriter builds real, canonical history without a working tree."""

from __future__ import annotations

from muse.core.fsck import fsck
from muse.core.objects import MODE_EXEC, MODE_LINK, Signature, decode_tree, encode_tree
from muse.core.repo import Repository
from muse.core.treediff import tree_reader, walk_tree
from muse.core.writer import HistoryWriter

SIG = Signature("Bench Author", "bench@example.invalid", 1704067200, 0)


def files(repo: Repository, commit: bytes) -> dict[str, tuple[int, bytes]]:
    get = tree_reader(repo.store)
    tree = repo.read_commit(commit).tree
    return {
        p: (m, repo.store.get(o)[1])
        for p, m, o in walk_tree(get, tree)  # type: ignore[index]
    }


def test_history_and_refs(tmp_path):
    repo = Repository.init(str(tmp_path / "r"))
    w = HistoryWriter(repo)
    c0 = w.commit({"a/x.txt": b"1", "b": b"2"}, "c0", SIG)
    c1 = w.commit({"a/y": (MODE_EXEC, b"#!"), "l": (MODE_LINK, b"a/x.txt"), "b": None}, "c1", SIG)
    w.commit({"dev/z": b"z"}, "side", SIG, parents=[c0], branch="dev")
    tips = w.close()
    assert repo.refs.read("refs/heads/main") == c1 == tips["main"]
    assert repo.read_commit(c1).parents == (c0,)
    assert files(repo, c1) == {
        "a/x.txt": (1, b"1"),
        "a/y": (MODE_EXEC, b"#!"),
        "l": (MODE_LINK, b"a/x.txt"),
    }
    assert "dev/z" in files(repo, tips["dev"])
    for _p, _m, o in walk_tree(tree_reader(repo.store), repo.read_commit(c1).tree):
        assert repo.store.has(o)
    # every tree is canonical (decode + re-encode gives the same bytes)
    get = repo.store.get
    root = get(repo.read_commit(c1).tree)[1]  # type: ignore[index]
    assert encode_tree(decode_tree(root)) == root
    assert fsck(repo).ok

    # a second writer continues the branch; deleting the last file of a directory drops it
    w2 = HistoryWriter(repo)
    c2 = w2.commit({"a/x.txt": None, "a/y": None}, "c2", SIG)
    w2.close()
    assert repo.read_commit(c2).parents == (c1,)
    assert set(files(repo, c2)) == {"l"}


def test_same_input_same_ids(tmp_path):
    ids = []
    for n in ("one", "two"):
        repo = Repository.init(str(tmp_path / n))
        w = HistoryWriter(repo)
        for k in range(20):
            w.commit({f"part{k % 3:02d}/c{k}.bin": bytes([k]) * 10}, f"commit {k}", SIG)
        ids.append(w.close()["main"])
    assert ids[0] == ids[1]
