"""muse log end to end through the real `muse` process, beside git on the same history.

One history (a base, a branch, a commit on each side, a merge, then a change to one path)
is made in a muse and in a git repository with the same dates; ``--format=%s`` listings of
ranges, path-limited logs and the graph must then name the same commits in the same order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.muse import MUSE, muse_env
from tests.fixtures.services import missing


class Twin:
    def __init__(self, tmp: Path) -> None:
        if shutil.which("git") is None:
            missing("git is not installed")
        self.m, self.g = tmp / "m", tmp / "g"
        self.env = muse_env(tmp / "home")
        self.env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
        self.t = 1704067200
        self.muse("init", str(self.m), cwd=tmp)
        self.git("init", "-q", "-b", "main", str(self.g), cwd=tmp)

    def _dated(self) -> dict[str, str]:
        self.t += 3600
        d = f"{self.t} +0000"
        return {
            "MUSE_AUTHOR_DATE": d,
            "MUSE_COMMITTER_DATE": d,
            "GIT_AUTHOR_DATE": d,
            "GIT_COMMITTER_DATE": d,
        }

    def muse(self, *args: str, code: int = 0, cwd: Path | None = None, **env: str) -> str:
        p = subprocess.run(
            [*MUSE, *args],
            cwd=cwd or self.m,
            env={**self.env, **env},
            capture_output=True,
            text=True,
        )
        assert p.returncode == code, (args, p.returncode, p.stdout, p.stderr)
        if code:
            lines = p.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("muse: error: "), p.stderr
        return p.stdout

    def git(self, *args: str, cwd: Path | None = None, **env: str) -> str:
        full = {
            **self.env,
            "GIT_AUTHOR_NAME": "Ann",
            "GIT_AUTHOR_EMAIL": "ann@example.invalid",
            "GIT_COMMITTER_NAME": "Ann",
            "GIT_COMMITTER_EMAIL": "ann@example.invalid",
            **env,
        }
        return subprocess.run(
            ["git", *args],
            cwd=cwd or self.g,
            env=full,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def commit(self, msg: str, author: str = "Ann", **files: str) -> None:
        for root in (self.m, self.g):
            for k, v in files.items():
                (root / k).write_text(v)
        env = self._dated()
        self.muse(
            "commit",
            "-q",
            "-m",
            msg,
            MUSE_AUTHOR_NAME=author,
            MUSE_AUTHOR_EMAIL=f"{author.lower()}@example.invalid",
            **env,
        )
        self.git("add", "-A")
        self.git(
            "commit",
            "-q",
            "-m",
            msg,
            GIT_AUTHOR_NAME=author,
            GIT_AUTHOR_EMAIL=f"{author.lower()}@example.invalid",
            **env,
        )

    def both(self, muse_args: list[str], git_args: list[str]) -> None:
        self.muse(*muse_args)
        self.git(*git_args)


@pytest.fixture
def twin(tmp_path: Path) -> Twin:
    tw = Twin(tmp_path)
    tw.commit("base", a="1\n", b="1\n")
    tw.both(["branch", "side"], ["branch", "side"])
    tw.commit("main edits a", a="2\n")
    tw.both(["checkout", "-q", "side"], ["checkout", "-q", "side"])
    tw.commit("side edits b", author="Bob", b="2\n")
    tw.both(["checkout", "-q", "main"], ["checkout", "-q", "main"])
    env = tw._dated()
    who = {"MUSE_AUTHOR_NAME": "Ann", "MUSE_AUTHOR_EMAIL": "ann@example.invalid"}
    tw.muse("merge", "-q", "side", "-m", "merge side", **env, **who)
    tw.git("merge", "-q", "--no-ff", "side", "-m", "merge side", **env)
    tw.commit("main edits a again", a="3\n")
    return tw


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["main~1..main"],
        ["side..main"],
        ["main..side"],
        ["^side", "main"],
        ["main...side"],
        ["--", "b"],
        ["--", "a"],
        ["-n", "2"],
        ["--author", "Bob"],
        ["--first-parent"],
    ],
)
def test_selection_matches_git(twin: Twin, args: list[str]) -> None:
    ours = twin.muse("log", "--format=%s %an", *args)
    theirs = twin.git("log", "--format=%s %an", *args)
    assert ours == theirs


def test_graph_matches_git(twin: Twin) -> None:
    ours = twin.muse("log", "--graph", "--format=%s")
    theirs = twin.git("log", "--graph", "--format=%s")
    assert [x.rstrip() for x in ours.splitlines()] == [x.rstrip() for x in theirs.splitlines()]
    assert "|\\" in ours and "|/" in ours


def test_format_placeholders_and_dates(twin: Twin) -> None:
    line = twin.muse("log", "-n1", "--format=%h|%H|%p|%an|%ae|%s|%at", "HEAD~1")
    h, full, parents, name, email, subject, at = line.rstrip("\n").split("|")
    assert full.startswith(h) and len(parents.split()) == 2
    assert (name, email, subject) == ("Ann", "ann@example.invalid", "merge side")
    assert int(at) == 1704067200 + 4 * 3600
    # --since/--until by committer date: the last two commits, then the first one
    assert twin.muse("log", "--format=%s", "--since", "2024-01-01 03:30").splitlines() == [
        "main edits a again",
        "merge side",
    ]
    assert twin.muse("log", "--format=%s", "--until", "2024-01-01T01:30:00Z") == "base\n"
    assert twin.muse("log", "--oneline", "--since", "2 weeks ago") == ""
    assert twin.muse("log", "--pretty=format:%s", "-n", "2") == "main edits a again\nmerge side"
    assert "ago" in twin.muse("log", "-n1", "--format=%ar")


def test_patch_json_and_bad_input(twin: Twin) -> None:
    out = twin.muse("log", "-p", "-n1", "--oneline")
    assert "diff --git a/a b/a\n" in out and "-2\n+3\n" in out
    items = json.loads(twin.muse("log", "--json", "-n", "2"))
    assert [i["subject"] for i in items] == ["main edits a again", "merge side"]
    assert len(items[1]["parents"]) == 2 and items[0]["author"]["name"] == "Ann"
    twin.muse("log", "--since", "someday", code=2)
    twin.muse("log", "--author", "(", code=2)
    twin.muse("log", "no-such-branch", code=3)
    twin.muse("log", "--pretty=fuller2", code=2)


def test_log_n_reads_only_what_it_prints(twin: Twin) -> None:
    """With all but the two newest commits gone, -n 1 still answers; the whole log cannot."""
    ids = twin.muse("log", "--format=%H").split()
    for oid in ids[2:]:  # keep the newest commit and its parent (read to order the walk)
        if oid != ids[1]:
            (twin.m / ".muse" / "objects" / oid[:2] / oid[2:]).unlink()
    assert twin.muse("log", "-n", "1", "--format=%s") == "main edits a again\n"
    twin.muse("log", "--format=%s", code=3)
