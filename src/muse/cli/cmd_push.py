"""muse push: send local commits and tags to a hub and move or delete its refs (all or none)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from muse.cli.transfer import add_transfer_options
from muse.errors import MuseError, NotFound, UsageError

if TYPE_CHECKING:
    from muse.core.repo import Repository


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("remote", nargs="?", help="remote name (default: upstream, else origin)")
    p.add_argument(
        "refspec",
        nargs="*",
        help="branch or tag to push, LOCAL:REMOTE, or :REMOTE to delete (default: current)",
    )
    p.add_argument("-f", "--force", action="store_true", help="overwrite the hub's branch or tag")
    p.add_argument("--all", action="store_true", help="push every local branch")
    p.add_argument("--tags", action="store_true", help="push every local tag the hub lacks")
    p.add_argument(
        "-d", "--delete", action="store_true", help="delete the named branches or tags on the hub"
    )
    p.add_argument(
        "-u", "--set-upstream", action="store_true", help="make the remote branch the upstream"
    )
    add_transfer_options(p)


def _plan(
    repo: Repository, args: argparse.Namespace, current: str | None
) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """(branch pairs, tags, remote refs to delete) the command line asks for."""
    from muse.core.refnames import HEADS, TAGS, RefNameError, check_branch_name, check_ref_name

    pairs: list[tuple[str, str]] = []
    tags: list[str] = []
    delete: list[str] = []
    specs = list(args.refspec)
    try:
        if args.delete:
            if not specs:
                raise UsageError("--delete needs the branches or tags to delete")
            for spec in specs:
                delete.append(_check_remote_name(spec.removeprefix(":")))
            return pairs, tags, delete
        if args.all:
            if specs:
                raise UsageError("--all pushes every branch: name no branch")
            pairs = [(r[len(HEADS) :],) * 2 for r in repo.refs.list(HEADS)]
            if not pairs:
                raise MuseError("there are no branches with commits to push")
        if not specs and not args.all and not args.tags:
            if current is None:
                raise UsageError("HEAD is detached: name the branch to push")
            specs = [current]
        for spec in specs:
            local, colon, dst = spec.partition(":")
            if colon and not local:  # git's ":branch": delete it on the hub
                delete.append(_check_remote_name(dst))
            elif local.startswith(TAGS) and not colon:
                tags.append(check_ref_name(local)[len(TAGS) :])
            elif not colon and not repo.branch_exists(check_branch_name(local)):
                if repo.refs.read(TAGS + local) is None:
                    raise NotFound(f"no branch or tag named {local!r} to push")
                tags.append(local)
            else:
                local = local.removeprefix(HEADS)
                dst = dst.removeprefix(HEADS)
                check_branch_name(local)
                check_branch_name(dst or local)
                pairs.append((local, dst or local))
    except RefNameError as e:
        raise UsageError(str(e)) from None
    return pairs, tags, delete


def _check_remote_name(name: str) -> str:
    """A ref to delete on the hub: a full ref name, or a short branch or tag name."""
    from muse.core.refnames import check_branch_name, check_ref_name

    return check_ref_name(name) if name.startswith("refs/") else check_branch_name(name)


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.cli.transfer import summary
    from muse.client.progress import Progress
    from muse.client.push import push
    from muse.client.remotes import default_remote, get_url, set_upstream
    from muse.core.refnames import HEADS, TAGS

    t0 = time.monotonic()
    repo = open_repo()
    current = repo.current_branch()
    remote = args.remote or default_remote(repo, current)
    pairs, tags, delete = _plan(repo, args, current)
    progress = Progress(args.quiet or args.json)
    res = push(
        repo,
        remote,
        pairs,
        force=args.force,
        path=args.path,
        progress=progress,
        tags=tags,
        delete=delete,
        all_tags=args.tags,
    )
    if args.set_upstream:
        for local, dst in pairs:
            set_upstream(repo, local, remote, dst)
    if not args.quiet and not args.json:
        url = get_url(repo, remote)
        if not res.updates:
            sys.stderr.write(f"Everything up-to-date ({url})\n")
        else:
            sys.stderr.write(f"To {url}\n")
            for u in res.updates:
                tag = u.ref.startswith(TAGS)
                dst = u.ref[len(TAGS) :] if tag else u.ref.removeprefix(HEADS)
                if u.new is None:
                    sys.stderr.write(f" - [deleted]  {dst}\n")
                    continue
                if u.old is None:
                    what = "[new tag]" if tag else "[new branch]"
                else:
                    sep = "..." if u.force else ".."
                    what = f"{u.old.hex()[:12]}{sep}{u.new.hex()[:12]}"
                    if u.force:
                        what += " (forced)"
                sys.stderr.write(f"   {what}  {u.local} -> {dst}\n")
            if res.objects:
                sys.stderr.write(f"{res.objects} objects, {res.bytes} bytes via {res.path}\n")
        if args.set_upstream:
            for local, dst in pairs:
                sys.stderr.write(f"branch '{local}' now tracks '{remote}/{dst}'\n")
    if args.json:
        summary(
            "push",
            res,
            t0,
            updated=[u.ref for u in res.updates if u.new is not None],
            deleted=[u.ref for u in res.updates if u.new is None],
            chunks_sent=res.chunks_sent,
            chunks_deduplicated=res.chunks_deduplicated,
            negotiate_seconds=round(res.negotiate_seconds, 6),
        )
    return 0
