"""fetch/bundle against a real `musehub serve`: both paths, clone reuse, negotiation."""

from __future__ import annotations

import itertools
import os
import time

import pytest
from proto_util import History, HubClient, request, update

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


def _new_repo(hub) -> HubClient:  # type: ignore[no-untyped-def]
    slug = f"r{next(_slugs)}"
    hub.create_repo("alice", slug)
    return HubClient(hub.url, "alice", slug, hub.alice)


def _grow(h: History, parent: bytes | None, commits: int, files: int, tag: str) -> list[bytes]:
    out = []
    for k in range(commits):
        changes: dict[str, bytes | None] = {
            f"part{k % 5}/{tag}{k}-{i}.bin": os.urandom(64) for i in range(files)
        }
        parent = h.commit(changes, parent, f"{tag} {k}")
        out.append(parent)
    return out


@pytest.fixture(scope="module")
def seeded(hub):  # type: ignore[no-untyped-def]
    """A repository of 40 commits (200 files) pushed in one go, plus its in-memory history."""
    repo = _new_repo(hub)
    h = History()
    tips = _grow(h, None, 40, 5, "s")
    r = repo.push_stream([update(MAIN, None, tips[-1])], h.pack_of(h.reachable(tips[-1])))
    assert r.status == 200, r.body
    return repo, h, tips


@pytest.mark.parametrize("path", ["stream", "presign", "auto"])
def test_clone_equals_source(seeded, path: str) -> None:  # type: ignore[no-untyped-def]
    repo, h, tips = seeded
    r, objs = repo.fetch([tips[-1]], [], path)
    assert r.status == 200, r.body
    assert r.headers["muse-protocol"] == "1"
    want = h.reachable(tips[-1])
    assert set(objs) == want
    for oid, (kind, body) in objs.items():
        assert h.objects[oid] == (kind, body)
    if path == "presign":
        assert r.json()["path"] == "presign" and r.json()["objects"] == len(want)
    else:  # 200 blobs: auto streams
        assert r.headers["content-type"].startswith("application/x-muse-pack")
        assert int(r.headers["muse-objects"]) == len(want)


def test_fetch_sends_only_what_is_missing(seeded) -> None:  # type: ignore[no-untyped-def]
    repo, h, tips = seeded
    for path in ("stream", "presign"):
        r, objs = repo.fetch([tips[-1]], [tips[-2]], path)
        assert r.status == 200, r.body
        assert set(objs) == h.reachable(tips[-1]) - h.reachable(tips[-2])
        # One commit that added 5 files in part4/: commit, root tree, part tree, 5 blobs.
        assert len(objs) == 8
    # Half-way: exactly the objects of the later half.
    r, objs = repo.fetch([tips[-1]], [tips[19]])
    assert set(objs) == h.reachable(tips[-1]) - h.reachable(tips[19])
    # Unknown haves are ignored; haves equal to wants: nothing to send.
    r, objs = repo.fetch([tips[-1]], [tips[-1], b"\x42" * 32])
    assert r.status == 200 and objs == {}


def test_unknown_want(seeded) -> None:  # type: ignore[no-untyped-def]
    repo, _, _ = seeded
    r, _ = repo.fetch([b"\x42" * 32])
    assert (r.status, r.error) == (400, "unknown_want")
    assert r.headers["muse-protocol"] == "1"


def test_clone_reuses_stored_packs(hub) -> None:  # type: ignore[no-untyped-def]
    """A clone by presign hands out the pushed packs themselves, and the same on each call."""
    repo = _new_repo(hub)
    h = History()
    a = _grow(h, None, 3, 2, "a")
    b = _grow(h, a[-1], 3, 2, "b")
    assert (
        repo.push_stream([update(MAIN, None, a[-1])], h.pack_of(h.reachable(a[-1]))).status == 200
    )
    new = h.reachable(b[-1]) - h.reachable(a[-1])
    assert repo.push_presign([update(MAIN, a[-1], b[-1])], h.pack_of(new)).status == 200
    r1, objs = repo.fetch([b[-1]], [], "presign")
    assert set(objs) == h.reachable(b[-1])
    bundles = r1.json()["bundles"]
    assert len(bundles) == 2  # the two pushed packs, not a rebuilt one
    assert all("/packs/" in b_["url"] for b_ in bundles)
    r2, _ = repo.fetch([b[-1]], [], "presign")
    assert [x["size"] for x in r2.json()["bundles"]] == [x["size"] for x in bundles]


def test_clone_after_force_push_builds_one_cached_bundle(hub) -> None:  # type: ignore[no-untyped-def]
    repo = _new_repo(hub)
    h = History()
    a = _grow(h, None, 3, 2, "a")
    assert (
        repo.push_stream([update(MAIN, None, a[-1])], h.pack_of(h.reachable(a[-1]))).status == 200
    )
    other = _grow(h, a[0], 2, 2, "o")  # rewrites history: a[1], a[2] become unreachable
    new = h.reachable(other[-1]) - h.reachable(a[-1])
    r = repo.push_stream([update(MAIN, a[-1], other[-1], force=True)], h.pack_of(new))
    assert r.status == 200, r.body
    r1, objs = repo.fetch([other[-1]], [], "presign")
    assert set(objs) == h.reachable(other[-1])  # the orphans are not sent
    (bundle,) = r1.json()["bundles"]
    assert "/bundles/" in bundle["url"]
    r2, objs2 = repo.fetch([other[-1]], [], "presign")
    (bundle2,) = r2.json()["bundles"]
    # The same stored bundle (same key), not rebuilt: only the signature/expiry may differ.
    assert bundle2["url"].split("?")[0] == bundle["url"].split("?")[0]
    assert objs2 == objs


