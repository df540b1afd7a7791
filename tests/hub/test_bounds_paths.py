"""The hub applies the client's path policy at receive: a tree no client may check out, and
refs that clash as file and directory, are refused with a 4xx code and never stored.

Raw HTTP against a real `musehub serve` (proto_util), so the hub is checked on its own; the
trees are crafted with objects.encode_tree, which only enforces the grammar.
"""

from __future__ import annotations

import itertools

import pytest
from proto_util import History, HubClient, update

from muse.core import objects as O

MAIN = "refs/heads/main"
_slugs = itertools.count()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from fixtures import start_hub

    h = start_hub(tmp_path_factory.mktemp("hub"))
    h.alice = h.create_user("alice")  # type: ignore[attr-defined]
    yield h
    h.stop()
    assert h.unhandled_errors() == []


@pytest.fixture
def repo(hub) -> HubClient:  # type: ignore[no-untyped-def]
    slug = f"paths{next(_slugs)}"
    hub.create_repo("alice", slug)
    return HubClient(hub.url, "alice", slug, hub.alice)


def _tree(h: History, entries: list[tuple[str, int, bytes]]) -> bytes:
    return h.add(O.TREE, O.encode_tree(entries))


def _commit(h: History, tree: bytes, parents: tuple[bytes, ...] = ()) -> bytes:
    sig = O.Signature("T", "t@example.invalid", 1704067200 + len(h.objects))
    return h.add(O.COMMIT, O.Commit(tree, parents, sig, sig, "c").encode())


HOSTILE = [
    ".muse",
    ".MUSE",
    ".Muse.",
    ".muse ",
    "MUSE~1",
    ".muse::$INDEX_ALLOCATION",
    ".muse:$DATA",
    ".mu\u200cse",
    "\ufeff.muse",
    "．ｍｕｓｅ",
    ".muse\\config",
    "C:\\x",
    "C:",
    "\\\\server\\share",
    "CON",
    "nul.txt",
    "Aux.c",
    "com1",
    "LPT9.log",
    "n" * 256,
]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("where", ["root", "deep"])
def test_a_tree_no_client_may_check_out_is_refused(repo: HubClient, name: str, where: str) -> None:
    h = History()
    blob = h.add(O.BLOB, b"payload")
    mode = O.MODE_TREE if name.lower().startswith((".muse", "muse")) else O.MODE_FILE
    inner = _tree(h, [("config", O.MODE_FILE, blob)]) if mode == O.MODE_TREE else blob
    tree = _tree(h, [(name, mode, inner), ("ok.txt", O.MODE_FILE, blob)])
    shown = name
    if where == "deep":
        tree = _tree(h, [("b", O.MODE_TREE, tree)])
        tree = _tree(h, [("a", O.MODE_TREE, tree), ("z", O.MODE_FILE, blob)])
        shown = f"a/b/{name}"
    tip = _commit(h, tree)
    r = repo.push_stream([update(MAIN, None, tip)], h.pack_of(h.reachable(tip)))
    assert (r.status, r.error) == (400, "unsafe_path"), r.body
    assert repr(shown)[1:-1][:60] in r.json()["message"]
    assert repo.refs().json()["refs"] == {}


@pytest.mark.parametrize(
    "pair",
    [("A.txt", "a.txt"), ("é", "e\u0301"), ("ab", "a\u200db"), ("notes", "notes."), ("x", "X ")],
)
def test_names_that_collide_on_case_or_normalization_are_refused(
    repo: HubClient, pair: tuple[str, str]
) -> None:
    h = History()
    blob = h.add(O.BLOB, b"x")
    tip = _commit(h, _tree(h, [(pair[0], O.MODE_FILE, blob), (pair[1], O.MODE_FILE, blob)]))
    r = repo.push_stream([update(MAIN, None, tip)], h.pack_of(h.reachable(tip)))
    assert (r.status, r.error) == (400, "unsafe_path"), r.body
    assert "collides" in r.json()["message"]


