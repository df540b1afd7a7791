"""Smoke test: tests/bench_wire.py keeps working end to end at XS and S (CI runs this).

It runs the real script as a subprocess (hub, muse and git processes over loopback) and
checks that every row ran and was validated; it never asserts a time, since CI machines are
shared and noisy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_wire.py")


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