def test_path_threshold_counts_blobs(hub) -> None:  # type: ignore[no-untyped-def]
    """Exactly 500 blobs stream, 501 go by presign (docs/wire.md §3)."""
    repo = _new_repo(hub)
    h = History()
    c1 = h.commit({f"d{i % 10}/f{i}": os.urandom(32) for i in range(500)})
    assert repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1))).status == 200
    r, objs = repo.fetch([c1])
    assert r.headers["content-type"].startswith("application/x-muse-pack")
    assert sum(1 for k, _ in objs.values() if k == O.BLOB) == 500
    c2 = h.commit({"extra": b"one more"}, c1)
    assert (
        repo.push_stream(
            [update(MAIN, c1, c2)], h.pack_of(h.reachable(c2) - h.reachable(c1))
        ).status
        == 200
    )
    r, objs = repo.fetch([c2])
    assert r.json()["path"] == "presign"
    assert set(objs) == h.reachable(c2)
    # A pull of the one new commit streams again.
    r, objs = repo.fetch([c2], [c1])
    assert r.headers["content-type"].startswith("application/x-muse-pack")
    assert set(objs) == h.reachable(c2) - h.reachable(c1)


def test_presigned_bundle_urls_are_checked(seeded) -> None:  # type: ignore[no-untyped-def]
    repo, _, tips = seeded
    r, _ = repo.fetch([tips[-1]], [tips[0]], "presign")
    url = r.json()["bundles"][0]["url"]
    if "/_storage/" not in url:
        pytest.skip("not the local storage backend")
    assert request("GET", url).status == 200
    forged = url.replace("sig=", "sig=0")
    g = request("GET", forged)
    assert (g.status, g.error) == (403, "bad_signature")
    import re

    expired = re.sub(r"exp=\d+", "exp=1000", url)
    g = request("GET", expired)
    assert (g.status, g.error) == (403, "bad_signature")
    put = request("PUT", url, body=b"x")
    assert put.status == 403


def test_many_pushes_are_repacked(hub) -> None:  # type: ignore[no-untyped-def]
    """Past 16 packs the hub merges them (in the background); reads stay correct meanwhile."""
    from sqlalchemy import create_engine, text

    repo = _new_repo(hub)
    h = History()
    tip = None
    for k in range(20):
        new = h.commit({f"d{k % 3}/f{k}": os.urandom(100)}, tip)
        pack = h.pack_of(h.reachable(new) - (h.reachable(tip) if tip else set()))
        r = repo.push_stream([update(MAIN, tip, new)], pack)
        assert r.status == 200, r.body
        tip = new
        r, objs = repo.fetch([tip], [], "stream")
        assert set(objs) == h.reachable(tip)
    assert tip is not None
    engine = create_engine(hub.database_url)
    slug = repo.base.rsplit("/", 1)[1]
    query = text(
        "SELECT count(*) FROM packs JOIN repos ON repos.id = packs.repo_id WHERE repos.slug = :s"
    )
    deadline = time.time() + 20
    while True:
        with engine.connect() as conn:
            count = conn.execute(query, {"s": slug}).scalar_one()
        if count <= 16 or time.time() > deadline:
            break
        time.sleep(0.2)
    engine.dispose()
    assert count <= 16
    r, objs = repo.fetch([tip], [], "presign")
    assert set(objs) == h.reachable(tip)
    assert len(r.json()["bundles"]) <= 8
    r, objs = repo.fetch([tip], [list(h.files)[10]])
    assert set(objs) == h.reachable(tip) - h.reachable(list(h.files)[10])


def test_pull_of_the_last_push_hands_out_its_pack(hub) -> None:  # type: ignore[no-untyped-def]
    """What a pull lacks is often exactly the newest pushed pack: sent as is, nothing built."""
    repo = _new_repo(hub)
    h = History()
    a = _grow(h, None, 4, 3, "a")
    b = _grow(h, a[-1], 4, 3, "b")
    assert (
        repo.push_stream([update(MAIN, None, a[-1])], h.pack_of(h.reachable(a[-1]))).status == 200
    )
    new = h.reachable(b[-1]) - h.reachable(a[-1])
    assert repo.push_stream([update(MAIN, a[-1], b[-1])], h.pack_of(new)).status == 200
    r, objs = repo.fetch([b[-1]], [a[-1]], "presign")
    assert set(objs) == new
    (bundle,) = r.json()["bundles"]
    assert "/packs/" in bundle["url"]
    r, objs = repo.fetch([b[-1]], [a[-1]], "stream")
    assert set(objs) == new and int(r.headers["muse-objects"]) == len(new)
    # A pull from the middle of that push is not a stored pack: a bundle is built for it.
    r, objs = repo.fetch([b[-1]], [b[1]], "presign")
    assert set(objs) == h.reachable(b[-1]) - h.reachable(b[1])
    assert "/bundles/" in r.json()["bundles"][0]["url"]
