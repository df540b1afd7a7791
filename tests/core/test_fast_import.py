"""muse fast-import of real `git fast-export` streams: every branch and tag arrives with the
same files, modes, symlinks, authors, times and commit graph as in git.

The synthetic history below is made with git itself and always runs. A real history runs
too when its path is given: ``MUSE_TEST_HISTORY=path/to/repo-or-bundle pytest ...``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.org",
    "GIT_COMMITTER_NAME": "Bob",
    "GIT_COMMITTER_EMAIL": "bob@example.org",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str, when: int = 1_700_000_000) -> str:
    env = {**os.environ, **GIT_ENV, "GIT_AUTHOR_DATE": f"{when} +0130"}
    env["GIT_COMMITTER_DATE"] = f"{when + 5} -0200"
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def muse(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSE")}
    env.update(MUSE_AUTHOR_NAME="T", MUSE_AUTHOR_EMAIL="t@example.org", HOME=str(cwd))
    return subprocess.run(
        [sys.executable, "-m", "muse", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
    )


def _files(root: Path) -> dict[str, tuple[str, bytes]]:
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x not in (".git", ".muse")]
        for f in files + [x for x in dirs if (Path(d) / x).is_symlink()]:
            p = Path(d) / f
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p).encode())
            else:
                out[rel] = ("exec" if os.access(p, os.X_OK) else "file", p.read_bytes())
    return out


def _import(src: Path, dst: Path) -> subprocess.CompletedProcess:
    stream = subprocess.run(
        ["git", "fast-export", "--all", "--signed-tags=strip", "--reencode=yes"],
        cwd=src,
        check=True,
        capture_output=True,
    ).stdout
    assert muse(dst.parent, "init", str(dst)).returncode == 0
    return muse(dst, "fast-import", stdin=stream)


def _same_refs(src: Path, dst: Path, refs: list[str]) -> None:
    for ref in refs:
        git(src, "checkout", "-q", "--detach", ref)
        cp = muse(dst, "checkout", "--force", ref)
        assert cp.returncode == 0, cp.stderr
        assert _files(dst) == _files(src), ref
        n = int(git(src, "rev-list", "--count", ref))
        # One line per commit, ended by "\n" (a subject may hold \x0b, \x1c or \u2028,
        # which str.splitlines would count as line ends too: flask's history does).
        assert muse(dst, "log", "--oneline", ref).stdout.count(b"\n") == n, ref


def test_a_git_history_with_merges_modes_links_renames_and_tags(tmp_path: Path) -> None:
    src = tmp_path / "git"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "a.txt").write_text("one\n")
    (src / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(src / "run.sh", 0o755)
    (src / "d").mkdir()
    (src / "d" / "x").write_text("x\n")
    os.symlink("a.txt", src / "link")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "first", when=1_700_000_000)
    git(src, "checkout", "-q", "-b", "topic")
    git(src, "mv", "d", "moved")
    (src / "a.txt").write_text("one\ntopic\n")
    git(src, "commit", "-q", "-am", "topic: move d, edit a", when=1_700_000_100)
    git(src, "checkout", "-q", "main")
    (src / "b with space\t.txt").write_text("quoted path\n")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "main: a quoted path\n\nwith a body", when=1_700_000_200)
    git(src, "merge", "-q", "--no-ff", "-m", "merge topic", "topic", when=1_700_000_300)
    git(src, "tag", "-a", "v1", "-m", "release one")
    git(src, "tag", "light", "topic")
    git(src, "rm", "-q", "-r", "moved")
    git(src, "commit", "-q", "-m", "delete a directory", when=1_700_000_400)
    git(src, "revert", "--no-edit", "HEAD", when=1_700_000_500)

    dst = tmp_path / "muse"
    cp = _import(src, dst)
    assert cp.returncode == 0, cp.stderr
    assert b"imported 6 commits" in cp.stdout
    assert b"1 tags imported as lightweight" in cp.stdout
    _same_refs(src, dst, ["main", "topic", "v1", "light"])
    log = muse(dst, "log", "--oneline", "main").stdout.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in log][:3] == [
        'Revert "delete a directory"',
        "delete a directory",
        "merge topic",
    ]
    shown = muse(dst, "log", "-n", "1", "topic").stdout.decode()
    assert "Ada <ada@example.org>" in shown
    assert muse(dst, "fsck").returncode == 0
    # importing again changes nothing; a stream that would rewind a branch is refused
    assert _import_again(src, dst).returncode == 0
    git(src, "checkout", "-q", "main")
    git(src, "reset", "-q", "--hard", "HEAD~3")
    cp = _import_again(src, dst)
    assert cp.returncode == 2 and b"would lose commits" in cp.stderr and b"--force" in cp.stderr


def _import_again(src: Path, dst: Path) -> subprocess.CompletedProcess:
    stream = subprocess.run(
        ["git", "fast-export", "--all", "--signed-tags=strip"],
        cwd=src,
        check=True,
        capture_output=True,
    ).stdout
    return muse(dst, "fast-import", stdin=stream)


def test_bad_streams_are_refused_with_the_line(tmp_path: Path) -> None:
    dst = tmp_path / "m"
    assert muse(tmp_path, "init", str(dst)).returncode == 0
    for stream, words in [
        (
            b"commit refs/heads/main\ncommitter A <a@b> 1 +0000\ndata 3\nabc\nM 100644 :9 f\n",
            b"unknown blob :9",
        ),
        (b"blob\nmark :1\ndata 10\nabc", b"data of 10 bytes ends after 3"),
        (b"frobnicate\n", b"unknown command 'frobnicate'"),
        (b"commit refs/heads/main\ndata 0\n\n", b"without a committer"),
    ]:
        cp = muse(dst, "fast-import", stdin=stream)
        assert cp.returncode == 2, cp.stderr
        assert b"line " in cp.stderr and words in cp.stderr, cp.stderr
        assert len(cp.stderr.strip().splitlines()) == 1
    assert not (dst / ".muse" / "refs" / "heads" / "main").exists()


@pytest.mark.skipif(not os.environ.get("MUSE_TEST_HISTORY"), reason="MUSE_TEST_HISTORY unset")
def test_a_real_history(tmp_path: Path) -> None:
    src = tmp_path / "git"
    subprocess.run(["git", "clone", "-q", os.environ["MUSE_TEST_HISTORY"], str(src)], check=True)
    dst = tmp_path / "muse"
    cp = _import(src, dst)
    assert cp.returncode == 0, cp.stderr
    count = int(git(src, "rev-list", "--count", "--all"))
    assert f"imported {count} commits".encode() in cp.stdout
    _same_refs(src, dst, ["HEAD"])
    assert muse(dst, "fsck").returncode == 0
