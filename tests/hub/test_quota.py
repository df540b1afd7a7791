"""Storage quotas (issue 16): per repository and per owner, refused with 413 quota_exceeded
on every transport path, with nothing stored; the `musehub quota` command."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from ops_util import add_commit, muse, musehub, start_backend, user_env, work_tree
from proto_util import History, HubClient, pack_bytes, request, update

from muse.core import objects as O
from musehub.quota import format_size

EXIT_HUB_REFUSED = 7
MAIN = "refs/heads/main"


def _ok(r: Any) -> Any:
    assert r.returncode == 0, r.stderr
    return r


def _used(hub: Any, name: str) -> int:
    """The bytes in use that `musehub quota show` reports for the first line's subject."""
    line = _ok(musehub(hub, "quota", "show", name)).stdout.splitlines()[0]
    m = re.search(r"used (\d+) bytes|used [\d.]+ \w+ \((\d+) bytes\)", line)
    assert m, line
    return int(m.group(1) or m.group(2))


def _stored(hub: Any) -> set[str]:
    """Every file of the hub's local storage (packs, indexes, uploads)."""
    root = hub.data_dir / "objects"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _refs(hub: Any, owner: str, slug: str, token: str) -> dict[str, str]:
    _, doc = hub.request("GET", f"/{owner}/{slug}/refs", token=token)
    return dict(doc["refs"])


def _refused_push(env: dict[str, str], root: Path, *args: str) -> str:
    r = muse(env, "push", *args, "origin", "main", cwd=root, check=False)
    assert r.returncode == EXIT_HUB_REFUSED, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines and "Traceback" not in r.stderr
    return lines[-1]


@pytest.mark.parametrize("backend", ["sqlite+local", "postgres+s3"])
@pytest.mark.parametrize("path", ["stream", "presign"])
def test_repo_quota_refuses_a_push_over_it_on_either_path(
    tmp_path: Path, start_hub: Any, backend: str, path: str, request: pytest.FixtureRequest
) -> None:
    env_quota = {"MUSEHUB_REPO_QUOTA_BYTES": "60000"}
    hub = start_backend(tmp_path, start_hub, backend, request, env=env_quota)
    alice = hub.create_user("alice")
    hub.create_repo("alice", "song")
    env = user_env(tmp_path, alice)
    root = work_tree(env, tmp_path / "src", hub.repo_url("alice", "song"), commits=1)
    used = _used(hub, "alice/song")
    assert 9000 < used < 60000  # under the quota: it passed
    refs = _refs(hub, "alice", "song", alice)
    stored = _stored(hub) if backend == "sqlite+local" else set()

    add_commit(env, root, "big", files=1, size=100_000)  # random bytes: no compression
    line = _refused_push(env, root, "--path", path)
    assert "quota_exceeded" in line and "refused the push" in line
    assert "quota of repository alice/song exceeded" in line
    assert "limit 58.6 KiB (60000 bytes)" in line
    assert "in use" in line and "this push" in line and "nothing was stored" in line
    # nothing stored: no packs row, no ref moved, no file left in storage
    assert _used(hub, "alice/song") == used
    assert _refs(hub, "alice", "song", alice) == refs
    if backend == "sqlite+local":
        assert _stored(hub) == stored

    # a larger quota for this repository: the same push goes through
    _ok(musehub(hub, "quota", "set", "alice/song", "1M"))
    muse(env, "push", "--path", path, "origin", "main", cwd=root)
    assert _used(hub, "alice/song") > used + 100_000


