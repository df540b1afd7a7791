#!/usr/bin/env python3
"""The web view's page times on a benchmark tier (default XL: 25,000 files, 5,000 commits).

Seeds the tier's history (benchlib: the same generated history bench_wire pushes), pushes it
to a fresh `musehub serve` with the real `muse push`, then asks each kind of page over one
kept-alive loopback connection: the first answer (cold: packs opened, trees decoded) and then
``--runs`` more, printing p50/p95 per kind. A benchmark, not a test: the target is every page
under 100 ms on the 2-core development machine.

    python3 tests/bench_web.py [--size xl] [--runs 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import museside, proc, workload  # noqa: E402
from benchlib.hub import LocalHub  # noqa: E402


def pages(owner: str, slug: str, tier: workload.Tier, history: list[str]) -> dict[str, str]:
    """One URL per kind of page; files and commits from the middle of the history."""
    base = f"/{owner}/{slug}"
    k = tier.commits // 2
    path = workload.path_of(k, 0)
    mid = history[len(history) // 2]
    old = history[min(len(history) - 1, 100)]
    last_page = (len(history) + 49) // 50
    return {
        "index": "/",
        "repository": base,
        "tree (dir of 500)": f"{base}/tree/main/{path.split('/')[0]}",
        "file": f"{base}/blob/main/{path}",
        "raw": f"{base}/raw/main/{path}",
        "commits p1": f"{base}/commits/main",
        f"commits p{last_page}": f"{base}/commits/main?page={last_page}",
        "commit": f"{base}/commit/{mid}",
        "compare (100 commits)": f"{base}/compare/{old}...main",
    }


def fetch(conn: http.client.HTTPConnection, path: str) -> tuple[int, float]:
    start = time.perf_counter()
    conn.request("GET", path, headers={"Accept": "text/html"})
    r = conn.getresponse()
    r.read()
    return r.status, time.perf_counter() - start


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="xl", choices=sorted(workload.TIERS))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    tier = workload.TIERS[args.size]
    scratch = tempfile.mkdtemp(prefix="bench-web-")
    hub = None
    try:
        t0 = time.perf_counter()
        repo = os.path.join(scratch, "repo")
        museside.seed(repo, tier, tier.commits)
        hub = LocalHub(os.path.join(scratch, "hub"))
        slug, url = hub.new_repo("web")
        env = museside.muse_env(os.path.join(scratch, "home")) | {"MUSE_TOKEN": hub.token}
        proc.run([*proc.MUSE, "remote", "add", "origin", url], cwd=repo, env=env)
        proc.run([*proc.MUSE, "push", "-q", "origin", "main"], cwd=repo, env=env)
        from muse.core.graph import walk
        from muse.core.repo import Repository

        r = Repository(repo)
        tip = r.refs.read("refs/heads/main")
        assert tip is not None
        history = [oid.hex() for oid, _ in walk(r, [tip])]
        print(
            f"{tier.name}: {tier.objects} files, {tier.commits} commits, seeded and pushed "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        conn = http.client.HTTPConnection("127.0.0.1", int(hub.url.rsplit(":", 1)[1]), timeout=60)
        results = {}
        print(f"{'page':24} {'status':>6} {'cold ms':>8} {'p50 ms':>8} {'p95 ms':>8}")
        for kind, path in pages(hub.owner, slug, tier, history).items():
            status, cold = fetch(conn, path)
            times = []
            for _ in range(args.runs):
                s, dt = fetch(conn, path)
                assert s == status, (path, s, status)
                times.append(dt)
            row = {
                "path": path,
                "status": status,
                "cold_ms": cold * 1000,
                "p50_ms": statistics.median(times) * 1000,
                "p95_ms": percentile(times, 0.95) * 1000,
            }
            results[kind] = row
            print(
                f"{kind:24} {status:>6} {row['cold_ms']:>8.1f} {row['p50_ms']:>8.1f} "
                f"{row['p95_ms']:>8.1f}"
            )
        conn.close()
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"tier": tier.name, "runs": args.runs, "pages": results}, f, indent=1)
        bad = [k for k, v in results.items() if v["status"] != 200]
        if bad:
            print("pages that did not answer 200:", ", ".join(bad))
            return 1
        return 0
    finally:
        if hub is not None:
            hub.stop()
        if args.keep:
            print("scratch:", scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
