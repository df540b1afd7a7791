"""Remotes (name -> hub repository URL), remote-tracking refs and branch upstreams.

Stored in ``.muse/config`` as git does: ``[remote.<name>] url = ...`` and
``[branch.<name>] remote = ..., merge = "refs/heads/<b>"``. A remote's branches are mirrored
locally as ``refs/remotes/<remote>/<branch>``, which only fetch and push move.
"""

from __future__ import annotations

from typing import Any

from muse.core.refnames import HEADS, REMOTES, RefNameError, check_branch_name
from muse.core.repo import Repository
from muse.errors import MuseError, NotFound, UsageError

DEFAULT_REMOTE = "origin"


def check_remote_name(name: str) -> str:
    try:
        check_branch_name(name)
    except RefNameError:
        raise UsageError(f"invalid remote name {name!r}") from None
    if "/" in name:
        raise UsageError(f"invalid remote name {name!r}: it may not contain '/'")
    return name


def _remotes(repo: Repository) -> dict[str, Any]:
    r = repo.config.get("remote")
    return r if isinstance(r, dict) else {}


def list_remotes(repo: Repository) -> dict[str, str]:
    return {n: str(v.get("url", "")) for n, v in _remotes(repo).items() if isinstance(v, dict)}


def get_url(repo: Repository, name: str) -> str:
    url = list_remotes(repo).get(name)
    if not url:
        known = ", ".join(sorted(list_remotes(repo))) or "none"
        raise NotFound(
            f"no remote named {name!r} (remotes: {known}; add one with "
            f"'muse remote add {name} URL')",
        )
    return url


def add(repo: Repository, name: str, url: str) -> None:
    from muse.client.transport import HubURL

    check_remote_name(name)
    HubURL.parse(url)
    if name in _remotes(repo):
        raise MuseError(f"remote {name!r} already exists (use 'muse remote set-url')")
    repo.config.setdefault("remote", {})[name] = {"url": url}
    repo.save_config()


def set_url(repo: Repository, name: str, url: str) -> None:
    from muse.client.transport import HubURL

    get_url(repo, name)
    HubURL.parse(url)
    repo.config["remote"][name]["url"] = url
    repo.save_config()


def remove(repo: Repository, name: str) -> None:
    get_url(repo, name)
    del repo.config["remote"][name]
    if not repo.config["remote"]:
        del repo.config["remote"]
    for b, v in list(branches_config(repo).items()):
        if isinstance(v, dict) and v.get("remote") == name:
            del repo.config["branch"][b]
    for ref in tracking_refs(repo, name):
        repo.refs.update(ref, None)
    repo.save_config()


def rename(repo: Repository, old: str, new: str) -> None:
    get_url(repo, old)
    check_remote_name(new)
    if new in _remotes(repo):
        raise MuseError(f"remote {new!r} already exists")
    repo.config["remote"][new] = repo.config["remote"].pop(old)
    for v in branches_config(repo).values():
        if isinstance(v, dict) and v.get("remote") == old:
            v["remote"] = new
    for ref, oid in tracking_refs(repo, old).items():
        repo.refs.update(tracking_ref(new, ref[len(REMOTES) + len(old) + 1 :]), oid)
        repo.refs.update(ref, None)
    repo.save_config()


# ----------------------------------------------------------------------- tracking refs
def tracking_ref(remote: str, branch: str) -> str:
    return f"{REMOTES}{remote}/{branch}"


def tracking_refs(repo: Repository, remote: str) -> dict[str, bytes]:
    return repo.refs.list(f"{REMOTES}{remote}/")


def remote_to_tracking(remote: str, ref: str) -> str | None:
    """``refs/heads/x`` on the hub -> ``refs/remotes/<remote>/x`` here (other refs: None)."""
    return tracking_ref(remote, ref[len(HEADS) :]) if ref.startswith(HEADS) else None


# --------------------------------------------------------------------------- upstreams
def branches_config(repo: Repository) -> dict[str, Any]:
    b = repo.config.get("branch")
    return b if isinstance(b, dict) else {}


def upstream(repo: Repository, branch: str) -> tuple[str, str] | None:
    """(remote, remote branch) a local branch tracks, or None."""
    v = branches_config(repo).get(branch)
    if not isinstance(v, dict) or not v.get("remote"):
        return None
    merge = str(v.get("merge") or HEADS + branch)
    return str(v["remote"]), merge[len(HEADS) :] if merge.startswith(HEADS) else merge


def set_upstream(repo: Repository, branch: str, remote: str, remote_branch: str) -> None:
    repo.config.setdefault("branch", {})[branch] = {
        "remote": remote,
        "merge": HEADS + remote_branch,
    }
    repo.save_config()


def default_remote(repo: Repository, branch: str | None) -> str:
    """The current branch's upstream remote, else 'origin', else the only remote."""
    if branch:
        up = upstream(repo, branch)
        if up:
            return up[0]
    names = list_remotes(repo)
    if DEFAULT_REMOTE in names or not names:
        return DEFAULT_REMOTE
    if len(names) == 1:
        return next(iter(names))
    raise UsageError(
        "which remote? there are several and no upstream is set (name one, or use -u once)",
    )
