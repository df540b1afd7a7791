"""The staging site in miniature, as CI runs it: ``scripts/staging.sh up`` (one profile),
the four verbs on tier XS on both paths through it (bench_wire.py against the site, git
alternating over the same network: every run validated, XS clones and fetches fsck'd), a
clone through the client side's forward proxy, the hub-kill drill (L push and clone), then
``down``, and nothing of it is left: no namespace, no process, no file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import missing

from staging import site

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "staging.sh"


def _staging(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture
def name() -> str:
    if os.geteuid() != 0:
        pytest.skip("staging needs root (network namespaces, tc)")
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        pytest.skip("ip netns is not available here")
    why = site.preflight()
    if why:
        missing(why)
    return f"mci{os.getpid() % 100000}"


def test_four_verbs_through_staging_then_nothing_left(name: str, tmp_path: Path) -> None:
    procs: set[tuple[int, str]] = set()
    try:
        up = _staging("up", "--name", name, "--profile", "wan50")
        assert up.returncode == 0, up.stderr + up.stdout
        assert "url: https://hub.staging.test" in up.stdout
        state = site.read_state(name)
        assert state is not None
        procs = site.namespace_processes(name)
        # postgres, weed, 2 hubs, nginx, fcgiwrap, the relay, the supervisor (and children)
        assert len(procs) >= 8, procs
        # the site's addresses exist only in its namespaces: not in ours
        ours = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
        assert site.SITE_ADDR not in ours and site.CLIENT_ADDR not in ours
        again = _staging("up", "--name", name)  # idempotent: the same site, not a second one
        assert again.returncode == 0 and site.read_state(name) == state, again.stderr
        out = tmp_path / "xs.json"
        bench = _staging("bench", "--name", name, "--", "--size", "xs", "--runs", "1",
                         "--path", "both", "--json", str(out))  # fmt: skip
        assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
        rows = json.loads(out.read_text())["rows"]
        got = {(r["verb"], r["shown_path"]) for r in rows if r["valid"] and not r["git_errors"]}
        want = {(v, p) for v in ("push", "fetch", "clone", "pull") for p in ("stream", "presign")}
        assert got == want, rows
        for r in rows:  # counted over the WAN: ours by the client, git's by the edge
            assert r["requests"] and r["round_trips"] and r["git_round_trips"], r
        assert "network: wan50: 50 ms RTT, 100 Mbit/s" in bench.stdout
        # once more through the client side's forward proxy (HTTPS_PROXY, CONNECT): muse,
        # git and the bench's own API calls all tunnel through it
        os.environ["HTTPS_PROXY"] = str(state["https_proxy"])
        try:
            proxied = _staging("bench", "--name", name, "--", "--size", "xs", "--verb", "clone",
                               "--runs", "1", "--path", "stream")  # fmt: skip
        finally:
            del os.environ["HTTPS_PROXY"]
        assert proxied.returncode == 0, proxied.stdout[-3000:] + proxied.stderr[-3000:]
        log = Path(str(state["proxy_log"])).read_text()
        assert log.count("CONNECT hub.staging.test:443") >= 3, log[-2000:]
        # one of the two hub processes killed in the middle of an L push and an L clone:
        # each succeeds through the other (or fails in one line and succeeds when run
        # again), and what the hub holds passes fsck
        drill = subprocess.run(
            [*site.in_client(name), sys.executable, "-m", "staging.drills", "--only", "kill",
             "--state", str(site.state_dir(name) / "state.json")],
            capture_output=True, text=True, cwd=ROOT / "tests",
        )  # fmt: skip
        assert drill.returncode == 0, drill.stdout[-3000:] + drill.stderr[-3000:]
        assert "tip and fsck ok" in drill.stdout and "BROKEN" not in drill.stdout
    finally:
        down = _staging("down", "--name", name)
    assert down.returncode == 0, down.stderr
    assert "killed" not in down.stdout  # every server stopped when asked
    assert site.leftovers(name) == []
    assert site.still_running(procs) == []
