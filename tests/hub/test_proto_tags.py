"""Tags at the hub, over raw HTTP (docs/wire.md): what it stores, serves and refuses.

Hostile annotated tags (target missing, wrong kind, malformed header) are 400 with a code;
a tag moves only when forced (409 tag_exists); the default branch is never deleted (409
default_branch); a fetch of a tag sends the tag object with what it names.
"""

from __future__ import annotations

import itertools

import pytest
from proto_util import History, HubClient, pack_bytes, update

from muse.core import objects as O

MAIN = "refs/heads/main"
SIG = O.Signature("T", "t@example.invalid", 1704067200)
_slugs = itertools.count()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from fixtures import start_hub

    h = start_hub(tmp_path_factory.mktemp("hub"))
    h.alice = h.create_user("alice")  # type: ignore[attr-defined]
    yield h
    h.stop()


@pytest.fixture
def repo(hub) -> HubClient:  # type: ignore[no-untyped-def]
    slug = f"tags{next(_slugs)}"
    hub.create_repo("alice", slug)
    return HubClient(hub.url, "alice", slug, hub.alice)


def _seeded(repo: HubClient) -> tuple[History, bytes]:
    h = History()
    c1 = h.commit({"a.txt": b"one"})
    assert repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1))).status == 200
    return h, c1


def _tag(target: bytes, kind: int, name: str = "v1") -> tuple[int, bytes]:
    return O.TAG, O.Tag(target, kind, name, SIG, "release\n").encode()


def test_annotated_tag_is_stored_served_and_fetched(repo: HubClient) -> None:
    h, c1 = _seeded(repo)
    kind, body = _tag(c1, O.COMMIT)
    tid = O.object_id(kind, body)
    r = repo.push_stream([update("refs/tags/v1", None, tid)], pack_bytes([(kind, body)]))
    assert r.status == 200, r.body
    assert repo.refs().json()["refs"]["refs/tags/v1"] == tid.hex()
    r, got = repo.fetch([tid], [c1])  # the tag over history the client has: the tag alone
    assert r.status == 200, r.body
    assert set(got) == {tid}
    r, got = repo.fetch([tid], [])  # a clone of the tag: it and everything it names
    assert set(got) == {tid} | h.reachable(c1)


@pytest.mark.parametrize(
    "case",
    ["target_missing", "wrong_kind", "malformed_header", "names_a_tree_ref", "bad_name"],
)
def test_hostile_tags_are_refused(repo: HubClient, case: str) -> None:
    h, c1 = _seeded(repo)
    tree = O.commit_refs(h.objects[c1][1])[0]
    if case == "target_missing":
        obj, code = _tag(b"\1" * 32, O.COMMIT), "missing_objects"
    elif case == "wrong_kind":  # says commit, names a tree
        obj, code = _tag(tree, O.COMMIT), "missing_objects"
    elif case == "malformed_header":
        body = f"object {c1.hex()}\ntype commit\ntag v1\n\nno tagger\n".encode()
        obj, code = (O.TAG, body), "bad_pack"
    elif case == "bad_name":
        body = f"object {c1.hex()}\ntype commit\ntag a..b\ntagger {SIG.encode()}\n\n".encode()
        obj, code = (O.TAG, body), "bad_pack"
    else:  # a tag ref may name a commit or a tag, not a tree
        r = repo.push_stream([update("refs/tags/v1", None, tree)], pack_bytes([]))
        assert r.status == 400 and r.error == "bad_request", r.body
        assert "refs/tags/v1" not in repo.refs().json()["refs"]
        return
    tid = O.object_id(*obj)
    r = repo.push_stream([update("refs/tags/v1", None, tid)], pack_bytes([obj]))
    assert r.status == 400 and r.error == code, r.body
    assert "refs/tags/v1" not in repo.refs().json()["refs"]


def test_tag_moves_only_when_forced_and_deletes(repo: HubClient) -> None:
    h, c1 = _seeded(repo)
    c2 = h.commit({"a.txt": b"two"}, c1)
    assert repo.push_stream([update(MAIN, c1, c2)], h.pack_of({c2, *h.reachable(c2)})).status == 200
    assert repo.push_stream([update("refs/tags/v1", None, c1)], pack_bytes([])).status == 200
    r = repo.push_stream([update("refs/tags/v1", c1, c2)], pack_bytes([]))  # a fast-forward
    assert r.status == 409 and r.error == "tag_exists", r.body
    r = repo.push_stream([update("refs/tags/v1", c1, c2, force=True)], pack_bytes([]))
    assert r.status == 200, r.body
    r = repo.push_stream([update("refs/tags/v1", c2, None)], pack_bytes([]))
    assert r.status == 200, r.body
    assert set(repo.refs().json()["refs"]) == {MAIN}


def test_default_branch_is_never_deleted(repo: HubClient) -> None:
    _h, c1 = _seeded(repo)
    for force in (False, True):
        r = repo.push_stream([update(MAIN, c1, None, force=force)], pack_bytes([]))
        assert r.status == 409 and r.error == "default_branch", r.body
    assert repo.refs().json()["refs"] == {MAIN: c1.hex()}
    assert repo.push_stream([update("refs/heads/t", None, c1)], pack_bytes([])).status == 200
    assert repo.push_stream([update("refs/heads/t", c1, None)], pack_bytes([])).status == 200
