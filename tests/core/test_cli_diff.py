"""muse diff end to end through the real `muse` process, beside git on the same trees.

Each case builds one tree in a muse repository and in a git repository, commits it in both,
makes the same edit in both and compares ``muse diff`` with ``git diff`` (git: everything
added, ``--cached``): the patches must be byte-identical but for the ``index`` lines, whose
object ids differ by design (Muse's ids are not git's).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from muse.core import textdiff
from tests.fixtures.muse import MUSE, muse_env
from tests.fixtures.services import missing


class Pair:
    """The same working tree as a muse and as a git repository."""

    def __init__(self, tmp: Path) -> None:
        if shutil.which("git") is None:
            missing("git is not installed")
        self.m, self.g = tmp / "m", tmp / "g"
        self.env = muse_env(tmp / "home", MUSE_AUTHOR_DATE="1704067200 +0000")
        self.env.update(
            GIT_CONFIG_GLOBAL=os.devnull,
            GIT_CONFIG_NOSYSTEM="1",
            GIT_AUTHOR_NAME="t",
            GIT_AUTHOR_EMAIL="t@e",
            GIT_COMMITTER_NAME="t",
            GIT_COMMITTER_EMAIL="t@e",
        )
        self.muse("init", str(self.m), cwd=tmp)
        self.git("init", "-q", str(self.g), cwd=tmp)

    def muse(self, *args: str, code: int = 0, cwd: Path | None = None) -> bytes:
        p = subprocess.run([*MUSE, *args], cwd=cwd or self.m, env=self.env, capture_output=True)
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        if code > 1:
            lines = p.stderr.decode().strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("muse: error: "), p.stderr
        return p.stdout

    def git(self, *args: str, cwd: Path | None = None) -> bytes:
        p = subprocess.run(
            ["git", "-c", "core.abbrev=12", *args],
            cwd=cwd or self.g,
            env=self.env,
            capture_output=True,
            check=True,
        )
        return p.stdout

    def both(self, edit: Callable[[Path], None]) -> None:
        edit(self.m)
        edit(self.g)

    def commit(self, msg: str) -> None:
        self.muse("commit", "-q", "-m", msg)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", msg)

    def git_diff(self, *args: str) -> bytes:
        self.git("add", "-A")
        return self.git("diff", "--cached", "--no-color", "-M", *args)


def _no_index(patch: bytes) -> bytes:
    return b"".join(line for line in patch.splitlines(True) if not line.startswith(b"index "))


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return Pair(tmp_path)


def _write(root: Path, path: str, data: bytes) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_bytes(data)


LINES = b"".join(b"line %d\n" % i for i in range(1, 31))


def _base(root: Path) -> None:
    _write(root, "song.txt", LINES)
    _write(root, "gone.txt", b"to be deleted\n")
    _write(root, "mode.sh", b"#!/bin/sh\necho hi\n")
    _write(root, "moved.txt", b"".join(b"verse %d\n" % i for i in range(20)))
    _write(root, "sample.wav", b"RIFF\0\0WAVE" + bytes(range(256)) * 4)
    _write(root, "tail.txt", b"no newline at the end")
    os.symlink("song.txt", root / "link")


def _edit(root: Path) -> None:
    _write(root, "song.txt", LINES.replace(b"line 3\n", b"line three\n") + b"line 31\n")
    (root / "gone.txt").unlink()
    (root / "mode.sh").chmod(0o755)
    moved = (root / "moved.txt").read_bytes().replace(b"verse 7\n", b"verse seven\n")
    (root / "moved.txt").unlink()
    _write(root, "dir/renamed.txt", moved)
    _write(root, "sample.wav", b"RIFF\0\0WAVE" + bytes(range(256)) * 5)
    _write(root, "tail.txt", b"no newline at the end, still")
    _write(root, "new.txt", b"a new file\n")
    (root / "link").unlink()
    os.symlink("tail.txt", root / "link")


def test_patch_matches_git(pair: Pair) -> None:
    pair.both(_base)
    pair.commit("base")
    assert pair.muse("diff") == b""
    pair.muse("diff", "--exit-code")
    pair.both(_edit)
    ours = pair.muse("diff")
    theirs = pair.git_diff()
    assert _no_index(ours) == _no_index(theirs)
    assert (
        b"similarity index 93%" in ours
    )  # git says 93 % too; the moved file is paired, not delete + add
    assert b"Binary files a/sample.wav and b/sample.wav differ\n" in ours
    assert b"\\ No newline at end of file\n" in ours
    # --exit-code and --quiet: 1 when something differs, and --quiet prints nothing
    assert pair.muse("diff", "--quiet", code=1) == b""
    # the same edit, committed: A B and A..B print the same patch
    pair.commit("edit")
    assert pair.muse("diff", "HEAD~1", "HEAD") == ours
    assert pair.muse("diff", "HEAD~1..HEAD") == ours


def test_name_status_and_stat_match_git(pair: Pair) -> None:
    pair.both(_base)
    pair.commit("base")
    pair.both(_edit)
    assert pair.muse("diff", "--name-status") == pair.git_diff("--name-status")
    assert pair.muse("diff", "--name-only") == pair.git_diff("--name-only")
    assert pair.muse("diff", "--numstat") == pair.git_diff("--numstat")
    stat = pair.muse("diff", "--stat")
    assert b" sample.wav                   | Bin 1034 -> 1290 bytes\n" in stat
    assert stat.endswith(b" 8 files changed, 6 insertions(+), 5 deletions(-)\n")
    assert stat == pair.git_diff("--stat")


def test_exact_rename_and_path_limit(pair: Pair) -> None:
    pair.both(_base)
    pair.commit("base")

    def move(root: Path) -> None:
        (root / "song.txt").rename(root / "track.txt")
        _write(root, "tail.txt", b"changed\n")

    pair.both(move)
    ours = pair.muse("diff")
    assert _no_index(ours) == _no_index(pair.git_diff())
    assert b"similarity index 100%\nrename from song.txt\nrename to track.txt\n" in ours
    assert pair.muse("diff", "--name-status") == b"M\ttail.txt\nR100\tsong.txt\ttrack.txt\n"
    # a path limits the diff (and then the other half of the rename is not in view)
    assert pair.muse("diff", "--name-only", "--", "tail.txt") == b"tail.txt\n"
    assert pair.muse("diff", "--name-only", "tail.txt") == b"tail.txt\n"
    assert pair.muse("diff", "--no-renames", "--name-status") == (
        b"D\tsong.txt\nM\ttail.txt\nA\ttrack.txt\n"
    )


def test_diff_against_a_revision_and_bad_input(pair: Pair) -> None:
    pair.both(_base)
    pair.commit("one")
    pair.both(lambda r: _write(r, "song.txt", b"rewritten\n"))
    pair.commit("two")
    pair.both(lambda r: _write(r, "new.txt", b"x\n"))
    # the working tree against HEAD~1: both the committed and the uncommitted change
    assert pair.muse("diff", "--name-only", "HEAD~1") == b"new.txt\nsong.txt\n"
    assert pair.muse("diff", "--name-only") == b"new.txt\n"
    err = subprocess.run(
        [*MUSE, "diff", "no-such-rev"], cwd=pair.m, env=pair.env, capture_output=True
    )
    assert err.returncode == 3 and err.stderr.startswith(b"muse: error: ambiguous argument")
    assert len(err.stderr.splitlines()) == 1
    pair.muse("diff", "HEAD", "nope", "--", "x", code=3)


def test_chunked_file_is_compared_by_id_and_summarised(pair: Pair) -> None:
    big = os.urandom(3 << 20)
    pair.both(lambda r: _write(r, "big.bin", big))
    pair.commit("big")
    pair.both(lambda r: _write(r, "big.bin", big + b"more"))
    ours = pair.muse("diff")
    assert b"Binary files a/big.bin and b/big.bin differ\n" in ours
    assert _no_index(ours) == _no_index(pair.git_diff())
    assert b"Bin 3145728 -> 3145732 bytes" in pair.muse("diff", "--stat")


@pytest.mark.parametrize("seed", range(40))
def test_hunks_match_git_on_random_edits(tmp_path: Path, seed: int) -> None:
    """textdiff alone against ``git diff --no-index`` on random edits of code-like text."""
    import random

    if shutil.which("git") is None:
        missing("git is not installed")
    rng = random.Random(seed)
    words = [b"def f():", b"    return x", b"\tx = 1", b"}", b"", b"# note", b"alpha", b"beta"]
    a = [rng.choice(words) + b"%d\n" % rng.randrange(5) for _ in range(300)]
    b = list(a)
    for _ in range(rng.randrange(1, 12)):
        k = rng.randrange(len(b))
        op = rng.randrange(3)
        if op == 0:
            del b[k]
        elif op == 1:
            b.insert(k, rng.choice(a))
        else:
            b[k] = b"changed\n"
    (tmp_path / "a").write_bytes(b"".join(a))
    (tmp_path / "b").write_bytes(b"".join(b))
    git = subprocess.run(
        ["git", "diff", "--no-index", "--no-color", "a", "b"], cwd=tmp_path, capture_output=True
    ).stdout
    want = git[git.index(b"\n@@") + 1 :] if b"\n@@" in git else b""
    got = textdiff.format_hunks(textdiff.unified_hunks(b"".join(a), b"".join(b)))
    assert got == want


def test_is_binary_is_gits_rule() -> None:
    assert textdiff.is_binary(b"a\0b")
    assert not textdiff.is_binary(b"x" * 8000 + b"\0")
    assert textdiff.is_binary(b"x" * 7999 + b"\0")


def test_show_prints_the_patch_and_files_at_a_revision(pair: Pair) -> None:
    pair.both(_base)
    pair.commit("base")
    pair.both(_edit)
    pair.commit("edit")
    shown = pair.muse("show")
    patch = shown[shown.index(b"diff --git") :]
    assert _no_index(patch) == _no_index(pair.git("show", "--format=", "-M", "HEAD"))
    assert shown.startswith(b"commit ") and b"\n    edit\n" in shown
    assert b"diff --git" not in pair.muse("show", "-s")
    assert pair.muse("show", "HEAD~1:song.txt") == LINES
    assert pair.muse("show", "HEAD:dir/renamed.txt") == (pair.m / "dir/renamed.txt").read_bytes()
    assert pair.muse("show", "HEAD:link") == b"tail.txt"  # a symlink: its target
    pair.muse("show", "HEAD:no/such/file", code=3)
    pair.muse("show", "nope:song.txt", code=3)


def test_show_of_a_merge(pair: Pair) -> None:
    pair.both(_base)
    pair.commit("base")
    pair.muse("branch", "side")
    pair.muse("checkout", "-q", "side")
    _write(pair.m, "side.txt", b"side\n")
    pair.muse("commit", "-q", "-m", "side")
    pair.muse("checkout", "-q", "main")
    _write(pair.m, "main.txt", b"main\n")
    pair.muse("commit", "-q", "-m", "main")
    pair.muse("merge", "-q", "side", "-m", "merge side")
    shown = pair.muse("show").decode()
    parents = [ln.split()[1][:12] for ln in shown.splitlines() if ln.startswith("parent ")]
    assert f"Merge: {parents[0]} {parents[1]}\n" in shown and "diff --git" not in shown
    first = pair.muse("show", "-m").decode()  # against the first parent: side's file arrives
    assert "diff --git a/side.txt b/side.txt\nnew file mode 100644\n" in first


def test_status_shows_renames(pair: Pair) -> None:
    pair.both(_base)
    pair.commit("base")
    (pair.m / "moved.txt").rename(pair.m / "verses.txt")
    (pair.m / "gone.txt").unlink()
    long = pair.muse("status").decode()
    assert "  renamed:    moved.txt -> verses.txt\n" in long
    assert "  deleted:    gone.txt\n" in long and "new file" not in long


def test_names_are_quoted_as_git_quotes_them(pair: Pair) -> None:
    pair.both(lambda r: _write(r, "café.txt", b"un\n"))
    pair.both(lambda r: _write(r, 'say "hi".txt', b"x\n"))
    pair.commit("names")

    def edit(root: Path) -> None:
        _write(root, "café.txt", b"deux\n")
        (root / 'say "hi".txt').rename(root / "naïve.txt")

    pair.both(edit)
    ours = pair.muse("diff")
    assert _no_index(ours) == _no_index(pair.git_diff())
    assert b'diff --git "a/caf\\303\\251.txt" "b/caf\\303\\251.txt"\n' in ours
    for form in ("--name-status", "--name-only", "--stat", "--numstat"):
        assert pair.muse("diff", form) == pair.git_diff(form), form


def test_find_renames_takes_its_value_attached(pair: Pair) -> None:
    pair.both(_base)
    pair.commit("base")
    pair.both(lambda r: (r / "song.txt").rename(r / "track.txt"))
    pair.commit("move")
    # -M HEAD~1: HEAD~1 is a revision, not -M's percentage (git: -M<n> only)
    assert pair.muse("diff", "-M", "HEAD~1", "--name-status") == b"R100\tsong.txt\ttrack.txt\n"
    assert pair.muse("diff", "-M90", "HEAD~1", "HEAD", "--name-status") == (
        b"R100\tsong.txt\ttrack.txt\n"
    )


def test_stat_scales_and_cuts_names_as_git(pair: Pair) -> None:
    long_dir = "very/deep/directory/structure/for/a/name/that/is/way/too/long/to/fit"
    pair.both(lambda r: _write(r, "small.txt", b"x\n"))
    pair.commit("base")

    def grow(root: Path) -> None:
        _write(root, "small.txt", b"".join(b"%d\n" % i for i in range(300)))
        _write(root, "a-rather-long-file-name-for-the-stat-column.txt", LINES)
        _write(root, f"{long_dir}/x.txt", LINES * 3)

    pair.both(grow)
    assert pair.muse("diff", "--stat") == pair.git_diff("--stat")
