"""core.fsmonitor: a status the monitor shortens says exactly what a full scan says.

The daemon is real (inotify, its own process); every step of a random edit sequence is
checked against a scan that reads the whole tree and saves nothing.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys

import pytest

from muse.core import fsmonitor, worktree
from muse.core.index import load_index
from muse.core.repo import Repository
from tests.fixtures.muse import MUSE, muse_env

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "w"
    root.mkdir()
    r = Repository.init(str(root))
    r.config.setdefault("core", {})["fsmonitor"] = True
    r.save_config()
    yield r
    fsmonitor.stop(r.root)


def _full(r: Repository) -> tuple[bytes, list[str]]:
    """What a scan of everything finds (nothing saved)."""
    res = worktree.Scanner(r, load_index(r.muse_dir)).scan_all()
    head = r.head_commit()
    head_tree = r.read_commit(head).tree if head is not None else worktree.EMPTY_TREE_ID
    changes = list(
        worktree.diff_trees(worktree.tree_reader(r.store, res.trees), head_tree, res.tree)
    )
    return res.tree, sorted(map(repr, changes))


def _monitored(r: Repository) -> tuple[bytes, list[str]]:
    st = worktree.status(Repository.find(r.root))
    return st.tree, sorted(map(repr, st.changes))


def _commit(r: Repository, home) -> None:
    cp = subprocess.run(
        [*MUSE, "commit", "-q", "-m", "step"],
        cwd=r.root,
        env=muse_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cp.returncode in (0, 1), cp.stderr  # 1: nothing to commit


def _edit(rng: random.Random, root: str) -> str:
    dirs = [d for d, _, _ in os.walk(root) if ".muse" not in d.split(os.sep)]
    files = [
        os.path.join(d, f)
        for d, _, fs in os.walk(root)
        if ".muse" not in d.split(os.sep)
        for f in fs
    ]
    op = rng.choice(
        [
            "new",
            "new",
            "modify",
            "modify",
            "delete",
            "mkdir",
            "rmdir",
            "rename",
            "chmod",
            "ignore",
            "symlink",
            "movedir",
        ]
    )
    d = rng.choice(dirs)
    if op == "new" or (not files and op in ("modify", "delete", "rename", "chmod")):
        p = os.path.join(d, f"f{rng.randrange(10**6)}.txt")
        with open(p, "w") as f:
            f.write(f"{rng.random()}\n")
        return f"new {p}"
    if op == "modify":
        p = rng.choice(files)
        if os.path.islink(p):
            return "skip"
        with open(p, "a") as f:
            f.write("more\n")
        return f"modify {p}"
    if op == "delete":
        p = rng.choice(files)
        os.unlink(p)
        return f"delete {p}"
    if op == "mkdir":
        p = os.path.join(d, f"d{rng.randrange(10**6)}")
        os.makedirs(os.path.join(p, "inner"))
        with open(os.path.join(p, "inner", "x.txt"), "w") as f:
            f.write("x\n")
        return f"mkdir {p}"
    if op == "rmdir" and d != root:
        shutil.rmtree(d)
        return f"rmdir {d}"
    if op == "rename":
        p = rng.choice(files)
        os.replace(p, os.path.join(rng.choice(dirs), f"r{rng.randrange(10**6)}.txt"))
        return f"rename {p}"
    if op == "chmod":
        p = rng.choice(files)
        if not os.path.islink(p):
            os.chmod(p, os.stat(p).st_mode ^ 0o100)
        return f"chmod {p}"
    if op == "ignore":
        with open(os.path.join(root, ".museignore"), "a") as f:
            f.write(f"f{rng.randrange(10)}*.txt\n")
        return "ignore"
    if op == "symlink":
        p = os.path.join(d, f"l{rng.randrange(10**6)}")
        os.symlink("target", p)
        return f"symlink {p}"
    if op == "movedir" and d != root:
        dest = os.path.join(root, f"m{rng.randrange(10**6)}")
        os.replace(d, dest)
        return f"movedir {d}"
    return "skip"


def test_monitored_status_agrees_with_a_full_scan_through_random_edits(repo, tmp_path):
    rng = random.Random(1)
    root = repo.root
    for i in range(6):
        os.makedirs(os.path.join(root, f"a{i}", "b"))
        for j in range(5):
            with open(os.path.join(root, f"a{i}", "b", f"f{j}.txt"), "w") as f:
                f.write(f"{i} {j}\n")
    _commit(repo, tmp_path / "home")
    assert _monitored(repo) == _full(repo)  # primes the daemon and the cached trees
    for step in range(60):
        what = _edit(rng, root)
        assert _monitored(repo) == _full(repo), f"step {step}: {what}"
        assert _monitored(repo) == _full(repo), f"step {step} (again): {what}"
        if step % 15 == 14:
            _commit(repo, tmp_path / "home")
            assert _monitored(repo) == _full(repo), f"after commit at {step}"


def test_the_shortcut_is_taken_and_a_restarted_daemon_means_a_full_scan(repo, tmp_path):
    root = repo.root
    os.makedirs(os.path.join(root, "d"))
    for j in range(3):
        with open(os.path.join(root, "d", f"f{j}"), "w") as f:
            f.write("x\n")
    _commit(repo, tmp_path / "home")
    worktree.status(Repository.find(root))  # the daemon starts; its first answer is "full"
    worktree.status(Repository.find(root))  # primes the cached trees with a token
    r = Repository.find(root)
    sc = worktree.Scanner(r, load_index(r.muse_dir))
    assert worktree._monitored(r, sc) is not None
    assert sc.dirty == set()  # nothing changed: the whole scan is carried over
    assert sc.scan_all().tree == r.read_commit(r.head_commit()).tree
    assert fsmonitor.stop(root)
    with open(os.path.join(root, "d", "f1"), "a") as f:
        f.write("changed while no daemon ran\n")
    st = worktree.status(Repository.find(root))  # a new daemon, a new epoch: full scan
    assert [c[0] for c in st.changes] == ["d/f1"]


def test_monitor_off_by_default_starts_no_daemon(tmp_path):
    r = Repository.init(str(tmp_path / "w"))
    (tmp_path / "w" / "a").write_text("a\n")
    worktree.status(r)
    with pytest.raises(OSError):
        fsmonitor.query(r.root, None, timeout=0.2)
