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


def unset_upstream(repo: Repository, branch: str) -> bool:
    """Forget a branch's upstream (``muse branch --unset-upstream``); False if it had none."""
    if upstream(repo, branch) is None:
        return False
    del repo.config["branch"][branch]
    if not repo.config["branch"]:
        del repo.config["branch"]
    repo.save_config()
    return True


def move_branch_config(repo: Repository, old: str, new: str) -> None:
    """A renamed branch keeps its upstream, as ``git branch -m`` moves ``branch.<old>``."""
    section = branches_config(repo)
    if old in section:
        section[new] = section.pop(old)
        repo.save_config()
    elif new in section:  # -M over a branch that had one: the old branch's config wins (none)
        del section[new]
        repo.save_config()


def upstream_ref(repo: Repository, branch: str) -> tuple[str, str] | None:
    """(shown name such as ``origin/main``, local remote-tracking ref) of a branch's upstream."""
    up = upstream(repo, branch)
    if up is None:
        return None
    return f"{up[0]}/{up[1]}", tracking_ref(*up)


def split_tracking(repo: Repository, name: str) -> tuple[str, str] | None:
    """``origin/topic`` -> ("origin", "topic") when that remote-tracking ref exists here."""
    remote, sep, branch = name.removeprefix(REMOTES).partition("/")
    if not sep or not branch:
        return None
    try:
        check_branch_name(branch)
        if repo.refs.read(tracking_ref(remote, branch)) is None:
            return None
    except (RefNameError, ValueError):
        return None
    return remote, branch


def remotes_with_branch(repo: Repository, branch: str) -> list[str]:
    """The remotes whose tracking refs hold ``branch`` (checkout's "track origin/topic")."""
    out = []
    for remote in sorted(list_remotes(repo)):
        try:
            if repo.refs.read(tracking_ref(remote, branch)) is not None:
                out.append(remote)
        except ValueError:
            continue
    return out


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
