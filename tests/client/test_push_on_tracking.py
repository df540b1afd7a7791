"""A presigned push to a hub seen before is planned on the remote-tracking refs and asks for
the hub's refs with its presign (docs/wire.md §4 push/presign): presign, PUT, commit, three
requests as git's push makes. A plan the hub's refs do not bear out is made again on them
before anything is uploaded: a hub that moved on refuses the push in the usual words, and a
hub that has more than our tracking refs say is sent only what it lacks.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fixtures import Hub

from muse.client.transport import origin_of
from muse.core.repo import Repository

from .conftest import Muse, tree_of, write_files


def _commit(muse: Muse, root: Path, files: dict[str, bytes | str | None], msg: str) -> None:
    write_files(root, files)
    muse.run("commit", "-m", msg, cwd=root)


def _setup(hub: Hub, muse: Muse, tmp_path: Path, user: str) -> tuple[Path, str]:
    token = hub.create_user(user)
    hub.create_repo(user, "song")
    muse.login(hub.url, token)
    src = tmp_path / "src"
    muse.run("init", str(src))
    _commit(muse, src, {f"stems/s{i}.txt": f"take {i}\n" * (40 + i) for i in range(8)}, "one")
    url = hub.repo_url(user, "song")
    muse.run("remote", "add", "origin", url, cwd=src)
    first = muse.json("push", "--path", "presign", "-u", "origin", "main", cwd=src)
    assert first["requests"] == 4  # no cache yet: refs, presign, PUT, commit
    return src, url


def _hub_main(hub: Hub, user: str) -> str | None:
    req = urllib.request.Request(f"{hub.url}/{user}/song/refs")
    req.add_header("Authorization", f"Bearer {hub.admin_token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        refs: dict[str, Any] = json.load(r)["refs"]
    return refs.get("refs/heads/main")


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_a_push_after_contact_makes_three_requests(
    backend: str, hub: Hub, s3_hub: Hub, muse: Muse, tmp_path: Path
) -> None:
    h = hub if backend == "local" else s3_hub
    src, url = _setup(h, muse, tmp_path, "alice")
    cache = json.loads((Path(muse.env["MUSE_CONFIG_DIR"]) / "hubs.json").read_text())
    facts = cache[origin_of(h.url)]  # what the first push's refs answer said
    assert facts["limits"]["stream_max_blobs"] > 0
    assert (facts["store_origin"] is None) == (backend == "local")
    _commit(muse, src, {"mix.txt": "louder\n" * 100, "stems/s0.txt": None}, "two")
    out = muse.json("push", "--path", "presign", cwd=src)
    assert out["path"] == "presign"
    assert out["requests"] == 3, out  # presign (with the refs), PUT, commit
    tip = Repository(str(src)).refs.read("refs/heads/main")
    assert tip is not None and _hub_main(h, "alice") == tip.hex()
    dst = tmp_path / "dst"
    muse.run("clone", url, str(dst))
    muse.run("fsck", cwd=dst)
    assert tree_of(dst) == tree_of(src)


def test_a_hub_that_moved_on_refuses_before_any_upload(
    hub: Hub, muse: Muse, tmp_path: Path
) -> None:
    src, url = _setup(hub, muse, tmp_path, "bob")
    other = tmp_path / "other"
    muse.run("clone", url, str(other))
    _commit(muse, other, {"theirs.txt": "their take\n"}, "theirs")
    muse.run("push", cwd=other)
    theirs = _hub_main(hub, "bob")
    _commit(muse, src, {"ours.txt": "our take\n"}, "ours")
    cp = muse.run("push", "--path", "presign", "--json", cwd=src, check=False)
    assert cp.returncode != 0
    assert "muse pull" in cp.stderr, cp.stderr  # the usual non-fast-forward words
    assert "Traceback" not in cp.stderr
    assert _hub_main(hub, "bob") == theirs


def test_a_hub_with_more_than_the_tracking_refs_say_gets_only_what_it_lacks(
    hub: Hub, muse: Muse, tmp_path: Path
) -> None:
    src, url = _setup(hub, muse, tmp_path, "carol")
    repo = Repository(str(src))
    repo.refs.update("refs/remotes/origin/main", None)  # as if never fetched
    muse.run("branch", "feature", cwd=src)
    muse.run("checkout", "feature", cwd=src)
    _commit(muse, src, {"bridge.txt": "a bridge\n"}, "bridge")
    out = muse.json("push", "--path", "presign", "origin", "feature", cwd=src)
    # planned on no tracking refs: the whole history; the presign's refs showed the hub's
    # main, which we have, so it was planned again and only the new commit's objects went
    assert out["objects"] == 3, out  # the commit, its root tree, the new blob
    assert out["requests"] == 4, out  # the presign left unused, then presign, PUT, commit
    dst = tmp_path / "dst"
    muse.run("clone", "--branch", "feature", url, str(dst))
    muse.run("fsck", cwd=dst)
    assert tree_of(dst) == tree_of(src)