def test_user_quota_counts_all_their_repositories(tmp_path: Path, start_hub: Any) -> None:
    hub = start_hub(tmp_path / "hub", env={"MUSEHUB_USER_QUOTA_BYTES": "150000"})
    alice, bob = hub.create_user("alice"), hub.create_user("bob")
    for slug in ("one", "two"):
        hub.create_repo("alice", slug)
    hub.create_repo("bob", "one")
    env = user_env(tmp_path, alice)
    one = tmp_path / "one"
    muse(env, "init", str(one))
    muse(env, "remote", "add", "origin", hub.repo_url("alice", "one"), cwd=one)
    add_commit(env, one, "a", files=1, size=100_000)
    muse(env, "push", "-u", "origin", "main", cwd=one)

    two = tmp_path / "two"
    muse(env, "init", str(two))
    muse(env, "remote", "add", "origin", hub.repo_url("alice", "two"), cwd=two)
    add_commit(env, two, "b", files=1, size=100_000)
    line = _refused_push(env, two, "-u")
    assert "quota of user alice (all their repositories) exceeded" in line
    assert "limit 146.5 KiB (150000 bytes)" in line
    assert _refs(hub, "alice", "two", alice) == {}

    # another owner has their own room; an override for alice lets the push through
    benv = user_env(tmp_path / "b", bob)
    work_tree(benv, tmp_path / "bob", hub.repo_url("bob", "one"), commits=1, files=40)
    _ok(musehub(hub, "quota", "set", "alice", "unlimited"))
    muse(env, "push", "-u", "origin", "main", cwd=two)
    out = _ok(musehub(hub, "quota", "show", "alice")).stdout.splitlines()
    assert out[0].startswith("user alice (all their repositories): used ")
    assert out[0].endswith("quota unlimited, set for it")
    assert [x.split(":")[0] for x in out[1:]] == ["repository alice/one", "repository alice/two"]
    assert all("quota unlimited, the hub's repo_quota_bytes" in x for x in out[1:])
    # back to the hub's setting: alice is over it now, so any growth is refused
    _ok(musehub(hub, "quota", "set", "alice", "none"))
    assert "the hub's user_quota_bytes" in _ok(musehub(hub, "quota", "show", "alice")).stdout
    add_commit(env, two, "c", files=1, size=100)
    assert "quota of user alice" in _refused_push(env, two)


def test_exact_checks_behind_the_early_ones(tmp_path: Path, start_hub: Any) -> None:
    """The wire, byte for byte: Content-Length, a lying presign, staged packs, the final
    check in the ref transaction; ref deletions pass however far over the quota."""
    hub = start_hub(tmp_path / "hub")
    alice = hub.create_user("alice")
    hub.create_repo("alice", "song")
    repo = HubClient(hub.url, "alice", "song", alice)
    h = History()
    c1 = h.commit({"a.txt": b"one"})
    c2 = h.commit({"big.bin": os.urandom(60_000)}, c1)
    assert repo.push_stream([update(MAIN, None, c1)], h.pack_of(h.reachable(c1))).status == 200
    r = repo.push_stream([update("refs/heads/b", None, c1)], pack_bytes([]))
    assert r.status == 200
    _ok(musehub(hub, "quota", "set", "alice/song", "50000"))
    big = h.pack_of(h.reachable(c2) - h.reachable(c1))

    def refused(r: Any, push: str) -> None:
        assert r.status == 413 and r.error == "quota_exceeded", (r.status, r.body)
        msg = r.json()["message"]
        assert "quota of repository alice/song exceeded: limit 48.8 KiB (50000 bytes)" in msg
        assert f"this push {push}" in msg

    # stream with Content-Length: refused from the header, before the pack is read
    refused(repo.push_stream([update(MAIN, c1, c2)], big), format_size(len(big)))
    # presign: from the size the client gives; at commit from what was uploaded (here the
    # quota shrank in between, as when another push took the room)
    size = format_size(len(big))
    refused(repo.post_json("push/presign", {"size": len(big), "objects": 3}), size)
    _ok(musehub(hub, "quota", "set", "alice/song", "1M"))
    doc = repo.post_json("push/presign", {"size": len(big), "objects": 3}).json()
    put = request(doc["method"], doc["url"], body=big, headers=doc["headers"])
    assert put.status in (200, 201, 204)
    _ok(musehub(hub, "quota", "set", "alice/song", "50000"))
    updates = [update(MAIN, c1, c2)]
    refused(
        repo.post_json("push/commit", {"upload_id": doc["upload_id"], "updates": updates}), size
    )
    # a staged segment of blobs, chunked (no length): cut off once past the room
    blob = (O.BLOB, os.urandom(80_000))

    def chunks() -> Any:
        data = pack_bytes([blob])
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    r = request(
        "POST",
        f"{repo.base}/push/stage",
        body=chunks(),  # type: ignore[arg-type]
        headers={"Content-Type": "application/x-muse-pack", "Authorization": f"Bearer {alice}"},
    )
    refused(r, "more than")
    # within the early checks' slack, but over the quota: the transaction refuses it
    used = _used(hub, "alice/song")
    _ok(musehub(hub, "quota", "set", "alice/song", str(used + 100)))
    c3 = h.commit({"small.bin": os.urandom(1500)}, c1)
    r = repo.push_stream([update(MAIN, c1, c3)], h.pack_of(h.reachable(c3) - h.reachable(c1)))
    assert r.status == 413 and r.error == "quota_exceeded", (r.status, r.body)
    assert _used(hub, "alice/song") == used
    assert _refs(hub, "alice", "song", alice) == {MAIN: c1.hex(), "refs/heads/b": c1.hex()}
    # over the quota: deleting a ref still works
    _ok(musehub(hub, "quota", "set", "alice/song", "1"))
    assert repo.push_stream([update("refs/heads/b", c1, None)], pack_bytes([])).status == 200
    assert _refs(hub, "alice", "song", alice) == {MAIN: c1.hex()}
    _, doc = hub.request("GET", "/api/repos/alice/song", token=alice)
    assert doc["size_bytes"] == used and doc["quota_bytes"] == 1
    _ok(musehub(hub, "quota", "set", "alice/song", "none"))
    assert hub.request("GET", "/api/repos/alice/song")[1]["quota_bytes"] is None


