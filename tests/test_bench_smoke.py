"""Smoke tests: tests/bench_wire.py keeps working end to end at XS and S, and
tests/bench_startup.py prints a row for every verb (CI runs these).

They run the real scripts as subprocesses (hub, muse and git processes over loopback) and
check that every row ran and was validated; they never assert a time, since CI machines are
shared and noisy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_wire.py")
STARTUP = os.path.join(os.path.dirname(BENCH), "bench_startup.py")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("size", ["xs", "s"])
def test_bench_wire_runs_and_validates(size: str, tmp_path: object) -> None:
    out = os.path.join(str(tmp_path), "bench.json")
    cp = subprocess.run(
        [
            sys.executable,
            BENCH,
            "--size",
            size,
            "--verb",
            "all",
            "--runs",
            "1",
            "--compare",
            "git",
            "--json",
            out,
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=850,
    )
    assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-4000:]
    with open(out) as f:
        rows = json.load(f)["rows"]
    assert {r["verb"] for r in rows} == {"push", "fetch", "clone", "pull"}
    for r in rows:
        assert r["valid"], r
        assert r["verdict"] in ("pass", "ok (no gate)"), r
        assert len(r["times"]) == 1 and len(r["git_times"]) == 1, r
        assert not r["errors"] and not r["git_errors"], r
    for verb in ("push", "fetch", "clone", "pull"):
        assert f"| {verb} | {size.upper()} |" in cp.stdout


def test_gate_verdicts_and_follow_on_lines() -> None:
    """The verdict logic itself: pass under the gate, FAIL over it, a follow-on line only for a
    miss by more than 20%, and a wrong result is a FAIL whatever its time."""
    sys.path.insert(0, os.path.dirname(BENCH))
    from benchlib import report

    def row(verb: str, size: str, path: str, secs: list[float], errors: list[str]) -> object:
        r = report.Row(verb, size, path, 4096, 1, runs=len(secs) + len(errors))
        r.times, r.errors = secs, errors
        return r

    rows = [
        row("push", "m", "stream", [1.0, 2.0, 9.0], []),  # p50 2.0 < 5: pass
        row("fetch", "m", "stream", [2.2, 2.3, 2.1], []),  # p50 2.2: FAIL, within 20%
        row("clone", "m", "stream", [7.0], []),  # 7.0 > 5 * 1.2: FAIL + follow-on
        row("pull", "m", "stream", [0.1], ["wrong result: tips differ"]),
    ]
    verdicts = report.gate_verdicts(rows)  # type: ignore[arg-type]
    assert "| push M stream < 5 s | 2.000 | pass |" in verdicts
    assert "| fetch M stream < 2 s | 2.200 | FAIL |" in verdicts
    assert "follow-on: clone M stream missed its gate by 40%" in verdicts
    assert "follow-on: fetch" not in verdicts
    assert "| pull M stream < 2 s | 0.100 | FAIL (wrong result) |" in verdicts
    assert "| push L presign < 15 s | – | not run |" in verdicts
    assert report.percentile([1.0, 2.0, 3.0], 0.95) == pytest.approx(2.9)


@pytest.mark.timeout(600)
def test_bench_startup_prints_a_row_per_verb(tmp_path: object) -> None:
    from muse.cli.main import COMMANDS

    md = os.path.join(str(tmp_path), "startup.md")
    cp = subprocess.run(
        [sys.executable, STARTUP, "--runs", "1", "--markdown-out", md, "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=550,
    )
    assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-4000:]
    rows = {line.split("|")[1].strip(): line for line in cp.stdout.splitlines() if line[:2] == "| "}
    for label in ["python3 -c pass", "muse --version", *COMMANDS]:
        assert label in rows, (label, cp.stdout[-4000:])
        assert "FAIL" not in rows[label], rows[label]
    with open(md) as f:
        written = f.read()
    assert all(rows[label] in written for label in COMMANDS)


def _git(cwd: str, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.org")
    env.update(GIT_COMMITTER_NAME="A", GIT_COMMITTER_EMAIL="a@example.org")
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.mark.timeout(600)
def test_bench_wire_history_runs_and_checks_every_verb(tmp_path: object) -> None:
    """`--history PATH` on a small git history with a merge and a revert: every verb's tip is
    checked against git's (the script raises otherwise) and a table row printed for each."""
    repo = os.path.join(str(tmp_path), "hist")
    os.makedirs(repo)
    _git(repo, "init", "-q", "-b", "main")
    for i in range(30):
        with open(os.path.join(repo, f"f{i % 4}.txt"), "a") as f:
            f.write(f"line {i}\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", f"c{i}")
    _git(repo, "checkout", "-q", "-b", "side", "HEAD~5")
    with open(os.path.join(repo, "side.txt"), "w") as f:
        f.write("side\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "side")
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "-q", "--no-edit", "side")
    _git(repo, "revert", "--no-edit", "HEAD~3")
    cp = subprocess.run(
        [sys.executable, BENCH, "--history", repo, "--runs", "1", "--compare", "git"]
        + ["--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=550,
    )
    assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-4000:]
    assert "### History: hist" in cp.stdout
    for verb in ("push", "clone", "fetch", "pull"):
        assert f"| {verb} | " in cp.stdout, cp.stdout
