"""muse fsck: verify every object and the connectivity of refs; exit 1 on any problem."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo
    from muse.core.fsck import fsck

    rep = fsck(open_repo())
    for p in rep.problems:
        sys.stderr.write(f"error: {p}\n")
    for w in rep.warnings:
        sys.stderr.write(f"warning: {w}\n")
    if not args.quiet:
        sys.stdout.write(
            f"checked {rep.objects} objects ({rep.loose} loose, {rep.packed} packed), "
            f"{rep.reachable} reachable: "
            + ("ok\n" if rep.ok else f"{len(rep.problems)} problem(s)\n")
        )
    return 0 if rep.ok else 1
