"""The local pack cache's bound (``cache_max_bytes``, issue 16): with a bound that holds
about one repository's packs, pushes and clones of several repositories keep the cache
under it (least recently used packs evicted, on either storage), every clone still
succeeds and fscks clean (an evicted pack is fetched from storage again), and /metrics
reports the cache as it is."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from fixtures.recovery import wait_until
from ops_util import clone_and_fsck, start_backend, user_env, work_tree

BOUND = 25_000  # one repository of work_tree's (about 19 KB of packs), not two


def _cache(hub: Any) -> dict[str, int]:
    """{file name: bytes} in the hub's pack cache."""
    d = hub.data_dir / "cache" / "packs"
    out = {}
    for name in os.listdir(d):
        try:
            out[name] = os.path.getsize(d / name)
        except FileNotFoundError:
            pass
    return out


@pytest.mark.parametrize("backend", ["sqlite+local", "postgres+s3"])
def test_cache_stays_under_its_bound(
    tmp_path: Path, start_hub: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    env_hub = {"MUSEHUB_CACHE_MAX_BYTES": str(BOUND), "MUSEHUB_SWEEP_INTERVAL_S": "1"}
    hub = start_backend(tmp_path, start_hub, backend, request, env=env_hub)
    alice = hub.create_user("alice")
    env = user_env(tmp_path, alice)
    names = ["r0", "r1", "r2"]
    files = {}
    for n in names:
        hub.create_repo("alice", n)
        root = work_tree(env, tmp_path / f"src-{n}", hub.repo_url("alice", n), files=3)
        files[n] = {p.name for p in root.iterdir() if p.name != ".muse"}
    # Three repositories' packs were cached by their pushes: more than the bound holds.
    assert sum(_cache(hub).values()) > BOUND

    def fits() -> bool:
        return 0 < sum(_cache(hub).values()) <= BOUND

    wait_until(fits, 60, "the cache to shrink under its bound")
    for rounds in range(2):
        for n in names:
            dest = tmp_path / f"clone-{n}-{rounds}"
            assert clone_and_fsck(env, hub.repo_url("alice", n), dest) == files[n]
            wait_until(fits, 60, "the cache to fit again")
    # Each clone of a repository whose packs were evicted fetched them again from storage.
    assert hub.log().count("pack cache: evicted") >= len(names) * 2

    def pairs_whole() -> bool:
        """Every cached pack has its index and the other way round (a download or an
        eviction under way moves one file of a pair a moment before the other)."""
        cached = _cache(hub)
        stems = {name.rsplit(".", 1)[0] for name in cached}
        return all(f"{s}.pack" in cached and f"{s}.idx" in cached for s in stems)

    # Pairs go together.
    wait_until(pairs_whole, 30, "the cached packs and indexes to pair up")

    status, body = hub.request("GET", "/metrics")
    assert status == 200
    m = re.search(rb"^musehub_pack_cache_bytes (\S+)$", body, re.M)
    assert m is not None and 0 < float(m.group(1)) <= BOUND
