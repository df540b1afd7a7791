"""Undo, end to end through the real `muse` process: commit --amend, reset, revert, restore,
stash and the reflog that lets each of them be undone in turn."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.muse import MUSE, muse_env


class Muse:
    def __init__(self, tmp: Path) -> None:
        self.w = tmp / "w"
        self.env = muse_env(tmp / "home", MUSE_AUTHOR_DATE="1704067200 +0000")
        self("init", str(self.w), cwd=tmp)

    def __call__(self, *args: str, code: int = 0, cwd: Path | None = None) -> str:
        p = subprocess.run(
            [*MUSE, *args], cwd=cwd or self.w, env=self.env, capture_output=True, text=True
        )
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        if code:
            lines = p.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("muse: error: "), p.stderr
        return p.stdout + p.stderr if code else p.stdout

    def write(self, path: str, text: str | bytes) -> None:
        f = self.w / path
        f.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            f.write_bytes(text)
        else:
            f.write_text(text)

    def read(self, path: str) -> str:
        return (self.w / path).read_text()

    def commit(self, msg: str, **files: str) -> str:
        for k, v in files.items():
            self.write(k, v)
        self("commit", "-q", "-m", msg)
        return self.head()

    def head(self) -> str:
        return self("log", "--oneline").split()[0]

    def clean(self) -> bool:
        return "nothing to commit" in self("status")


@pytest.fixture
def m(tmp_path: Path) -> Muse:
    return Muse(tmp_path)


def test_amend_message_and_content(m: Muse) -> None:
    assert "nothing to amend" in m("commit", "--amend", "-m", "x", code=1)
    first = m.commit("one", a="1\n")
    m.commit("two", b="2\n")
    m.write("c", "3\n")
    m("commit", "-q", "--amend")  # no -m: the message stays
    log = m("log", "--oneline").splitlines()
    assert [ln.split(" ", 1)[1] for ln in log] == ["two", "one"]
    assert "A\tc" in m("show", "HEAD") and "A\tb" in m("show", "HEAD")
    m("commit", "-q", "--amend", "--no-edit", "-m", "two, fixed")
    assert m("log", "--oneline").splitlines()[0].endswith("two, fixed")
    assert m("show", "HEAD").count("parent ") == 1 and first in m("show", "HEAD")
    assert m("reflog").splitlines()[0].endswith("HEAD@{0}: commit (amend): two, fixed")
    assert m.clean()


def test_reset_soft_hard_and_back_through_the_reflog(m: Muse) -> None:
    one = m.commit("one", a="1\n")
    two = m.commit("two", a="2\n", b="b\n")
    m("reset", "--soft", "HEAD~1")
    assert m.head() == one and m.read("a") == "2\n"
    st = m("status")
    assert "modified:   a" in st and "new file:   b" in st  # the commit's changes stay, uncommitted
    m("reset", "--hard", "ORIG_HEAD")
    assert m.head() == two and m.clean()
    m.write("a", "uncommitted\n")
    m.write("u", "untracked\n")
    out = m("reset", "--hard", "HEAD~1")
    assert out.startswith(f"HEAD is now at {one} one")
    assert m.read("a") == "1\n" and not (m.w / "b").exists() and m.read("u") == "untracked\n"
    m("reset", "--hard", "HEAD@{1}")  # the reset itself undone
    assert m.head() == two and m.read("a") == "2\n" and m.read("b") == "b\n"
    m.write("a", "dirty\n")
    m("reset", "--hard")  # no REV: HEAD, working changes discarded
    assert m.read("a") == "2\n"
    m("reset", "--mixed", one)
    assert m.head() == one and m.read("a") == "2\n"
    m("reset", "--hard", "HEAD@{99}", code=3)
    m("reset", "--soft", "--hard", code=2)


def test_reflog_in_gits_order(m: Muse) -> None:
    m.commit("one", a="1\n")
    m.commit("two", a="2\n")
    m("checkout", "-q", "-b", "topic")
    m("checkout", "-q", "main")
    m("reset", "-q", "--hard", "HEAD~1")
    lines = m("reflog").splitlines()
    msgs = [ln.split(" ", 1)[1] for ln in lines]
    assert msgs == [
        "HEAD@{0}: reset: moving to HEAD~1",
        "HEAD@{1}: checkout: moving from topic to main",
        "HEAD@{2}: checkout: moving from main to topic",
        "HEAD@{3}: commit: two",
        "HEAD@{4}: commit (initial): one",
    ]
    main = m("reflog", "show", "main").splitlines()
    assert [ln.split(" ", 1)[1] for ln in main] == [
        "main@{0}: reset: moving to HEAD~1",
        "main@{1}: commit: two",
        "main@{2}: commit (initial): one",
    ]
    log = (m.w / ".muse" / "logs" / "HEAD").read_text().splitlines()
    old, new, rest = log[0].split(" ", 2)
    assert old == "0" * 64 and len(new) == 64
    assert rest == "Test Author <test@example.invalid> 1704067200 +0000\tcommit (initial): one"
    m("reflog", "nosuch", code=3)


def test_revert_normal_and_merge(m: Muse) -> None:
    m.commit("one", a="1\n", k="k\n")
    two = m.commit("two", a="2\n")
    m.commit("three", k="k3\n")
    out = m("revert", two)
    assert 'Revert "two"' in out and m.read("a") == "1\n" and m.read("k") == "k3\n"
    assert "This reverts commit" in m("show", "HEAD") and m.clean()
    m("checkout", "-q", "-b", "topic")
    m.commit("topic adds t", t="t\n")
    m("checkout", "-q", "main")
    m.commit("main adds x", x="x\n")
    m("merge", "-q", "topic")
    merge = m.head()
    assert (m.w / "t").exists()
    m("revert", merge, code=2)  # a merge needs -m
    m("revert", "-m", "1", merge)
    assert not (m.w / "t").exists() and (m.w / "x").exists() and m.clean()
    assert "reversing changes made to" in m("show", "HEAD")


def test_revert_with_conflict_waits_for_commit(m: Muse) -> None:
    m.commit("one", k="k\n")
    two = m.commit("two", k="k2\n")
    m.commit("three", k="k3\n")
    before = m.head()
    out = m("revert", two, code=8)
    assert "conflict in k" in out
    assert "<<<<<<<" in m.read("k") and m.head() == before
    m("revert", "--continue", code=8)  # markers still there
    m.write("k", "resolved\n")
    m("commit", "-q", code=1)  # not yet: k is not marked resolved
    m("resolve", "k")
    m("commit", "-q")  # no -m: the revert's prepared message, as git's MERGE_MSG
    assert m.read("k") == "resolved\n" and m.clean()
    assert m("log", "--oneline").splitlines()[0].endswith('Revert "two"')
    assert m("show", "HEAD").count("parent ") == 1
    assert not (m.w / ".muse" / "REVERT_HEAD").exists()
    m("revert", two, code=8)
    m("revert", "--abort")
    assert m.read("k") == "resolved\n" and m.clean()


def test_restore_file_and_source(m: Muse) -> None:
    m.commit("one", a="1\n", **{"d/x": "x\n"})
    m.commit("two", a="2\n")
    m.write("a", "dirty\n")
    m.write("d/x", "dirty x\n")
    m.write("new", "n\n")
    m("restore", "a")
    assert m.read("a") == "2\n" and m.read("d/x") == "dirty x\n"
    m("restore", "--source", "HEAD~1", "a")
    assert m.read("a") == "1\n" and "modified:   a" in m("status")
    m("restore", ".")
    assert m.read("a") == "2\n" and m.read("d/x") == "x\n" and m.read("new") == "n\n"
    assert "did not match" in m("restore", "nope", code=3)
    assert "did not match" in m("restore", "--source", "HEAD~1", "new", code=3)
    m("restore", "a", "--source", "nosuchrev", code=3)
    m("restore", "../outside", code=2)


def test_stash_roundtrip_with_untracked(m: Muse) -> None:
    m.commit("one", a="1\n", k="k\n")
    assert "No local changes" in m("stash")
    m.write("a", "changed\n")
    m.write("dir/new", "untracked\n")
    m("stash", "push", "-q")
    assert m.read("a") == "1\n" and m.read("dir/new") == "untracked\n"  # no -u: new file stays
    m.write("a", "second\n")
    m("stash", "-q", "-u", "-m", "with new")
    assert m.clean() and not (m.w / "dir").exists()
    lst = m("stash", "list").splitlines()
    assert lst[0] == "stash@{0}: On main: with new" and lst[1].startswith("stash@{1}: WIP on main:")
    assert m("stash", "show", "--name-status").splitlines() == ["M\ta", "A\tdir/new"]
    assert "dir/new | 1 +" in m("stash", "show")  # git's default: --stat
    assert "+second" in m("stash", "show", "-p", "0")
    assert "commit " in m("show", "stash@{1}")
    m("stash", "pop", "-q")
    assert m.read("a") == "second\n" and m.read("dir/new") == "untracked\n"
    assert len(m("stash", "list").splitlines()) == 1
    m("stash", "drop", "-q")
    assert m("stash", "list") == "" and not (m.w / ".muse" / "refs" / "stash").exists()
    m("stash", "pop", code=3)


def test_stash_pop_conflict_keeps_the_stash(m: Muse) -> None:
    m.commit("one", a="1\n")
    m.write("a", "stashed\n")
    m("stash", "-q")
    m.commit("two", a="committed\n")
    out = m("stash", "pop", code=8)
    assert "stash is kept" in out
    text = m.read("a")
    assert "<<<<<<<" in text and "stashed" in text and "committed" in text
    assert len(m("stash", "list").splitlines()) == 1
    m("restore", "a")
    m.commit("three", b="b\n")
    m("stash", "apply", "-q", code=8)  # same conflict again: still kept
    m("restore", "a")
    m.write("c", "local\n")
    m("stash", "drop", "5", code=3)
    m("stash", "clear")
    assert m("stash", "list") == "" and m.read("c") == "local\n"


def test_amend_and_soft_reset_refused_mid_merge_hard_reset_ends_it(m: Muse) -> None:
    m.commit("one", a="1\n")
    m("checkout", "-q", "-b", "t")
    m.commit("t", a="t\n")
    m("checkout", "-q", "main")
    main = m.commit("m", a="m\n")
    m("merge", "-q", "t", code=8)
    assert "middle of a merge" in m("commit", "--amend", "-m", "x", code=1)
    assert "soft reset" in m("reset", "--soft", "HEAD", code=1)
    m("reset", "-q", "--hard")
    assert m.head() == main and m.read("a") == "m\n" and m.clean()
    assert not (m.w / ".muse" / "MERGE_HEAD").exists()
    m("commit", "-q", "--amend", "-m", "m again")  # the merge is over: amend works


def test_binary_conflict_in_stash_pop_keeps_both_versions(m: Muse) -> None:
    m.commit("one", **{"s.wav": "RIFF"})
    m.write("s.wav", b"RIFF\0stashed" * 50)
    m("stash", "-q")
    m.write("s.wav", b"RIFF\0committed" * 50)
    m("commit", "-q", "-m", "two")
    m("stash", "pop", code=8)
    assert (m.w / "s.wav").read_bytes() == b"RIFF\0committed" * 50  # no markers in a binary
    assert m("stash", "list").count("stash@{") == 1  # the stash, with its version, is kept
    assert m("stash", "show", "--name-status") == "M\ts.wav\n"


def test_revert_through_a_symlinked_directory_writes_nothing_outside(
    m: Muse, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    m.commit("one", **{"d/f": "1\n"})
    two = m.commit("two", **{"d/f": "2\n"})
    import shutil

    shutil.rmtree(m.w / "d")
    (m.w / "d").symlink_to(outside, target_is_directory=True)
    m("commit", "-q", "-m", "d is a link now")
    assert "d/f" in m("revert", two, code=8)  # a directory/file conflict, reported
    assert list(outside.iterdir()) == [] and (m.w / "d").is_symlink()
    m("revert", "--abort")
    assert list(outside.iterdir()) == [] and (m.w / "d").is_symlink()
    assert m.clean()


def test_stash_of_a_file_that_became_a_directory(m: Muse) -> None:
    m.commit("one", f="a\n")
    (m.w / "f").unlink()
    m.write("f/x", "x\n")
    assert "muse stash -u" in m("stash", code=1)  # without -u f/x would be lost
    assert m.read("f/x") == "x\n" and m("stash", "list") == ""
    m("stash", "-q", "-u")
    assert m.read("f") == "a\n" and m.clean()
    m("stash", "pop", "-q")
    assert m.read("f/x") == "x\n" and m("stash", "list") == ""
