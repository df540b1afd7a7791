"""muse init: create an empty repository."""

from __future__ import annotations

import argparse
import os

from muse.errors import MuseError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("directory", nargs="?", default=".", help="where (default: here)")
    p.add_argument("-b", "--initial-branch", default="main", help="first branch (main)")
    p.add_argument("-q", "--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    from muse.core.refnames import RefNameError
    from muse.core.repo import RepoExists, Repository

    try:
        repo = Repository.init(args.directory, args.initial_branch)
    except (RepoExists, RefNameError) as e:
        raise MuseError(str(e)) from None
    if not args.quiet:
        print(f"Initialized empty muse repository in {os.path.join(repo.root, '.muse')}")
    return 0
