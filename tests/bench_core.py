"""Core benchmark: muse beside git on the XL tier's tip tree, same data, same run.

The tiers are defined in docs/benchmarks.md, "Definition".

Measures, as whole processes (wall clock, what the user waits for):
- commit of the 25,000-file tree from scratch (``muse commit`` vs ``git add -A && git commit``),
- a no-op status (``muse status`` vs ``git status``), after one warm-up status each,
- log -n 1, a commit of 5 new files, and status and that commit again with core.fsmonitor on,
- checkout of the 25,000 files into an empty directory (a copy of the repository with no
  working tree and no index; ``muse checkout main`` vs ``git checkout main``),
- diff and status with a few changed files: 5 text files of 200 lines (committed), then 3
  lines edited in each (``muse diff`` vs ``git diff``, ``muse status`` vs ``git status``).

Runs alternate muse and git; prints a Markdown table of p50 seconds with the ratio.
Usage: python tests/bench_core.py [--tier xl] [--runs 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TIERS = {"xs": (1, 1), "s": (10, 50), "m": (100, 500), "l": (1000, 5000), "xl": (5000, 25000)}
ENV = {
    **os.environ,
    "MUSE_AUTHOR_NAME": "Bench Author",
    "MUSE_AUTHOR_EMAIL": "bench@example.invalid",
    "MUSE_AUTHOR_DATE": "1704067200 +0000",
    "GIT_AUTHOR_NAME": "Bench Author",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_AUTHOR_DATE": "1704067200 +0000",
    "GIT_COMMITTER_NAME": "Bench Author",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_DATE": "1704067200 +0000",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}
ENV.pop("PYTHONDONTWRITEBYTECODE", None)  # a user's muse runs from cached bytecode
MUSE = [sys.executable, "-m", "muse"]


EVERYDAY = ("log -n 1", "commit 5 new files", "status, fsmonitor", "commit 5 new files, fsmonitor")


def write_tip_tree(dest: str, tier: str) -> int:
    """The files of every commit of the tier (the tip's tree); returns how many."""
    commits, objects = TIERS[tier]
    per = objects // commits
    made: set[str] = set()
    n = 0
    for k in range(commits):
        d = os.path.join(dest, f"part{k % 50:02d}")
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        for i in range(per):
            data = b"\0" + random.Random(f"{tier.upper()}:{k}:{i}").randbytes(4095)
            with open(os.path.join(d, f"c{k:05d}-{i}.bin"), "wb") as f:
                f.write(data)
            n += 1
    return n


def _text_edits(root: str, edited: bool) -> None:
    """5 text files of 200 lines in the tree; ``edited``: 3 lines of each changed."""
    for j in range(5):
        lines = [f"line {i} of file {j}\n" for i in range(200)]
        if edited:
            for i in (10, 100, 190):
                lines[i] = f"edited line {i} of file {j}\n"
        with open(os.path.join(root, "part00", f"text{j}.txt"), "w") as f:
            f.write("".join(lines))


def _diff_rows(m: str, g: str, order: list[tuple[str, str]], times: dict[str, list[float]]) -> None:
    """diff and status beside git with 5 changed text files (committed first, then edited)."""
    for root in (m, g):
        _text_edits(root, edited=False)
    subprocess.run(MUSE + ["commit", "-q", "-m", "text"], cwd=m, env=ENV, check=True)
    subprocess.run("git add -A && git commit -q -m text", cwd=g, env=ENV, check=True, shell=True)
    for root in (m, g):
        _text_edits(root, edited=True)
    subprocess.run(MUSE + ["status"], cwd=m, env=ENV, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["git", "status"], cwd=g, env=ENV, check=True, stdout=subprocess.DEVNULL)
    ours = subprocess.run(MUSE + ["diff", "--numstat"], cwd=m, env=ENV, capture_output=True)
    theirs = subprocess.run(["git", "diff", "--numstat"], cwd=g, env=ENV, capture_output=True)
    assert ours.stdout == theirs.stdout, (ours.stdout, theirs.stdout)
    for who, d in order:
        tool = MUSE if who == "muse" else ["git"]
        times[f"diff {who}"].append(run(tool + ["diff"], d))
        times[f"status (5 changed) {who}"].append(run(tool + ["status"], d))


def _new_files(root: str, tag: str) -> None:
    """5 new small files in one directory (the everyday commit)."""
    for j in range(5):
        with open(os.path.join(root, "part01", f"new-{tag}-{j}.txt"), "w") as f:
            f.write(f"{tag} {j}\n" * 20)


def _everyday_rows(
    m: str, g: str, order: list[tuple[str, str]], times: dict[str, list[float]]
) -> None:
    """log -n 1, a commit of 5 new files, then the same status and commit with muse's
    core.fsmonitor on (git with its defaults: its built-in monitor is not on Linux)."""
    subprocess.run(MUSE + ["commit", "-q", "-m", "edits"], cwd=m, env=ENV, check=True)
    subprocess.run("git add -A && git commit -q -m edits", cwd=g, env=ENV, check=True, shell=True)
    for who, d in order:
        tool = MUSE if who == "muse" else ["git"]
        times[f"log -n 1 {who}"].append(run(tool + ["log", "-n", "1"], d))
    for who, d in order:
        _new_files(d, "a")
        cmd = (
            MUSE + ["commit", "-q", "-m", "five"]
            if who == "muse"
            else "git add -A && git commit -q -m five"
        )
        times[f"commit 5 new files {who}"].append(run(cmd, d))
    subprocess.run(MUSE + ["config", "core.fsmonitor", "true"], cwd=m, env=ENV, check=True)
    try:
        for _ in range(2):  # the daemon starts, then the cached trees are primed
            subprocess.run(MUSE + ["status"], cwd=m, env=ENV, check=True, stdout=subprocess.DEVNULL)
        for who, d in order:
            tool = MUSE if who == "muse" else ["git"]
            times[f"status, fsmonitor {who}"].append(run(tool + ["status"], d))
        for who, d in order:
            _new_files(d, "b")
            cmd = (
                MUSE + ["commit", "-q", "-m", "five more"]
                if who == "muse"
                else "git add -A && git commit -q -m 'five more'"
            )
            times[f"commit 5 new files, fsmonitor {who}"].append(run(cmd, d))
    finally:
        subprocess.run(
            [sys.executable, "-c", f"from muse.core import fsmonitor; fsmonitor.stop({m!r})"],
            env=ENV,
            check=False,
        )


def run(cmd: list[str] | str, cwd: str) -> float:
    subprocess.run(["sync"], check=True)
    t = time.perf_counter()
    subprocess.run(
        cmd, cwd=cwd, env=ENV, check=True, shell=isinstance(cmd, str), stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tier", default="xl", choices=sorted(TIERS))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", help="work in this directory and keep it")
    a = ap.parse_args()
    base = a.keep or tempfile.mkdtemp(prefix="bench-core-")
    os.makedirs(base, exist_ok=True)
    src = os.path.join(base, "content")
    if not os.path.isdir(src):
        nfiles = write_tip_tree(src, a.tier)
    else:
        nfiles = sum(len(f) for _, _, f in os.walk(src))
    times: dict[str, list[float]] = {
        k: []
        for k in (
            "commit muse",
            "commit git",
            "status muse",
            "status git",
            "checkout muse",
            "checkout git",
            "diff muse",
            "diff git",
            "status (5 changed) muse",
            "status (5 changed) git",
            *(f"{op} {who}" for op in EVERYDAY for who in ("muse", "git")),
        )
    }
    for r in range(a.runs):
        m = os.path.join(base, f"m{r}")
        g = os.path.join(base, f"g{r}")
        for d in (m, g):
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(src, d)
        subprocess.run(MUSE + ["init", "-q"], cwd=m, env=ENV, check=True)
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=g, env=ENV, check=True)
        order = [("muse", m), ("git", g)] if r % 2 == 0 else [("git", g), ("muse", m)]
        for who, d in order:
            if who == "muse":
                times["commit muse"].append(run(MUSE + ["commit", "-q", "-m", "tip"], d))
            else:
                times["commit git"].append(run("git add -A && git commit -q -m tip", d))
        # warm the stat caches once (both tools refresh their index on status)
        subprocess.run(MUSE + ["status"], cwd=m, env=ENV, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["git", "status"], cwd=g, env=ENV, check=True, stdout=subprocess.DEVNULL)
        for who, d in order:
            if who == "muse":
                times["status muse"].append(run(MUSE + ["status"], d))
            else:
                times["status git"].append(run(["git", "status"], d))
        # checkout into an empty directory: a copy of the repository without a working tree
        mc = os.path.join(base, f"mc{r}")
        gc = os.path.join(base, f"gc{r}")
        for d in (mc, gc):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        shutil.copytree(os.path.join(m, ".muse"), os.path.join(mc, ".muse"))
        try:
            os.unlink(os.path.join(mc, ".muse", "index"))
        except FileNotFoundError:
            pass
        with open(os.path.join(mc, ".muse", "HEAD"), "w") as f:
            f.write("ref: refs/heads/unborn\n")
        subprocess.run(
            ["git", "clone", "-q", "--no-checkout", "--no-hardlinks", g, gc + "/x"],
            env=ENV,
            check=True,
        )
        gc = gc + "/x"
        for who in [w for w, _ in order]:
            if who == "muse":
                times["checkout muse"].append(run(MUSE + ["checkout", "-q", "main"], mc))
            else:
                times["checkout git"].append(run(["git", "checkout", "-q", "main"], gc))
        check = subprocess.run(MUSE + ["status", "-s"], cwd=mc, env=ENV, capture_output=True)
        assert check.stdout == b"", check.stdout[:200]
        _diff_rows(m, g, order, times)
        _everyday_rows(m, g, order, times)
        if not a.keep:
            for d in (m, g, mc, os.path.dirname(gc)):
                shutil.rmtree(d, ignore_errors=True)
    print(f"\n{a.tier.upper()} tip tree: {nfiles} files, {a.runs} runs, p50 seconds\n")
    print("| operation | muse | git | muse/git |")
    print("|---|---:|---:|---:|")
    for op in ("commit", "status", "checkout", "diff", "status (5 changed)", *EVERYDAY):
        mu = statistics.median(times[f"{op} muse"])
        gi = statistics.median(times[f"{op} git"])
        print(f"| {op} | {mu:.3f} | {gi:.3f} | {mu / gi:.2f} |")
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
