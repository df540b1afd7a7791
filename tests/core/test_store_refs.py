"""ObjectStore, RefStore, config and identity through their public interfaces."""

from __future__ import annotations

import hashlib
import os

import pytest

from muse.core import config as cfg
from muse.core.objects import BLOB, TREE, ObjectFormatError, encode_tree, object_id
from muse.core.refs import ANY, RefConflict
from muse.core.repo import NotARepository, RepoExists, Repository, UnknownRevision
from muse.core.store import loose_bytes


@pytest.fixture
def repo(tmp_path):
    return Repository.init(str(tmp_path / "r"))


def test_init_layout_and_find(tmp_path, repo):
    for sub in ("objects", "packs", "refs/heads", "config", "HEAD"):
        assert os.path.exists(os.path.join(repo.muse_dir, sub))
    deep = os.path.join(repo.root, "a", "b")
    os.makedirs(deep)
    assert Repository.find(deep).root == repo.root
    with pytest.raises(RepoExists):
        Repository.init(repo.root)
    with pytest.raises(NotARepository):
        Repository.find(str(tmp_path))


def test_loose_roundtrip_and_file_hash_is_name(repo):
    oid = repo.store.put(BLOB, b"hello\n")
    assert oid == object_id(BLOB, b"hello\n")
    assert repo.store.get(oid) == (BLOB, b"hello\n")
    assert repo.store.has(oid)
    with open(repo.store.loose_path(oid), "rb") as f:
        raw = f.read()
    assert raw[:1] == b"\x78"  # a zlib stream: compressed at rest
    assert hashlib.sha256(loose_bytes(raw)).digest() == oid
    assert repo.store.put(BLOB, b"hello\n") == oid  # idempotent
    assert list(repo.store.iter_ids()) == [oid]
    assert repo.store.get(bytes(32)) is None
    assert not any(
        n.startswith(".tmp") for n in os.listdir(os.path.dirname(repo.store.loose_path(oid)))
    )


def test_loose_object_written_before_compression_still_reads(repo):
    """A loose file holding the hashed bytes as they are (the old layout) is read and fsck'd."""
    body = b"old layout\n" * 20
    oid = object_id(BLOB, body)
    path = repo.store.loose_path(oid)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"blob %d\0" % len(body) + body)
    assert repo.store.get(oid) == (BLOB, body)
    from muse.core.fsck import fsck

    assert fsck(repo).problems == []


def test_corrupt_compressed_loose_object_is_reported_by_fsck(repo):
    from muse.core.fsck import fsck

    oid = repo.store.put(BLOB, b"x" * 5000)
    path = repo.store.loose_path(oid)
    with open(path, "rb") as f:
        raw = bytearray(f.read())
    raw[-3] ^= 0xFF
    os.chmod(path, 0o644)
    with open(path, "wb") as f:
        f.write(raw)
    problems = fsck(repo).problems
    assert len(problems) == 1 and oid.hex() in problems[0]


def test_empty_blob_and_tree(repo):
    e = repo.store.put(BLOB, b"")
    assert repo.store.get(e) == (BLOB, b"")
    t = repo.store.put(TREE, encode_tree([("f", 1, e)]))
    assert repo.store.get(t)[0] == TREE


def test_prefix_resolution(repo):
    oid = repo.store.put(BLOB, b"x")
    assert repo.resolve(oid.hex()[:6], None) == oid
    with pytest.raises(UnknownRevision):
        repo.resolve("abc", None)  # too short
    with pytest.raises(UnknownRevision):
        repo.resolve("nonexistent-branch")


