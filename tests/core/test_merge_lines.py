"""Merges that never corrupt work, through the real muse command (issue 14)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from muse.core.linemerge import has_markers, merge_lines
from tests.fixtures.muse import MUSE, muse_env


@pytest.fixture
def repo(tmp_path):
    home, root = tmp_path / "home", tmp_path / "w"
    root.mkdir()

    def muse(*args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        cp = subprocess.run(
            [*MUSE, *args],
            cwd=root,
            env=muse_env(home),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if code is not None:
            assert cp.returncode == code, (args, cp.returncode, cp.stdout, cp.stderr)
        return cp

    muse("init")
    return root, muse


def _lines(n: int, tag: str = "") -> str:
    return "".join(f"line {i}{tag}\n" for i in range(n))


def _branches(root: Path, muse, base: dict, ours: dict, theirs: dict) -> None:
    """A base commit on main, ``topic`` with theirs, main with ours (main checked out)."""

    def put(files: dict) -> None:
        for p, data in files.items():
            full = root / p
            if data is None:
                if full.is_symlink() or full.exists():
                    full.unlink()
                continue
            if full.is_dir() and not full.is_symlink():
                shutil.rmtree(full)
            full.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, tuple) and data[0] == "link":
                if full.is_symlink() or full.exists():
                    full.unlink()
                os.symlink(data[1], full)
            elif isinstance(data, tuple) and data[0] == "exec":
                full.write_bytes(data[1])
                full.chmod(0o755)
            else:
                full.write_bytes(data if isinstance(data, bytes) else data.encode())

    put(base)
    muse("commit", "-q", "-m", "base")
    muse("checkout", "-q", "-b", "topic")
    put(theirs)
    muse("commit", "-q", "-m", "theirs")
    muse("checkout", "-q", "main")
    put(ours)
    muse("commit", "-q", "-m", "ours")


def test_edits_to_different_lines_of_one_file_merge_cleanly(repo):
    root, muse = repo
    text = _lines(30)
    ours = text.replace("line 2\n", "line 2 ours\n")
    theirs = text.replace("line 25\n", "line 25 theirs\n")
    _branches(root, muse, {"song.txt": text}, {"song.txt": ours}, {"song.txt": theirs})
    cp = muse("merge", "topic")
    assert "Merge made" in cp.stderr
    got = (root / "song.txt").read_text()
    assert got == text.replace("line 2\n", "line 2 ours\n").replace("line 25\n", "line 25 theirs\n")
    assert "nothing to commit" in muse("status").stdout
    assert len(muse("log", "--oneline").stdout.splitlines()) == 4  # merge, ours, theirs, base


def test_overlapping_edits_conflict_on_the_hunk_only_and_cannot_be_committed(repo):
    root, muse = repo
    text = _lines(30)
    _branches(
        root,
        muse,
        {"song.txt": text},
        {"song.txt": text.replace("line 10\n", "line 10 ours\n").replace("line 1\n", "one\n")},
        {"song.txt": text.replace("line 10\n", "line 10 theirs\n")},
    )
    cp = muse("merge", "topic", code=8)
    assert "CONFLICT (content): Merge conflict in song.txt" in cp.stderr
    got = (root / "song.txt").read_text()
    assert got.count("<<<<<<< ours") == 1 and "line 29\n" in got and "one\n" in got
    hunk = got[got.index("<<<<<<<") : got.index(">>>>>>>")]
    assert "line 10 ours" in hunk and "line 10 theirs" in hunk and "line 20" not in hunk
    cp = muse("commit", "-m", "too early", code=None)
    assert cp.returncode != 0 and "song.txt" in cp.stderr and "resolve" in cp.stderr
    cp = muse("resolve", "song.txt", code=None)
    assert cp.returncode != 0 and "markers remain" in cp.stderr
    (root / "song.txt").write_text(text.replace("line 10\n", "line 10 both\n"))
    muse("resolve", "song.txt")
    muse("commit", "-m", "merged by hand")
    assert "nothing to commit" in muse("status").stdout


def test_diff3_style_shows_the_base(repo):
    root, muse = repo
    text = _lines(5)
    _branches(
        root,
        muse,
        {"a.txt": text},
        {"a.txt": text.replace("line 2\n", "ours 2\n")},
        {"a.txt": text.replace("line 2\n", "theirs 2\n")},
    )
    muse("merge", "--conflict=diff3", "topic", code=8)
    got = (root / "a.txt").read_text()
    assert "||||||| base\nline 2\n=======\ntheirs 2\n" in got


def test_a_binary_conflict_keeps_both_versions_and_cannot_be_committed(repo):
    root, muse = repo
    base = b"RIFF" + bytes(996)
    ours = b"RIFF" + bytes([1]) * 996
    theirs = b"RIFF" + bytes([2]) * 996
    _branches(root, muse, {"take.wav": base}, {"take.wav": ours}, {"take.wav": theirs})
    cp = muse("merge", "topic", code=8)
    assert "take.wav" in cp.stderr and "binary" in cp.stderr
    assert (root / "take.wav").read_bytes() == ours  # byte for byte, no markers
    assert muse("commit", "-m", "x", code=None).returncode != 0
    muse("checkout", "--theirs", "take.wav")
    assert (root / "take.wav").read_bytes() == theirs
    muse("checkout", "--ours", "take.wav")
    assert (root / "take.wav").read_bytes() == ours
    muse("checkout", "--theirs", "take.wav")
    muse("resolve", "take.wav")
    muse("commit", "-m", "took theirs")
    assert (root / "take.wav").read_bytes() == theirs
    assert muse("show", "HEAD:take.wav").stdout.encode("latin-1", "replace")[:4] == b"RIFF"


def test_mode_on_one_side_content_on_the_other_and_symlinks(repo):
    root, muse = repo
    _branches(
        root,
        muse,
        {"tool.sh": "echo 1\n", "ln": ("link", "tool.sh")},
        {"tool.sh": ("exec", b"echo 1\n")},
        {"tool.sh": "echo 2\n", "ln": ("link", "other")},
    )
    muse("merge", "topic")
    assert (root / "tool.sh").read_text() == "echo 2\n"
    assert os.stat(root / "tool.sh").st_mode & 0o100
    assert os.readlink(root / "ln") == "other"


def test_directory_file_and_modify_delete_are_reported_never_silently_resolved(repo):
    root, muse = repo
    _branches(
        root,
        muse,
        {"d/x.txt": "x\n", "gone.txt": "g\n"},
        {"d/x.txt": None, "d": "now a file\n", "gone.txt": None},
        {"d/x.txt": "x changed\n", "gone.txt": "g changed\n"},
    )
    cp = muse("merge", "topic", code=8)
    assert "d/x.txt" in cp.stderr and "gone.txt" in cp.stderr
    assert (root / "gone.txt").read_text() == "g changed\n"  # the changed side survives
    assert (root / "d").read_text() == "now a file\n"
    muse("merge", "--abort")
    assert not (root / "gone.txt").exists() and (root / "d").read_text() == "now a file\n"


def test_a_symlinked_directory_from_the_other_side_writes_nothing_outside(repo, tmp_path):
    """Base has d/f; ours edits d/f; theirs makes d a symlink to a directory outside the
    tree. Neither the merge nor its abort may write through the link."""
    root, muse = repo
    outside = tmp_path / "outside"
    outside.mkdir()
    _branches(
        root,
        muse,
        {"d/f": "base\n"},
        {"d/f": "ours\n"},
        {"d/f": None, "d": ("link", str(outside))},
    )
    (outside / "f").write_text("outside, untouched\n")
    muse("merge", "topic", code=None)
    assert (outside / "f").read_text() == "outside, untouched\n"
    assert sorted(os.listdir(outside)) == ["f"]
    muse("merge", "--abort", code=None)
    assert (outside / "f").read_text() == "outside, untouched\n"
    assert sorted(os.listdir(outside)) == ["f"]
    assert (root / "d" / "f").read_text() == "ours\n"


def test_ff_only_and_no_ff(repo):
    root, muse = repo
    (root / "a").write_text("1\n")
    muse("commit", "-q", "-m", "one")
    muse("checkout", "-q", "-b", "topic")
    (root / "a").write_text("2\n")
    muse("commit", "-q", "-m", "two")
    muse("checkout", "-q", "main")
    muse("merge", "--no-ff", "topic")
    assert len(muse("show", "-s", "HEAD").stdout.split("Merge:")) == 2  # a merge commit
    muse("checkout", "-q", "topic")
    (root / "b").write_text("b\n")
    muse("commit", "-q", "-m", "three")
    muse("checkout", "-q", "main")
    (root / "c").write_text("c\n")
    muse("commit", "-q", "-m", "diverge")
    cp = muse("merge", "--ff-only", "topic", code=None)
    assert cp.returncode != 0 and "fast-forward" in cp.stderr
    assert not (root / "b").exists()


def test_line_merge_unit():
    r = merge_lines(b"a\nb\nc\n", b"A\nb\nc\n", b"a\nb\nC\n")
    assert r.conflicts == 0 and r.data == b"A\nb\nC\n"
    r = merge_lines(b"a\n", b"x\n", b"y\n")
    assert r.conflicts == 1 and has_markers(r.data)
    with pytest.raises(ValueError):
        merge_lines(b"\0", b"a", b"b")
    assert not has_markers(b"<<<<<<< not a conflict on its own\n")
