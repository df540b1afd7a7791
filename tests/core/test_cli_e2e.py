"""End to end: the real `python -m muse` process, its output and its exit codes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ)
    e.update(
        MUSE_AUTHOR_NAME="Test User",
        MUSE_AUTHOR_EMAIL="test@example.org",
        MUSE_AUTHOR_DATE="1704067200 +0000",
        MUSE_CONFIG_GLOBAL=str(tmp_path / "global.toml"),
    )
    e.pop("MUSE_DEBUG", None)
    e.pop("MUSE_DIR", None)
    return e


def muse(cwd, env, *args, code=0, stdin=None, one_line=True):
    p = subprocess.run(
        [sys.executable, "-m", "muse", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
    )
    assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
    if code and one_line:
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("muse: error: "), p.stderr
        assert "Traceback" not in p.stderr
    return p.stdout


def test_version_and_help(tmp_path, env):
    assert muse(tmp_path, env, "--version").startswith("muse ")
    out = muse(tmp_path, env, "--help")
    for cmd in ("init", "commit", "checkout", "fsck", "push", "clone"):
        assert cmd in out
    assert "--oneline" in muse(tmp_path, env, "help", "log")
    muse(tmp_path, env, "nosuchcommand", code=2)
    muse(tmp_path, env, "log", "--bogus-flag", code=2)
    muse(tmp_path, env, "status", code=3)  # not a repository


def test_workflow(tmp_path, env):
    w = tmp_path / "w"
    muse(tmp_path, env, "init", str(w))
    muse(w, env, "init", code=1)  # already a repository
    (w / "a.txt").write_text("one\n")
    (w / "sub").mkdir()
    (w / "sub" / "b.txt").write_text("b\n")
    assert "new file:" in muse(w, env, "status")
    assert "root-commit" in muse(w, env, "commit", "-m", "first")
    assert "working tree clean" in muse(w, env, "status")
    muse(w, env, "commit", "-m", "again", code=1, one_line=False)  # nothing to commit
    (w / "a.txt").write_text("two\n")
    assert muse(w, env, "status", "-s") == "M  a.txt\n"  # git's columns: all is to be committed
    muse(w, env, "commit", "-m", "second")
    log = muse(w, env, "log", "--oneline").splitlines()
    assert [ln.split(" ", 1)[1] for ln in log] == ["second", "first"]
    assert len(muse(w, env, "log", "-n", "1", "--oneline").splitlines()) == 1
    full = muse(w, env, "log")
    assert "Author: Test User <test@example.org>" in full
    first_id = log[1].split()[0]

    # branches
    muse(w, env, "branch", "feature")
    assert muse(w, env, "branch") == "  feature\n* main\n"
    muse(w, env, "branch", "feature", code=1)  # exists
    muse(w, env, "branch", "bad..name", code=1)
    muse(w, env, "checkout", "feature")
    (w / "f.txt").write_text("feature\n")
    muse(w, env, "commit", "-m", "on feature")
    muse(w, env, "checkout", "main")
    assert not (w / "f.txt").exists()
    muse(w, env, "branch", "-d", "feature", code=1)  # not merged
    muse(w, env, "branch", "-d", "main", code=1)  # current
    muse(w, env, "branch", "-d", "nope", code=3)

    # detached checkout by abbreviated id, then -b
    muse(w, env, "checkout", first_id[:7])
    assert (w / "a.txt").read_text() == "one\n"
    assert "detached" in muse(w, env, "status")
    muse(w, env, "checkout", "-b", "fix")
    assert muse(w, env, "branch").splitlines()[1] == "* fix"
    muse(w, env, "checkout", "main")

    # refuses to overwrite local changes, with a one-line message
    (w / "a.txt").write_text("local\n")
    muse(w, env, "checkout", "fix", code=1)
    assert (w / "a.txt").read_text() == "local\n"
    muse(w, env, "checkout", "-f", "fix")
    assert (w / "a.txt").read_text() == "one\n"
    muse(w, env, "checkout", "main")
    muse(w, env, "branch", "-D", "feature")

    # show: commit, tree, blob
    out = muse(w, env, "show")
    assert "second" in out and "M\ta.txt" in out
    tree_line = [ln for ln in out.splitlines() if ln.startswith("tree ")][0]
    listing = muse(w, env, "show", tree_line[5:])
    assert "a.txt" in listing and "sub" in listing
    blob_id = [ln for ln in listing.splitlines() if ln.endswith("a.txt")][0].split()[1]
    assert muse(w, env, "show", blob_id) == "two\n"
    muse(w, env, "show", "nonexistent", code=3)
    muse(w, env, "log", "nonexistent", code=3)

    assert "ok" in muse(w, env, "fsck")


def test_config_and_identity(tmp_path, env):
    w = tmp_path / "w"
    muse(tmp_path, env, "init", str(w))
    muse(w, env, "config", "user.name", "Config Name")
    muse(w, env, "config", "--global", "user.email", "global@example.org")
    assert muse(w, env, "config", "user.name") == "Config Name\n"
    assert muse(w, env, "config", "user.email") == "global@example.org\n"
    muse(w, env, "config", "user.name", "bad <name>", code=1)
    e = {k: v for k, v in env.items() if not k.startswith("MUSE_AUTHOR")}
    (w / "x").write_text("x")
    muse(w, e, "commit", "-m", "by config")
    assert "Author: Config Name <global@example.org>" in muse(w, e, "log")
    muse(w, env, "config", "--unset", "user.name")
    muse(w, env, "config", "--unset", "user.name", code=3)
    assert "user.email=global@example.org" in muse(w, env, "config", "--list")


def test_fsck_finds_corruption_and_missing_objects(tmp_path, env):
    w = tmp_path / "w"
    muse(tmp_path, env, "init", str(w))
    (w / "a").write_text("a")
    (w / "b").write_text("b")
    muse(w, env, "commit", "-m", "x")
    objects = w / ".muse" / "objects"
    loose = sorted(p for p in objects.rglob("*") if p.is_file())
    assert len(loose) == 4  # 2 blobs, 1 tree, 1 commit
    victim = loose[0]
    os.chmod(victim, 0o644)
    victim.write_bytes(victim.read_bytes() + b"!")
    out = subprocess.run(
        [sys.executable, "-m", "muse", "fsck"], cwd=w, env=env, capture_output=True, text=True
    )
    assert out.returncode == 1 and "corrupt" in out.stderr
    victim.unlink()
    out = subprocess.run(
        [sys.executable, "-m", "muse", "fsck"], cwd=w, env=env, capture_output=True, text=True
    )
    assert out.returncode == 1 and "missing" in out.stderr


def test_empty_message_empty_file_and_deep_path(tmp_path, env):
    w = tmp_path / "w"
    muse(tmp_path, env, "init", str(w))
    deep = w.joinpath(*[f"d{i}" for i in range(40)])
    deep.mkdir(parents=True)
    (deep / "empty").write_bytes(b"")
    muse(w, env, "commit", "-m", "")
    assert muse(w, env, "log", "--oneline").endswith(" \n")
    muse(w, env, "commit", "--allow-empty", "-F", "-", stdin="from stdin\n")
    assert "from stdin" in muse(w, env, "log", "-n", "1")
    assert "ok" in muse(w, env, "fsck")


def test_unexpected_errors_are_one_line(tmp_path, env):
    w = tmp_path / "w"
    muse(tmp_path, env, "init", str(w))
    (w / ".muse" / "HEAD").write_text("garbage\n")
    muse(w, env, "log", code=1)


def test_commit_takes_the_index_lock_before_recording_anything(tmp_path, env):
    """As git: a held index.lock stops the commit at once (exit 5, the file named), with no
    commit recorded; once it is gone the same command works."""
    repo = tmp_path / "r"
    muse(tmp_path, env, "init", str(repo))
    (repo / "a.txt").write_text("a\n")
    (repo / ".muse" / "index.lock").write_bytes(b"")
    muse(repo, env, "commit", "-m", "x", code=5)
    assert not (repo / ".muse" / "refs" / "heads" / "main").exists()  # nothing recorded
    (repo / ".muse" / "index.lock").unlink()
    muse(repo, env, "commit", "-m", "x")
    assert "x" in muse(repo, env, "log", "--oneline")