def test_ref_cas(repo):
    a, b = object_id(BLOB, b"a"), object_id(BLOB, b"b")
    refs = repo.refs
    refs.update("refs/heads/x", a, None)
    assert refs.read("refs/heads/x") == a
    with pytest.raises(RefConflict):
        refs.update("refs/heads/x", b, None)
    with pytest.raises(RefConflict):
        refs.update("refs/heads/x", b, b)
    refs.update("refs/heads/x", b, a)
    refs.update("refs/heads/x", a, ANY)
    assert refs.list() == {"refs/heads/x": a}
    refs.update("refs/heads/feature/y", a, None)
    with pytest.raises(RefConflict):  # a ref and a directory of refs cannot share a name
        refs.update("refs/heads/x/z", a, None)
    assert set(refs.list("refs/heads/")) == {"refs/heads/x", "refs/heads/feature/y"}
    refs.update("refs/heads/feature/y", None, a)
    assert refs.read("refs/heads/feature/y") is None
    assert not os.path.exists(os.path.join(repo.muse_dir, "refs", "heads", "feature"))
    with pytest.raises(ValueError):
        refs.update("refs/heads/bad..name", a)


def test_ref_lock_is_respected(repo):
    a = object_id(BLOB, b"a")
    lock = os.path.join(repo.muse_dir, "refs", "heads", "main.lock")
    open(lock, "w").close()
    with pytest.raises(RefConflict, match="locked"):
        repo.refs.update("refs/heads/main", a, None)
    os.unlink(lock)
    repo.refs.update("refs/heads/main", a, None)


def test_head_attached_and_detached(repo):
    a = object_id(BLOB, b"a")
    assert repo.refs.head() == ("refs/heads/main", None)
    repo.refs.update_head(a, None)
    assert repo.refs.head() == ("refs/heads/main", a)
    repo.refs.set_head_detached(a)
    assert repo.refs.head() == (None, a)
    assert repo.current_branch() is None
    repo.refs.set_head("refs/heads/other")
    assert repo.refs.head() == ("refs/heads/other", None)


def test_config_roundtrip(repo):
    repo.config.setdefault("remote", {})["origin"] = {"url": 'http://x/"q"', "n": 3, "b": True}
    cfg.set_value(repo.config, "user.name", "Ada Lovelace")
    repo.save_config()
    again = Repository(repo.root).config
    assert again["remote"]["origin"] == {"url": 'http://x/"q"', "n": 3, "b": True}
    assert cfg.get_value(again, "user.name") == "Ada Lovelace"
    assert cfg.unset_value(again, "remote.origin.url")
    text = cfg.dumps({"a b": {"c.d": ["x", 1]}})
    import tomllib

    assert tomllib.loads(text) == {"a b": {"c.d": ["x", 1]}}


def test_signature_sources(repo, monkeypatch):
    monkeypatch.setenv("MUSE_CONFIG_GLOBAL", os.path.join(repo.root, "global.toml"))
    for v in ("MUSE_AUTHOR_NAME", "MUSE_AUTHOR_EMAIL", "MUSE_AUTHOR_DATE"):
        monkeypatch.delenv(v, raising=False)
    cfg.set_value(repo.config, "user.name", "Cfg Name")
    cfg.set_value(repo.config, "user.email", "cfg@example.org")
    s = repo.signature()
    assert (s.name, s.email) == ("Cfg Name", "cfg@example.org")
    monkeypatch.setenv("MUSE_AUTHOR_NAME", "Env Name")
    monkeypatch.setenv("MUSE_AUTHOR_DATE", "1704067200 +0130")
    s = repo.signature("COMMITTER")
    assert (s.name, s.time, s.tz_minutes) == ("Env Name", 1704067200, 90)
    monkeypatch.setenv("MUSE_AUTHOR_DATE", "2024-01-01T00:00:00Z")
    assert repo.signature().time == 1704067200


def test_loose_object_vector_of_docs_format(repo):
    """docs/format.md 2.1: the vector's stream is read as the blob "hello\n", and what we
    write inflates to the same hashed bytes (zlib builds may differ in the bytes they emit)."""
    vector = bytes.fromhex("789c4bcac94f523063c848cdc9c9e70200 1dc50414".replace(" ", ""))
    assert loose_bytes(vector) == b"blob 6\0hello\n"
    oid = repo.store.put(BLOB, b"hello\n")
    with open(repo.store.loose_path(oid), "rb") as f:
        assert loose_bytes(f.read()) == b"blob 6\0hello\n"
    for bad in (vector + b"!", vector[:-1], b"\x78\x9c garbage"):
        with pytest.raises(ObjectFormatError):
            loose_bytes(bad)
