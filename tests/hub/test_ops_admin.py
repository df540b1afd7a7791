"""Administration from the `musehub` command (issue 16): repositories, collaborators, users,
the effective settings; no silent second hub; the REST API's rules hold for what it did."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fixtures import hub_env
from ops_util import clone_and_fsck, musehub, user_env, work_tree


def _ok(r: Any) -> Any:
    assert r.returncode == 0, r.stderr
    return r


def _refused(r: Any, code: int, needle: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musehub: error: ") and needle in lines[0]


@pytest.mark.parametrize("backend", ["sqlite+local", "postgres+s3"])
def test_repositories_collaborators_and_users(
    tmp_path: Path, start_hub: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite+local":
        hub = start_hub(tmp_path / "hub")
    else:
        pg, s3 = request.getfixturevalue("postgres"), request.getfixturevalue("seaweedfs")
        hub = start_hub(tmp_path / "hub", storage="s3", s3=s3, database=pg.new_database())
    alice, bob = hub.create_user("alice"), hub.create_user("bob")
    r = _ok(musehub(hub, "repo", "create", "alice/song"))
    assert r.stdout == "alice/song\n" and "created public repository alice/song" in r.stderr
    r = _ok(musehub(hub, "repo", "create", "alice/secret", "--private"))
    assert "created private repository alice/secret" in r.stderr
    env = user_env(tmp_path, alice)
    work_tree(env, tmp_path / "src", hub.repo_url("alice", "song"))
    cached = set(os.listdir(hub.data_dir / "cache" / "packs"))
    assert cached

    # collaborators: bob may push once added, not after removal
    assert hub.request("GET", "/alice/secret/refs", token=bob, check=False)[0] == 404
    _ok(musehub(hub, "collaborator", "add", "alice/secret", "bob"))
    assert _ok(musehub(hub, "collaborator", "list", "alice/secret")).stdout == "bob\n"
    assert hub.request("GET", "/alice/secret/refs", token=bob)[0] == 200
    _ok(musehub(hub, "collaborator", "remove", "alice/secret", "bob"))
    assert _ok(musehub(hub, "collaborator", "list", "alice/secret")).stdout == ""
    assert hub.request("GET", "/alice/secret/refs", token=bob, check=False)[0] == 404
    _refused(musehub(hub, "collaborator", "add", "alice/secret", "alice"), 2, "owns")
    _refused(musehub(hub, "collaborator", "add", "alice/nope", "bob"), 3, "no repository")

    # visibility
    _ok(musehub(hub, "repo", "set-private", "alice/song"))
    assert hub.request("GET", "/alice/song/refs", check=False)[0] == 404
    _ok(musehub(hub, "repo", "set-public", "alice/song"))
    assert hub.request("GET", "/alice/song/refs")[0] == 200

    # rename keeps the history; the old name is gone, a taken one refused
    _ok(musehub(hub, "repo", "rename", "alice/song", "tune"))
    assert hub.request("GET", "/alice/song/refs", check=False)[0] == 404
    assert clone_and_fsck(env, hub.repo_url("alice", "tune"), tmp_path / "clone")
    _refused(musehub(hub, "repo", "rename", "alice/tune", "secret"), 4, "exists")
    _refused(musehub(hub, "repo", "rename", "alice/tune", "bad/slug"), 2, "")

    # delete: refused without --yes when not on a terminal; then rows, objects, cache go
    _refused(musehub(hub, "repo", "delete", "alice/tune"), 2, "--yes")
    assert hub.request("GET", "/alice/tune/refs")[0] == 200
    _ok(musehub(hub, "repo", "delete", "alice/tune", "--yes"))
    assert hub.request("GET", "/alice/tune/refs", check=False)[0] == 404
    assert not cached & set(os.listdir(hub.data_dir / "cache" / "packs"))
    if backend == "sqlite+local":
        assert not list((hub.data_dir / "objects" / "repos").glob("*/packs/*"))

    # users: a disabled user's tokens stop at once, and work again when enabled
    assert hub.request("GET", "/api/user", token=bob)[0] == 200
    _ok(musehub(hub, "user", "disable", "bob"))
    status, body = hub.request("GET", "/api/user", token=bob, check=False)
    assert status == 403 and body["error"] == "user_disabled"
    assert "bob  (disabled)" in _ok(musehub(hub, "user", "list")).stdout
    _ok(musehub(hub, "user", "enable", "bob"))
    assert hub.request("GET", "/api/user", token=bob)[0] == 200
    _refused(musehub(hub, "user", "delete", "alice"), 2, "--yes")
    _ok(musehub(hub, "user", "delete", "alice", "--yes"))
    assert hub.request("GET", "/api/user", token=alice, check=False)[0] == 401
    assert hub.request("GET", "/alice/secret/refs", token=hub.admin_token, check=False)[0] == 404
    assert "alice" not in _ok(musehub(hub, "user", "list")).stdout.split()
    _refused(musehub(hub, "user", "disable", "ghost"), 3, "no user")


def test_no_second_hub_by_accident(tmp_path: Path) -> None:
    elsewhere = hub_env(tmp_path / "elsewhere", 1)
    hub = type("H", (), {"env": elsewhere})()
    for args in (["repo", "list"], ["user", "list"], ["token", "list"], ["user", "add", "x"]):
        _refused(musehub(hub, *args), 3, "no hub in")
    assert not (tmp_path / "elsewhere").exists()  # nothing was created
    r = _ok(musehub(hub, "repo", "list", "--init"))
    assert "creating a new, empty hub" in r.stderr
    assert _ok(musehub(hub, "repo", "list")).stderr == ""  # it exists now: no warning


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = hub_env(tmp_path / "d", 1)
    env.update(
        MUSEHUB_DATABASE_URL="postgresql+psycopg://hub:pa55word@127.0.0.1:1/hub",
        MUSEHUB_S3_SECRET_KEY="s3-very-secret",
        MUSEHUB_METRICS_TOKEN="metrics-secret",
        MUSEHUB_SECRET_KEY="signing-secret",
        MUSEHUB_MAX_PACK_BYTES="12345",
    )
    r = _ok(musehub(type("H", (), {"env": env})(), "config", "show"))
    for secret in ("pa55word", "s3-very-secret", "metrics-secret", "signing-secret"):
        assert secret not in r.stdout
    import tomllib

    doc = tomllib.loads(r.stdout)
    assert doc["database_url"] == "postgresql+psycopg://hub:***@127.0.0.1:1/hub"
    assert doc["metrics_token"] == doc["s3_secret_key"] == "********"
    assert doc["limits"]["max_pack_bytes"] == 12345
    assert doc["data_dir"] == str(tmp_path / "d")
