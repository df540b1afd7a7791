"""The muse side: seeding local repositories through the core's HistoryWriter (fast, untimed),
the `muse` command's environment, and checking what a verb produced.

Seeding writes objects in-process (like git fast-import); everything a user would run is the
real `muse` command in its own process.
"""

from __future__ import annotations

import json
import os
import random
from typing import Any

from . import proc
from .workload import AUTHOR_EMAIL, AUTHOR_NAME, Tier, commits, expected_tree


def seed(repo_dir: str, tier: Tier, end: int) -> str:
    """A new muse repository holding commits 0..end-1 on main (no working tree); tip hex."""
    from muse.core.objects import Signature
    from muse.core.repo import Repository
    from muse.core.writer import HistoryWriter

    repo = Repository.init(repo_dir, initial_branch="main")
    if end <= 0:
        return ""
    with HistoryWriter(repo, branch="main") as w:
        for c in commits(tier, 0, end):
            sig = Signature(AUTHOR_NAME, AUTHOR_EMAIL, c.time, 0)
            w.commit(dict(c.files), c.message, sig)
        tip = w.tip()
    assert tip is not None
    return tip.hex()


def init_empty(repo_dir: str) -> None:
    from muse.core.repo import Repository

    Repository.init(repo_dir, initial_branch="main")


def muse_env(home: str) -> dict[str, str]:
    """The user's environment with a private HOME: stored tokens and global config stay in
    the bench's scratch directory, and no user setting changes what is measured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSE")}
    # A user's muse runs from cached bytecode; this sandbox sets PYTHONDONTWRITEBYTECODE,
    # which would recompile every edited module in every timed process.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["HOME"] = home
    env["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
    env["MUSE_AUTHOR_NAME"] = AUTHOR_NAME
    env["MUSE_AUTHOR_EMAIL"] = AUTHOR_EMAIL
    return env


def compile_sources() -> None:
    """Write the muse package's bytecode once, untimed, as an installed package has it."""
    import compileall

    import muse

    compileall.compile_dir(os.path.dirname(muse.__file__), quiet=1)


def read_ref(repo_dir: str, ref: str) -> str:
    from muse.core.repo import Repository

    oid = Repository(repo_dir).refs.read(ref)
    return oid.hex() if oid else ""


def head_branch_tip(repo_dir: str) -> tuple[str | None, str]:
    from muse.core.repo import Repository

    ref, oid = Repository(repo_dir).refs.head()
    return ref, oid.hex() if oid else ""


def missing_objects(repo_dir: str, tip_hex: str, sample: int | None) -> list[str]:
    """Walk from tip (every commit, its root tree, and up to `sample` subtrees and blobs, all of
    them when sample is None) and return the ids the local store lacks."""
    from muse.core.objects import COMMIT, TREE, commit_refs, tree_refs
    from muse.core.repo import Repository

    store = Repository(repo_dir).store
    missing: list[str] = []
    todo = [bytes.fromhex(tip_hex)]
    leaves: list[bytes] = []
    trees: list[bytes] = []
    seen: set[bytes] = set()
    while todo:
        oid = todo.pop()
        if oid in seen:
            continue
        seen.add(oid)
        got = store.get(oid)
        if got is None or got[0] != COMMIT:
            missing.append(oid.hex())
            continue
        tree, parents = commit_refs(got[1])
        trees.append(tree)
        todo.extend(parents)
    tree_todo = list(dict.fromkeys(trees))
    rng = random.Random(tip_hex)
    if sample is not None:
        tree_todo = tree_todo[:1] + rng.sample(tree_todo[1:], min(sample, len(tree_todo) - 1))
    seen_t: set[bytes] = set()
    while tree_todo:
        oid = tree_todo.pop()
        if oid in seen_t:
            continue
        seen_t.add(oid)
        got = store.get(oid)
        if got is None or got[0] != TREE:
            missing.append(oid.hex())
            continue
        modes, ids = tree_refs(got[1])
        for i, mode in enumerate(modes):
            child = ids[32 * i : 32 * i + 32]
            if mode == 4:
                if sample is None:
                    tree_todo.append(child)
            else:
                leaves.append(child)
    if sample is not None and len(leaves) > sample:
        leaves = rng.sample(leaves, sample)
    missing += [b.hex() for b in dict.fromkeys(leaves) if not store.has(b)]
    return missing


def compare_tree(root: str, tier: Tier, end: int, full: bool, meta: str) -> str | None:
    """None when the working tree at root is exactly commits 0..end-1 (every path present, no
    extra file; contents byte for byte, all of them when full, else a sample); else why not."""
    want = expected_tree(tier, end)
    have: set[str] = set()
    for d, dirs, files in os.walk(root):
        if d == root and meta in dirs:
            dirs.remove(meta)
        rel = os.path.relpath(d, root)
        for f in files:
            have.add(f if rel == "." else f"{rel}/{f}")
    if have != set(want):
        extra = sorted(have - set(want))[:3]
        lost = sorted(set(want) - have)[:3]
        return (
            f"working tree differs: {len(have)} files, expected {len(want)};"
            f" extra {extra}, missing {lost}"
        )
    paths = sorted(want)
    if not full and len(paths) > 200:
        rng = random.Random(len(paths))
        paths = paths[:1] + paths[-1:] + rng.sample(paths, 200)
    for p in paths:
        with open(os.path.join(root, p), "rb") as fh:
            if fh.read() != want[p]:
                return f"content of {p} differs"
    return None


def parse_json_summary(stdout: str) -> dict[str, Any]:
    """The `--json` summary: the last line of stdout that is a JSON object (empty if none)."""
    text = stdout.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            if isinstance(obj, dict):
                return obj
        except ValueError:
            pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return {}


def muse(*args: str) -> list[str]:
    return [*proc.MUSE, *args]
