"""muse add (no staging area: a note, or marking conflicts resolved) and muse rm."""

from __future__ import annotations

import subprocess

from tests.fixtures.muse import MUSE, muse_env


def _muse(root, home, *args):
    return subprocess.run(
        [*MUSE, *args], cwd=root, env=muse_env(home), capture_output=True, text=True, timeout=60
    )


def test_add_explains_and_rm_removes_from_the_next_commit(tmp_path):
    root, home = tmp_path / "w", tmp_path / "h"
    root.mkdir()
    _muse(root, home, "init")
    (root / "d").mkdir()
    (root / "d" / "a.txt").write_text("a\n")
    (root / "b.txt").write_text("b\n")
    cp = _muse(root, home, "add", ".")
    assert cp.returncode == 0 and "no staging area" in cp.stderr
    assert _muse(root, home, "add", "missing.txt").returncode == 3
    assert _muse(root, home, "commit", "-q", "-m", "one").returncode == 0
    assert _muse(root, home, "rm", "d").returncode == 2  # a directory needs -r
    (root / "b.txt").write_text("changed\n")
    cp = _muse(root, home, "rm", "b.txt")
    assert cp.returncode != 0 and "uncommitted" in cp.stderr and (root / "b.txt").exists()
    assert _muse(root, home, "rm", "-f", "b.txt").returncode == 0
    assert _muse(root, home, "rm", "-r", "d").returncode == 0
    assert not (root / "b.txt").exists() and not (root / "d").exists()
    assert _muse(root, home, "rm", "--cached", "x").returncode == 2
    assert _muse(root, home, "commit", "-q", "-m", "two").returncode == 0
    assert _muse(root, home, "show", "HEAD:b.txt").returncode != 0


def test_add_marks_a_fixed_conflict_resolved(tmp_path):
    root, home = tmp_path / "w", tmp_path / "h"
    root.mkdir()
    m = lambda *a: _muse(root, home, *a)  # noqa: E731
    m("init")
    (root / "f.txt").write_text("base\n")
    m("commit", "-q", "-m", "base")
    m("checkout", "-q", "-b", "topic")
    (root / "f.txt").write_text("theirs\n")
    m("commit", "-q", "-m", "theirs")
    m("checkout", "-q", "main")
    (root / "f.txt").write_text("ours\n")
    m("commit", "-q", "-m", "ours")
    assert m("merge", "topic").returncode == 8
    assert m("add", "f.txt").returncode == 2  # markers remain
    (root / "f.txt").write_text("both\n")
    assert m("add", "f.txt").returncode == 0
    assert m("commit", "-q", "-m", "merged").returncode == 0


def test_every_command_has_a_help_example(tmp_path):
    from muse.cli.examples import EXAMPLES
    from muse.cli.main import COMMANDS

    assert set(COMMANDS) == set(EXAMPLES)
    cp = _muse(tmp_path, tmp_path / "h", "help", "merge")
    assert cp.returncode == 0 and "example:\n  muse merge" in cp.stdout