def test_a_collision_added_to_a_stored_directory_is_refused(repo: HubClient) -> None:
    """The second push changes one name of a directory (the receiver's incremental check)."""
    h = History()
    blob = h.add(O.BLOB, b"x")
    names = [f"track{i:03d}.wav" for i in range(200)] + ["Mix.wav"]
    t1 = _tree(h, [(n, O.MODE_FILE, blob) for n in names])
    c1 = _commit(h, _tree(h, [("audio", O.MODE_TREE, t1)]))
    assert repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1))).status == 200
    t2 = _tree(h, [(n, O.MODE_FILE, blob) for n in names + ["mix.wav"]])
    c2 = _commit(h, _tree(h, [("audio", O.MODE_TREE, t2)]), (c1,))
    # both versions in one pack, one after the other: the second is checked against the first
    pack = h.pack_of(h.reachable(c2))
    r = repo.push_stream([update(MAIN, c1, c2)], pack)
    assert (r.status, r.error) == (400, "unsafe_path"), r.body
    assert "audio/mix.wav" in r.json()["message"]
    assert repo.refs().json()["refs"][MAIN] == c1.hex()


def test_a_stored_tree_moved_too_deep_is_refused(repo: HubClient) -> None:
    """Path lengths follow existing trees too: a deep tree accepted at the root cannot be
    placed under long names later (4,095 bytes is the most a path may have)."""
    h = History()
    blob = h.add(O.BLOB, b"x")
    deep = _tree(h, [("f", O.MODE_FILE, blob)])
    for i in range(15):
        deep = _tree(h, [(f"{i:02d}" + "d" * 248, O.MODE_TREE, deep)])
    c1 = _commit(h, deep)  # 15 x 251 bytes: 3,767 bytes, allowed
    assert repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1))).status == 200
    moved = _tree(h, [("x" * 250, O.MODE_TREE, deep)])
    moved = _tree(h, [("y" * 250, O.MODE_TREE, moved)])
    c2 = _commit(h, moved, (c1,))
    new = h.reachable(c2) - h.reachable(c1)  # only the two new trees and the commit
    r = repo.push_stream([update(MAIN, c1, c2)], h.pack_of(new))
    assert (r.status, r.error) == (400, "unsafe_path"), r.body
    assert "a path of" in r.json()["message"]


def test_unchanged_history_is_not_rechecked_and_good_pushes_pass(repo: HubClient) -> None:
    h = History()
    c1 = h.commit(
        {
            "song/verse.txt": b"la",
            ".museignore": b"*.tmp\n",
            "icons/console.png": b"i",
            "Common": b"c",
        }
    )
    assert repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1))).status == 200
    c2 = h.commit({"song/chorus.txt": b"oh", "config.toml": b"x=1"}, c1)
    new = h.reachable(c2) - h.reachable(c1)
    r = repo.push_stream([update(MAIN, c1, c2)], h.pack_of(new))
    assert r.status == 200, r.body


def test_refs_that_clash_as_file_and_directory_are_refused(repo: HubClient) -> None:
    h = History()
    c1 = h.commit({"a": b"1"})
    objects = h.pack_of(h.reachable(c1))
    assert repo.push_stream([update("refs/heads/df", None, c1)], objects).status == 200
    for ref in ("refs/heads/df/x", "refs/heads/df/x/y"):
        r = repo.push_stream([update(ref, None, c1)], objects)
        assert (r.status, r.error) == (409, "ref_conflict"), r.body
        assert "refs/heads/df" in r.json()["message"]
    r = repo.push_stream([update("refs/heads/deep/er", None, c1)], objects)
    assert r.status == 200
    r = repo.push_stream([update("refs/heads/deep", None, c1)], objects)
    assert (r.status, r.error) == (409, "ref_conflict"), r.body
    # both in one push
    r = repo.push_stream(
        [update("refs/heads/p", None, c1), update("refs/heads/p/q", None, c1)], objects
    )
    assert (r.status, r.error) == (409, "ref_conflict"), r.body
    # deleting the file and creating the directory in one push is fine
    r = repo.push_stream(
        [update("refs/heads/df", c1, None), update("refs/heads/df/x", None, c1)], objects
    )
    assert r.status == 200, r.body
    assert set(repo.refs().json()["refs"]) == {"refs/heads/df/x", "refs/heads/deep/er"}
    # names that are LIKE wildcards do not match other refs
    r = repo.push_stream([update("refs/heads/d_", None, c1)], objects)
    assert r.status == 200, r.body