def test_quota_command(tmp_path: Path, start_hub: Any) -> None:
    hub = start_hub(tmp_path / "hub", env={"MUSEHUB_REPO_QUOTA_BYTES": "2147483648"})
    hub.create_user("alice")
    hub.create_repo("alice", "song")
    out = _ok(musehub(hub, "quota", "show", "alice/song")).stdout.splitlines()
    assert out == [
        "repository alice/song: used 0 bytes, quota 2.0 GiB (2147483648 bytes), "
        "the hub's repo_quota_bytes",
        "user alice (all their repositories): used 0 bytes, quota unlimited, "
        "the hub's user_quota_bytes",
    ]
    for value, shown in [
        ("500M", "quota 500.0 MiB (524288000 bytes), set for it"),
        ("1.5GiB", "quota 1.5 GiB (1610612736 bytes), set for it"),
        ("1024", "quota 1.0 KiB (1024 bytes), set for it"),
        ("0", "quota unlimited, set for it"),
        ("none", "quota 2.0 GiB (2147483648 bytes), the hub's repo_quota_bytes"),
    ]:
        r = _ok(musehub(hub, "quota", "set", "alice/song", value))
        assert shown in r.stdout.splitlines()[0], (value, r.stdout)
    r = _ok(musehub(hub, "quota", "set", "alice", "2g"))
    assert "quota of alice: 2147483648 bytes" in r.stderr
    assert "quota 2.0 GiB (2147483648 bytes), set for it" in r.stdout.splitlines()[0]

    def refused(code: int, needle: str, *args: str) -> None:
        r = musehub(hub, "quota", *args)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("musehub: error: "), r.stderr
        assert needle in lines[0], lines

    for bad in ("abc", "-5", "5X", "1e9", "", "99999999P"):
        refused(2, "size", "set", "alice/song", bad)
    refused(3, "no user 'nobody'", "set", "nobody", "1M")
    refused(3, "no repository 'alice/nope'", "show", "alice/nope")
    refused(2, "expected OWNER/SLUG", "show", "alice/")
    assert (
        "quota 2.0 GiB (2147483648 bytes), set for it"
        in _ok(musehub(hub, "quota", "show", "alice")).stdout.splitlines()[0]
    )
