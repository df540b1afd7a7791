"""A checkout killed while it writes the working tree is finished by running it again.

Real processes and a real SIGKILL: ``muse checkout`` of a branch with thousands of files is
killed once files have started to appear. What it leaves must not be taken for the user's
work: status warns, commit refuses, and the same command run again completes the tree.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from .conftest import MUSE, Muse

N = 6000


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for d, _dirs, files in os.walk(root):
        if ".muse" in Path(d).relative_to(root).parts[:1]:
            continue
        for f in files:
            p = Path(d) / f
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def _kill_mid_checkout(muse: Muse, repo: Path, branch: str) -> bool:
    """Start `muse checkout branch`, SIGKILL it once files appear; True if it was cut."""
    proc = subprocess.Popen([*MUSE, "checkout", branch], cwd=repo, env=muse.env)
    try:
        deadline = time.monotonic() + 30
        target = repo / "big"
        while time.monotonic() < deadline and proc.poll() is None:
            if target.is_dir() and len(os.listdir(target)) > 50:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode == -signal.SIGKILL and (repo / ".muse" / "CHECKOUT_IN_PROGRESS").exists()


def test_killed_checkout_is_finished_by_running_it_again(muse: Muse, tmp_path: Path) -> None:
    repo = tmp_path / "r"
    muse.run("init", str(repo))
    (repo / "a.txt").write_text("a\n")
    muse.run("commit", "-m", "base", cwd=repo)
    muse.run("checkout", "-b", "wide", cwd=repo)
    (repo / "big").mkdir()
    for i in range(N):
        (repo / "big" / f"f{i:05d}.txt").write_bytes(b"content %d\n" % i * 40)
    muse.run("commit", "-m", "wide", cwd=repo)
    want = _tree(repo)
    muse.run("checkout", "main", cwd=repo)
    assert not (repo / "big").exists()

    for _attempt in range(5):
        if _kill_mid_checkout(muse, repo, "wide"):
            break
        muse.run("checkout", "main", cwd=repo)  # it finished first: try again
    else:
        raise AssertionError("could not kill the checkout while it was writing")

    st = muse.run("status", cwd=repo)
    assert "interrupted" in st.stderr
    cp = muse.run("commit", "-m", "oops", cwd=repo, check=False)
    assert cp.returncode == 1 and "interrupted" in cp.stderr

    muse.run("checkout", "wide", cwd=repo)  # the same command again
    assert _tree(repo) == want
    assert not (repo / ".muse" / "CHECKOUT_IN_PROGRESS").exists()
    st = muse.run("status", cwd=repo)
    assert "nothing to commit" in st.stdout and "interrupted" not in st.stderr
    assert "wide" in muse.run("log", "--oneline", "-n", "1", cwd=repo).stdout
