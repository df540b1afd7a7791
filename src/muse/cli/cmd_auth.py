"""muse auth: store, check or forget the access token for a hub."""

from __future__ import annotations

import argparse
import os
import sys

from muse.errors import MuseError, NoAccess, UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("login", "logout", "status"))
    p.add_argument("url", nargs="?", help="the hub (default: this repository's origin)")
    p.add_argument(
        "--token-stdin",
        "--with-token",
        dest="token_stdin",
        action="store_true",
        help="read the token from standard input",
    )
    p.add_argument("--no-verify", action="store_true", help="store without asking the hub")


def _hub_of(url: str | None) -> str:
    from muse.client.transport import HubURL, origin_of

    if url is None:
        from muse.client import remotes
        from muse.core.repo import Repository

        try:
            repo = Repository.find()
            url = remotes.get_url(repo, remotes.default_remote(repo, repo.current_branch()))
        except MuseError:
            raise UsageError("which hub? muse auth login URL") from None
    try:
        return HubURL.parse(url).hub
    except MuseError:
        origin = origin_of(url)
        path = url.split("://", 1)[1].partition("/")[2].strip("/")
        return origin + (f"/{path}" if path else "")


def _read_token(from_stdin: bool) -> str:

    token = ""
    if from_stdin:
        token = sys.stdin.readline()
    elif os.environ.get("MUSE_TOKEN"):
        token = os.environ["MUSE_TOKEN"]
    elif sys.stdin.isatty():
        import getpass

        token = getpass.getpass("Token: ")
    else:
        token = sys.stdin.readline()
    token = token.strip()
    if not token:
        raise UsageError("no token given (paste one, or pipe it with --token-stdin)")
    return token


def _whoami(hub: str, token: str) -> str:
    from muse.client.session import hub_session
    from muse.client.transport import WireError

    with hub_session(hub, token) as t:
        try:
            obj = t.request("GET", f"{hub}/api/user").json()
        except WireError as e:
            if e.kind == NoAccess.kind or e.status in (401, 403):
                raise NoAccess(
                    f"{hub} refused this token (check it, or create a new one: "
                    "musehub token create)",
                ) from None
            raise
    return str(obj.get("username") or "")


def run(args: argparse.Namespace) -> int:
    from muse.client import credentials
    from muse.client.transport import check_token_allowed, origin_of

    if args.action == "status":
        hubs = credentials.load()
        if args.url:
            hubs = {k: v for k, v in hubs.items() if k == origin_of(args.url)}
        if os.environ.get("MUSE_TOKEN"):
            scope = os.environ.get("MUSE_TOKEN_HUB")
            where = (
                origin_of(scope) if scope else "hubs on this machine only (MUSE_TOKEN_HUB unset)"
            )
            sys.stdout.write(f"MUSE_TOKEN is set: it is used for {where}\n")
        if not hubs:
            sys.stdout.write("not logged in to any hub\n")
            return 0 if not args.url else 4
        for origin, entry in sorted(hubs.items()):
            user = entry.get("username") if isinstance(entry, dict) else None
            sys.stdout.write(f"{origin}: logged in{' as ' + user if user else ''}\n")
        return 0
    hub = _hub_of(args.url)
    if args.action == "logout":
        if credentials.remove(hub):
            sys.stderr.write(f"logged out of {origin_of(hub)}\n")
            return 0
        sys.stderr.write(f"not logged in to {origin_of(hub)}\n")
        return 0
    check_token_allowed(origin_of(hub))
    token = _read_token(args.token_stdin)
    user = "" if args.no_verify else _whoami(hub, token)
    where = credentials.store(hub, token, user or None)
    sys.stderr.write(f"logged in to {where}{' as ' + user if user else ''}\n")
    return 0
