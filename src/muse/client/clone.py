"""Clone: a new repository holding a hub repository's history, with its working tree.

Everything happens inside the new directory; if anything fails, what this clone created is
removed again (a directory we made goes entirely; a pre-existing empty directory is emptied
back), so a failed clone never leaves a half repository behind.

A clone that is killed cannot clean up, so it marks itself first: ``.muse/CLONE_IN_PROGRESS``
(core.journal) holds the URL from before anything else is written until the very end.
``status`` and ``fsck`` call such a directory unfinished, and the same ``muse clone`` into
it resumes: the packs already received stay (only missing tips are asked for), the checkout
journal finishes a half-written working tree, and the refs and upstream are set again.
"""

from __future__ import annotations

import os
import shutil
import time

from muse.client.fetch import Transfer, check_connected, download, pack_limits
from muse.client.progress import Progress
from muse.client.session import Session
from muse.client.transport import HubURL
from muse.core.record import Record
from muse.core.refnames import HEADS, TAGS
from muse.errors import MuseError, NotFound


class CloneResult(Record):
    _fields = ("directory", "branch", "transfer", "restore_seconds", "files")

    def __init__(
        self,
        directory: str,
        branch: str | None,
        transfer: Transfer,
        restore_seconds: float = 0.0,
        files: int = 0,
    ) -> None:
        self.directory = directory
        self.branch = branch
        self.transfer = transfer
        self.restore_seconds = restore_seconds
        self.files = files


def default_directory(url: str) -> str:
    return HubURL.parse(url).slug


def clone(
    url: str,
    directory: str | None = None,
    branch: str | None = None,
    path: str = "auto",
    progress: Progress | None = None,
    remote: str = "origin",
) -> CloneResult:
    from muse.core.journal import unfinished_clone

    progress = progress or Progress(quiet=True)
    hub = HubURL.parse(url)
    target = os.path.abspath(directory or hub.slug)
    existed = os.path.exists(target)
    if existed:
        if not os.path.isdir(target):
            raise MuseError(f"cannot clone into {target}: it exists and is not a directory")
        if os.listdir(target):
            started = unfinished_clone(os.path.join(target, ".muse"))
            if started is None:
                raise MuseError(f"cannot clone into {target}: the directory is not empty")
            if started != url:
                raise MuseError(
                    f"cannot clone into {target}: it holds an unfinished clone of {started} "
                    f"(run 'muse clone {started} {target}' to finish it, or remove it)"
                )
            # The same clone, killed before it finished: complete it (nothing to undo).
            return _clone_into(url, target, branch, path, progress, remote)
    try:
        os.makedirs(target, exist_ok=existed)
    except OSError as e:
        raise MuseError(f"cannot create {target}: {e.strerror}") from None
    try:
        return _clone_into(url, target, branch, path, progress, remote)
    except BaseException as e:
        if isinstance(e, MuseError) and _kept_something(target):
            # Cut off after part of the transfer verified: keep it for the rerun.
            progress.note(
                f"the clone was cut off; what arrived is kept in {target}: "
                f"run 'muse clone {url} {target}' again to resume"
            )
            raise
        _remove_created(target, existed)
        raise


def _kept_something(target: str) -> bool:
    """Whether a failed clone's store kept verified objects of a cut-off transfer."""
    return os.path.exists(os.path.join(target, ".muse", "packs", "partial"))


def _remove_created(target: str, existed: bool) -> None:
    if not existed:
        shutil.rmtree(target, ignore_errors=True)
        return
    for name in os.listdir(target):  # it was empty before: take back what we made
        p = os.path.join(target, name)
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except OSError:
                pass


def _clone_into(
    url: str, target: str, branch: str | None, path: str, progress: Progress, remote: str
) -> CloneResult:
    from muse.client.remotes import set_upstream, tracking_ref
    from muse.core.journal import begin_clone, end_clone
    from muse.core.repo import Repository

    t0 = time.monotonic()
    limits = pack_limits()  # the client's own (global config, environment), not the hub's
    muse_dir = os.path.join(target, ".muse")
    os.makedirs(muse_dir, exist_ok=True)
    begin_clone(muse_dir, url)  # first: from here on a killed clone says it is unfinished
    with Session(url) as s:
        rr = s.refs()
        heads = {r[len(HEADS) :]: oid for r, oid in rr.refs.items() if r.startswith(HEADS)}
        if branch is not None and branch not in heads:
            shown = ", ".join(sorted(heads)) or "none: the repository is empty"
            raise NotFound(f"the hub has no branch {branch!r} (branches: {shown})")
        checkout_branch = branch
        if checkout_branch is None:
            db = rr.default_branch
            if db in heads:
                checkout_branch = db
            elif "main" in heads:
                checkout_branch = "main"
            elif heads:
                checkout_branch = sorted(heads)[0]
            else:
                checkout_branch = db or "main"
        if os.path.exists(os.path.join(muse_dir, "HEAD")):
            repo = Repository(target)  # resuming: what was received is kept
            repo.refs.set_head(HEADS + checkout_branch)
        else:
            repo = Repository.init(target, initial_branch=checkout_branch)
        repo.config.setdefault("remote", {})[remote] = {"url": url}
        repo.save_config()
        # A tip whose tracking ref is set was received and checked by an earlier, killed run.
        done = {
            b: oid for b, oid in heads.items() if repo.refs.read(tracking_ref(remote, b)) == oid
        }
        tag_refs = {r: oid for r, oid in rr.refs.items() if r.startswith(TAGS)}  # clone: all
        wants = [w for w in dict.fromkeys(heads.values()) if w not in done.values()]
        wants += [w for w in tag_refs.values() if w not in wants and not repo.store.has(w)]
        transfer = Transfer()
        if wants:
            from muse.core.warm import WarmBlobs

            haves = list(dict.fromkeys(done.values()))
            tip = heads.get(checkout_branch)
            warm = WarmBlobs([tip] if tip is not None else [])
            transfer = download(repo, s, wants, haves, path, limits, progress, warm)
            check_connected(repo, transfer, wants)
        transfer.wire_seconds = time.monotonic() - t0
        transfer.requests = s.transport.requests
    for b, oid in heads.items():
        repo.refs.update(tracking_ref(remote, b), oid)
    for ref, oid in tag_refs.items():
        repo.refs.update(ref, oid)
    result = CloneResult(target, checkout_branch, transfer)
    tip = heads.get(checkout_branch)
    if tip is not None:
        from muse.core.checkout import checkout_tree

        t1 = time.monotonic()
        stats = checkout_tree(repo, repo.read_commit(tip).tree, progress=progress)
        repo.refs.update(HEADS + checkout_branch, tip, None)
        repo.store.cool()
        result.restore_seconds = time.monotonic() - t1
        result.files = stats.written
        set_upstream(repo, checkout_branch, remote, checkout_branch)
    elif heads or rr.default_branch:
        set_upstream(repo, checkout_branch, remote, checkout_branch)
    end_clone(repo.muse_dir)  # last
    return result
