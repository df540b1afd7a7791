"""muse remote: name the hub repositories this repository talks to."""

from __future__ import annotations

import argparse
import sys

from muse.errors import UsageError

USAGE_TEXT = "muse remote [-v] | add NAME URL | remove NAME | rename OLD NEW | set-url NAME URL"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = USAGE_TEXT
    p.add_argument("-v", "--verbose", action="store_true", help="show URLs")
    p.add_argument("action", nargs="?", help="add, remove, rename, set-url, get-url")
    p.add_argument("args", nargs="*", help="the action's arguments")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.client import remotes as r

    repo = open_repo()
    action = args.action
    rest = args.args

    def need(n: int, what: str) -> None:
        if len(rest) != n:
            raise UsageError(f"usage: muse remote {action} {what}")

    if action is None:
        for name, url in sorted(r.list_remotes(repo).items()):
            sys.stdout.write(f"{name}\t{url}\n" if args.verbose else f"{name}\n")
    elif action == "add":
        need(2, "NAME URL")
        r.add(repo, rest[0], rest[1])
    elif action in ("remove", "rm"):
        need(1, "NAME")
        r.remove(repo, rest[0])
    elif action == "rename":
        need(2, "OLD NEW")
        r.rename(repo, rest[0], rest[1])
    elif action == "set-url":
        need(2, "NAME URL")
        r.set_url(repo, rest[0], rest[1])
    elif action == "get-url":
        need(1, "NAME")
        sys.stdout.write(r.get_url(repo, rest[0]) + "\n")
    else:
        raise UsageError(f"unknown remote action {action!r} (usage: {USAGE_TEXT})")
    return 0
