"""Pull: fetch one branch of a remote, then bring the current branch and working tree up to it.

A fast-forward moves the branch and rewrites only the files that differ; diverged histories
are merged three-way at file level (:mod:`muse.core.merge`). Either way the working tree is
changed through ``checkout_tree``, which refuses before writing anything if a local change
would be overwritten.
"""

from __future__ import annotations

import time

from muse.client.fetch import FetchResult, fetch
from muse.client.progress import Progress
from muse.core.record import Record
from muse.core.repo import Repository
from muse.errors import Conflict, MuseError, UsageError


class PullResult(Record):
    _fields = ("fetched", "kind", "restore_seconds", "files", "conflicts", "remote", "branch")

    def __init__(
        self,
        fetched: FetchResult,
        kind: str,  # up-to-date | fast-forward | merged | conflict
        restore_seconds: float,
        files: int,
        conflicts: list[str],
        remote: str,
        branch: str,
    ) -> None:
        self.fetched = fetched
        self.kind = kind
        self.restore_seconds = restore_seconds
        self.files = files
        self.conflicts = conflicts
        self.remote = remote
        self.branch = branch


def pull(
    repo: Repository,
    remote: str | None = None,
    branch: str | None = None,
    path: str = "auto",
    progress: Progress | None = None,
    ff: str = "auto",
) -> PullResult:
    from muse.client.remotes import default_remote, get_url, tracking_ref, upstream
    from muse.core.checkout import CheckoutConflict
    from muse.core.merge import MergeError, merge, merge_head
    from muse.core.paths import UnsafePath

    progress = progress or Progress(quiet=True)
    current = repo.current_branch()
    if current is None:
        raise UsageError("HEAD is detached: check out a branch before pulling")
    if merge_head(repo) is not None:
        raise Conflict(
            "a merge is in progress: resolve the conflicts and 'muse commit', "
            "or 'muse merge --abort'",
        )
    up = upstream(repo, current)
    if remote is None:
        remote = default_remote(repo, current)
    if branch is None:
        branch = up[1] if up and up[0] == remote else current
    fr = fetch(repo, remote, [branch], path, progress, warm=True)
    theirs = repo.refs.read(tracking_ref(remote, branch))
    assert theirs is not None
    t1 = time.monotonic()
    url = get_url(repo, remote)
    try:
        res = merge(repo, theirs, f"branch '{branch}' of {url}", progress=progress, ff=ff)
    except CheckoutConflict as e:
        raise MuseError(str(e)) from None
    except (MergeError, UnsafePath) as e:
        raise MuseError(str(e)) from None
    finally:
        repo.store.cool()
    return PullResult(
        fr, res.kind, time.monotonic() - t1, res.written, res.conflicts, remote, branch
    )
