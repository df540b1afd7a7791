"""reset --hard and restore --source to a hostile tree (names with .., .muse, a path
through a symlink, missing objects, ...) are refused through the `muse` process with one line,
before anything is written or any ref moves."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from coretest_helpers import commit_all, write
from test_checkout import files_on_disk, hostile_trees

from muse.core.objects import COMMIT, Commit, Signature
from muse.core.repo import Repository
from tests.fixtures.muse import MUSE, muse_env


def test_undo_verbs_refuse_hostile_trees(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    repo = Repository.init(str(outer / "w"))
    write(repo.root, "existing", b"keep")
    head = commit_all(repo)
    env = muse_env(tmp_path / "home")
    who = Signature("T", "t@example.invalid", 1704067200, 0)
    before_outer = sorted(os.listdir(outer))
    cases = list(hostile_trees(repo))
    assert len(cases) >= 20
    for name, tree in cases:
        oid = repo.store.put(COMMIT, Commit(tree, (head,), who, who, f"{name}\n").encode())
        for args in (["reset", "--hard", oid.hex()], ["restore", "--source", oid.hex(), "."]):
            p = subprocess.run([*MUSE, *args], cwd=repo.root, env=env, capture_output=True)
            err = p.stderr.decode().strip().splitlines()
            assert p.returncode != 0 and len(err) == 1, (name, args, p.stderr)
            assert err[0].startswith("muse: error: ") and "Traceback" not in err[0]
            assert files_on_disk(repo.root) == {"existing": b"keep"}, (name, args)
            assert repo.head_commit() == head, (name, args)
    assert sorted(os.listdir(outer)) == before_outer
