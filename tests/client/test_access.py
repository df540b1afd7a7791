"""Tokens, private repositories, remotes, exit codes and one-line messages."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from .conftest import Muse, tree_of, write_files


def _repo(muse: Muse, root: Path) -> None:
    muse.run("init", str(root))
    write_files(root, {"song.txt": "la la\n"})
    muse.run("commit", "-m", "one", cwd=root)


def test_private_repository(muse: Muse, new_muse: Any, tmp_path: Path, hub: Any) -> None:
    alice = hub.create_user("alice")
    bob_token = hub.create_user("bob")
    hub.create_repo("alice", "secret", private=True)
    url = hub.repo_url("alice", "secret")

    # anonymous: the private repository does not exist (404 -> exit 3), message says what to do
    src = tmp_path / "src"
    _repo(muse, src)
    muse.run("remote", "add", "origin", url, cwd=src)
    cp = muse.run("push", cwd=src, check=False)
    assert cp.returncode == 3, cp.stderr
    assert "auth login" in cp.stderr and len(cp.stderr.strip().splitlines()) == 1

    # a wrong token: no access (exit 4)
    cp = muse.run("push", cwd=src, check=False, env={"MUSE_TOKEN": "mh_not_a_real_token"})
    assert cp.returncode == 4, cp.stderr
    assert "auth login" in cp.stderr

    # login stores the token 0600; push and clone use it
    muse.login(hub.url, alice)
    cred = Path(muse.env["MUSE_CONFIG_DIR"]) / "credentials.toml"
    assert stat.S_IMODE(os.stat(cred).st_mode) == 0o600
    assert alice in cred.read_text()
    status = muse.run("auth", "status").stdout
    assert "alice" in status
    muse.run("push", cwd=src)
    dst = tmp_path / "dst"
    muse.run("clone", url, str(dst))
    assert tree_of(dst) == tree_of(src)

    # bob (logged in, not a collaborator) sees nothing
    bob = new_muse("bob")
    bob.login(hub.url, bob_token)
    cp = bob.run("clone", url, str(tmp_path / "bob"), check=False)
    assert cp.returncode == 3, cp.stderr
    assert not (tmp_path / "bob").exists()

    # logout forgets it
    muse.run("auth", "logout", hub.url)
    assert alice not in cred.read_text()
    cp = muse.run("clone", url, str(tmp_path / "again"), check=False)
    assert cp.returncode == 3
    assert not (tmp_path / "again").exists()


def test_read_only_access_cannot_push(muse: Muse, new_muse: Any, tmp_path: Path, hub: Any) -> None:
    alice = hub.create_user("alice")
    bob_token = hub.create_user("bob")
    hub.create_repo("alice", "public")
    url = hub.repo_url("alice", "public")
    muse.login(hub.url, alice)
    src = tmp_path / "src"
    _repo(muse, src)
    muse.run("remote", "add", "origin", url, cwd=src)
    muse.run("push", cwd=src)
    bob = new_muse("bob")
    bob.login(hub.url, bob_token)
    dst = tmp_path / "dst"
    bob.run("clone", url, str(dst))  # public: anyone may read
    write_files(dst, {"song.txt": "bob was here\n"})
    bob.run("commit", "-m", "bob", cwd=dst)
    cp = bob.run("push", cwd=dst, check=False)
    assert cp.returncode == 4, cp.stderr
    assert "may not write" in cp.stderr


def test_options_may_come_before_or_after_the_positionals(muse: Muse) -> None:
    """As git and gh take them: the URL after an option is still the URL."""
    cp = muse.run(
        "auth", "login", "--no-verify", "--token-stdin", "http://127.0.0.1:9/", input="tok\n"
    )
    assert "logged in to http://127.0.0.1:9" in cp.stderr + cp.stdout
    cp = muse.run("auth", "status", "http://127.0.0.1:9/")
    assert "logged in" in cp.stdout
    cp = muse.run("auth", "--no-verify", "--token-stdin", "login", "http://[::1]:9/", input="t\n")
    assert "logged in to http://[::1]:9" in cp.stderr + cp.stdout


def test_login_refuses_a_bad_token_and_plain_http(muse: Muse, hub: Any) -> None:
    cp = muse.run("auth", "login", hub.url, "--token-stdin", input="nope\n", check=False)
    assert cp.returncode == 4, cp.stderr
    cp = muse.run(
        "auth", "login", "http://hub.example.com/", "--token-stdin", input="x\n", check=False
    )
    assert cp.returncode == 4 and "https" in cp.stderr
    # MUSE_TOKEN is never sent over plain http to a non-loopback host either
    cp = muse.run(
        "clone",
        "http://hub.example.com/alice/song",
        "x",
        check=False,
        env={"MUSE_TOKEN": "secret", "MUSE_TOKEN_HUB": "http://hub.example.com"},
    )
    assert cp.returncode == 4 and "https" in cp.stderr


def test_muse_token_goes_only_to_the_hub_it_is_meant_for(
    muse: Muse, tmp_path: Path, hub: Any
) -> None:
    """A CI token in MUSE_TOKEN is sent to the hub MUSE_TOKEN_HUB names and to no other;
    set for no hub in particular, it is refused for a hub elsewhere with a message."""
    token = hub.create_user("carol")
    hub.create_repo("carol", "private", private=True)
    url = hub.repo_url("carol", "private")
    ok = muse.run(
        "clone", url, str(tmp_path / "a"), env={"MUSE_TOKEN": token, "MUSE_TOKEN_HUB": hub.url}
    )
    assert ok.returncode == 0
    other = muse.run(
        "clone",
        url,
        str(tmp_path / "b"),
        check=False,
        env={"MUSE_TOKEN": token, "MUSE_TOKEN_HUB": "https://elsewhere.example"},
    )
    assert other.returncode == 3 and not (tmp_path / "b").exists()  # anonymous: invisible
    cp = muse.run(
        "clone",
        "https://hub.example.com/carol/x",
        str(tmp_path / "c"),
        check=False,
        env={"MUSE_TOKEN": token},
    )
    assert cp.returncode == 2 and "MUSE_TOKEN_HUB=https://hub.example.com" in cp.stderr


def test_errors_have_distinct_exit_codes(
    muse: Muse, tmp_path: Path, hub: Any, free_port: Any
) -> None:
    hub.create_user("alice")
    # not found
    cp = muse.run("clone", hub.repo_url("alice", "nothing"), str(tmp_path / "x"), check=False)
    assert cp.returncode == 3 and not (tmp_path / "x").exists()
    # network down
    dead = f"http://127.0.0.1:{free_port()}/alice/song"
    cp = muse.run("clone", dead, str(tmp_path / "y"), check=False)
    assert cp.returncode == 6, cp.stderr
    assert "cannot reach" in cp.stderr
    assert [ln for ln in cp.stderr.splitlines() if ln.startswith("muse: error:")] == [
        cp.stderr.strip().splitlines()[-1]
    ]
    assert not (tmp_path / "y").exists()
    # not a hub URL
    cp = muse.run("clone", "ftp://x/y", str(tmp_path / "z"), check=False)
    assert cp.returncode == 2 and not (tmp_path / "z").exists()
    # a failed clone into an existing empty directory leaves it empty (and in place)
    (tmp_path / "empty").mkdir()
    cp = muse.run("clone", dead, str(tmp_path / "empty"), check=False)
    assert cp.returncode == 6 and (tmp_path / "empty").is_dir()
    assert os.listdir(tmp_path / "empty") == []
    # a non-empty directory is refused and untouched
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine\n")
    cp = muse.run("clone", hub.repo_url("alice", "nothing"), str(tmp_path / "full"), check=False)
    assert cp.returncode != 0 and os.listdir(tmp_path / "full") == ["keep.txt"]


def test_remote_commands(muse: Muse, tmp_path: Path) -> None:
    root = tmp_path / "r"
    _repo(muse, root)
    muse.run("remote", "add", "origin", "http://127.0.0.1:1/a/b", cwd=root)
    muse.run("remote", "add", "backup", "http://127.0.0.1:2/a/b", cwd=root)
    out = muse.run("remote", "-v", cwd=root).stdout
    assert "origin\thttp://127.0.0.1:1/a/b" in out and "backup" in out
    muse.run("remote", "rename", "backup", "mirror", cwd=root)
    muse.run("remote", "set-url", "mirror", "http://127.0.0.1:3/a/b", cwd=root)
    assert muse.run("remote", "get-url", "mirror", cwd=root).stdout.strip().endswith(":3/a/b")
    muse.run("remote", "remove", "mirror", cwd=root)
    assert muse.run("remote", cwd=root).stdout.split() == ["origin"]
    cp = muse.run("remote", "add", "origin", "http://x/a/b", cwd=root, check=False)
    assert cp.returncode != 0 and "already exists" in cp.stderr
    cp = muse.run("remote", "add", "bad", "not a url", cwd=root, check=False)
    assert cp.returncode == 2
    cp = muse.run("push", "nowhere", cwd=root, check=False)
    assert cp.returncode == 3 and "muse remote add" in cp.stderr


def test_empty_repository_clone_then_push(muse: Muse, tmp_path: Path, hub: Any) -> None:
    token = hub.create_user("alice")
    hub.create_repo("alice", "empty")
    url = hub.repo_url("alice", "empty")
    muse.login(hub.url, token)
    dst = tmp_path / "dst"
    out = muse.json("clone", url, str(dst))
    assert out["objects"] == 0
    write_files(dst, {"first.txt": "first\n"})
    muse.run("commit", "-m", "first", cwd=dst)
    muse.run("push", cwd=dst)  # the upstream was set by clone
    other = tmp_path / "other"
    muse.run("clone", url, str(other))
    assert tree_of(other) == tree_of(dst)


def test_a_credentials_directory_others_can_read_is_made_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from muse.client import credentials

    d = tmp_path / "conf"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    monkeypatch.setenv("MUSE_CONFIG_DIR", str(d))
    credentials.store("https://hub.example", "mh_secret")
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(d / credentials.FILE_NAME).st_mode) == 0o600
