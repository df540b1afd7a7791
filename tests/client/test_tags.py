"""Tags end to end: the real `muse` command against a real hub process.

A lightweight and an annotated tag pushed from one clone reach another (fetch, pull) and a
fresh clone; push --tags sends every tag; a moved tag is refused without --force on both
sides; tag -d and push --delete remove a tag; fsck checks tag objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .conftest import Muse, write_files


def _setup(muse: Muse, tmp_path: Path, hub: Any) -> tuple[str, str, Path]:
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    url = hub.repo_url("alice", "song")
    muse.login(hub.url, token)
    a = tmp_path / "a"
    muse.run("init", str(a))
    write_files(a, {"verse.txt": "la la\n"})
    muse.run("commit", "-m", "first", cwd=a)
    muse.run("remote", "add", "origin", url, cwd=a)
    muse.run("push", "-u", "origin", "main", cwd=a)
    return url, token, a


def _hub_refs(hub: Any, token: str) -> dict[str, str]:
    _, body = hub.request("GET", "/alice/song/refs", token=token)
    return dict(body["refs"])


def _rev(muse: Muse, repo: Path, rev: str) -> str:
    return muse.run("show", rev, cwd=repo).stdout


def test_tags_travel_between_clones(muse: Muse, tmp_path: Path, hub: Any) -> None:
    url, token, a = _setup(muse, tmp_path, hub)
    b = tmp_path / "b"
    muse.run("clone", url, str(b))

    muse.run("tag", "v1", cwd=a)
    write_files(a, {"chorus.txt": "oh\n"})
    muse.run("commit", "-m", "second", cwd=a)
    muse.run("tag", "-a", "v2", "-m", "release two", cwd=a)
    head = muse.run("show", "HEAD", cwd=a).stdout.split()[1]
    first = muse.run("show", "HEAD~1", cwd=a).stdout.split()[1]

    push = muse.run("push", "origin", "v1", cwd=a)  # one tag by name
    assert "[new tag]" in push.stderr and "v1 -> v1" in push.stderr
    refs = _hub_refs(hub, token)
    assert refs["refs/tags/v1"] == first and "refs/tags/v2" not in refs
    muse.run("push", cwd=a)  # the branch
    muse.run("push", "--tags", cwd=a)  # every tag the hub lacks: v2
    refs = _hub_refs(hub, token)
    v2 = refs["refs/tags/v2"]
    assert v2 != head  # an annotated tag's ref names the tag object ...
    assert (a / ".muse/refs/tags/v2").read_text().strip() == v2

    fetched = muse.run("fetch", cwd=b)  # ... which another clone fetches, with its history
    assert "[new tag]  v1 -> v1" in fetched.stderr and "[new tag]  v2 -> v2" in fetched.stderr
    assert (b / ".muse/refs/tags/v2").read_text().strip() == v2
    shown = _rev(muse, b, "v2")
    assert shown.startswith("tag v2\nTagger: Test Author <test@example.invalid>\n")
    assert "release two" in shown and f"commit {head}" in shown
    assert muse.run("log", "--oneline", "v1", cwd=b).stdout.splitlines()[0].startswith(first[:12])
    assert muse.run("tag", "-l", cwd=b).stdout == "v1\nv2\n"
    assert muse.run("tag", "-l", "v2*", "-n", cwd=b).stdout.split() == ["v2", "release", "two"]
    muse.run("fsck", cwd=b)

    c = tmp_path / "c"  # a fresh clone gets every tag
    muse.run("clone", url, str(c))
    assert muse.run("tag", cwd=c).stdout == "v1\nv2\n"
    assert (c / ".muse/refs/tags/v2").read_text().strip() == v2
    muse.run("checkout", "v1", cwd=c)  # a tag names a commit for checkout too
    assert not (c / "chorus.txt").exists()
    muse.run("fsck", cwd=c)


def test_pull_brings_new_tags(muse: Muse, tmp_path: Path, hub: Any) -> None:
    url, _token, a = _setup(muse, tmp_path, hub)
    b = tmp_path / "b"
    muse.run("clone", url, str(b))
    write_files(a, {"more.txt": "more\n"})
    muse.run("commit", "-m", "more", cwd=a)
    muse.run("tag", "-a", "v3", "-m", "three", cwd=a)
    muse.run("push", cwd=a)
    muse.run("push", "origin", "v3", cwd=a)
    muse.run("fetch", "--no-tags", cwd=b)  # branches only
    assert muse.run("tag", cwd=b).stdout == ""
    muse.run("pull", cwd=b)
    assert "three" in _rev(muse, b, "v3")
    assert (b / "more.txt").read_text() == "more\n"


def test_a_moved_tag_needs_force(muse: Muse, tmp_path: Path, hub: Any) -> None:
    url, token, a = _setup(muse, tmp_path, hub)
    muse.run("tag", "v1", cwd=a)
    muse.run("push", "origin", "v1", cwd=a)
    old = _hub_refs(hub, token)["refs/tags/v1"]
    write_files(a, {"x.txt": "x\n"})
    muse.run("commit", "-m", "later", cwd=a)

    again = muse.run("tag", "v1", cwd=a, check=False)  # locally too
    assert again.returncode == 5 and "already exists" in again.stderr
    muse.run("tag", "-f", "v1", cwd=a)
    new = (a / ".muse/refs/tags/v1").read_text().strip()
    muse.run("push", cwd=a)

    for args in (["push", "origin", "v1"], ["push", "--tags"]):
        r = muse.run(*args, cwd=a, check=False)
        assert r.returncode == 5, r.stderr
        assert "already has tag v1" in r.stderr and "--force" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert _hub_refs(hub, token)["refs/tags/v1"] == old
    muse.run("push", "--force", "origin", "v1", cwd=a)
    assert _hub_refs(hub, token)["refs/tags/v1"] == new

    # a clone that has the old tag keeps it: a fetch never moves a local tag
    b = tmp_path / "b"
    muse.run("clone", url, str(b))
    muse.run("tag", "-f", "v1", "HEAD~1", cwd=b)
    r = muse.run("fetch", cwd=b)
    assert "[rejected]  v1 -> v1" in r.stderr
    assert (b / ".muse/refs/tags/v1").read_text().strip() == old


def test_hub_refuses_a_moved_tag_even_from_an_old_client_view(
    muse: Muse, tmp_path: Path, hub: Any
) -> None:
    """The hub's own rule (409 tag_exists), not only the client's early check."""
    import json
    import struct

    _url, token, a = _setup(muse, tmp_path, hub)
    muse.run("tag", "v1", cwd=a)
    muse.run("push", "origin", "v1", cwd=a)
    old = _hub_refs(hub, token)["refs/tags/v1"]
    write_files(a, {"x.txt": "x\n"})
    muse.run("commit", "-m", "later", cwd=a)
    muse.run("push", cwd=a)
    new = muse.run("show", "HEAD", cwd=a).stdout.split()[1]
    head = json.dumps({"updates": [{"ref": "refs/tags/v1", "old": old, "new": new}]}).encode()
    empty_pack = _empty_pack()
    status, body = hub.request(
        "POST",
        "/alice/song/push/stream",
        struct.pack(">I", len(head)) + head + empty_pack,
        token=token,
        headers={"Content-Type": "application/x-muse-push"},
        check=False,
    )
    assert status == 409 and body["error"] == "tag_exists", body
    assert _hub_refs(hub, token)["refs/tags/v1"] == old


def _empty_pack() -> bytes:
    import io

    from muse.core.pack.codec import write_pack

    out = io.BytesIO()
    write_pack(out, [])
    return out.getvalue()


def test_delete_a_tag_locally_and_on_the_hub(muse: Muse, tmp_path: Path, hub: Any) -> None:
    url, token, a = _setup(muse, tmp_path, hub)
    muse.run("tag", "-a", "v1", "-m", "one", cwd=a)
    muse.run("tag", "v1-light", cwd=a)
    muse.run("push", "--tags", cwd=a)
    assert {"refs/tags/v1", "refs/tags/v1-light"} <= set(_hub_refs(hub, token))

    out = muse.run("tag", "-d", "v1", cwd=a).stdout
    assert out.startswith("Deleted tag 'v1' (was ")
    assert muse.run("tag", cwd=a).stdout == "v1-light\n"
    gone = muse.run("tag", "-d", "v1", cwd=a, check=False)
    assert gone.returncode == 3 and "not found" in gone.stderr

    r = muse.run("push", "--delete", "origin", "v1", cwd=a)
    assert "[deleted]  v1" in r.stderr
    muse.run("push", "origin", ":refs/tags/v1-light", cwd=a)  # git's spelling
    refs = _hub_refs(hub, token)
    assert not any(r.startswith("refs/tags/") for r in refs) and "refs/heads/main" in refs
    missing = muse.run("push", "--delete", "origin", "v1", cwd=a, check=False)
    assert missing.returncode == 3 and "to delete" in missing.stderr

    c = tmp_path / "c"
    muse.run("clone", url, str(c))
    assert muse.run("tag", cwd=c).stdout == ""


def test_fsck_refuses_hostile_tags(muse: Muse, tmp_path: Path) -> None:
    """Tags whose target is missing, of another kind, or whose header is malformed."""
    from muse.core.objects import BLOB, COMMIT, TAG, Signature, Tag
    from muse.core.repo import Repository

    a = tmp_path / "a"
    muse.run("init", str(a))
    write_files(a, {"f": "f\n"})
    muse.run("commit", "-m", "one", cwd=a)
    repo = Repository(str(a))
    head = repo.head_commit()
    assert head is not None
    sig = Signature("T", "t@x", 0)
    blob = repo.store.put(BLOB, b"just bytes")
    cases = {
        "missing": Tag(b"\1" * 32, COMMIT, "missing", sig, "").encode(),
        "wrongkind": Tag(blob, COMMIT, "wrongkind", sig, "").encode(),
        "malformed": f"object {head.hex()}\ntype commit\ntag malformed\n\nno tagger\n".encode(),
    }
    for name, body in cases.items():
        oid = repo.store.put(TAG, body)
        repo.refs.update(f"refs/tags/{name}", oid)
    r = muse.run("fsck", cwd=a, check=False)
    assert r.returncode == 1
    assert "missing commit 0101" in r.stderr
    assert f"{blob.hex()} is a blob, expected a commit" in r.stderr
    assert "malformed tag" in r.stderr


def test_tags_on_the_presign_path(muse: Muse, tmp_path: Path, hub: Any) -> None:
    """The bundle path carries tag objects too: push, then clone and fetch, both forced."""
    url, token, a = _setup(muse, tmp_path, hub)
    muse.run("tag", "-a", "v1", "-m", "one", cwd=a)
    out = muse.json("push", "--path", "presign", "origin", "v1", cwd=a)
    assert out["path"] == "presign" and out["objects"] == 1  # the tag object alone
    c = tmp_path / "c"
    muse.run("clone", "--path", "presign", url, str(c))
    assert "one" in _rev(muse, c, "v1")
    write_files(a, {"late.txt": "late\n"})
    muse.run("commit", "-m", "late", cwd=a)
    muse.run("tag", "-a", "v2", "-m", "two", cwd=a)
    muse.run("push", "--path", "presign", cwd=a)
    muse.run("push", "--path", "presign", "--tags", cwd=a)
    muse.run("fetch", "--path", "presign", cwd=c)
    assert "two" in _rev(muse, c, "v2")
    muse.run("fsck", cwd=c)
    assert set(_hub_refs(hub, token)) == {"refs/heads/main", "refs/tags/v1", "refs/tags/v2"}
