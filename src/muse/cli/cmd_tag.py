"""muse tag: create (lightweight or annotated), list or delete tags, as git tag does."""

from __future__ import annotations

import argparse
import sys

from muse.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="tag to create (or, with -l, a glob pattern)")
    p.add_argument("rev", nargs="?", help="what the tag names (default HEAD)")
    p.add_argument("-a", "--annotate", action="store_true", help="make an annotated tag object")
    p.add_argument("-m", "--message", action="append", help="the tag's message (implies -a)")
    p.add_argument("-F", "--file", help="read the message from a file ('-': stdin; implies -a)")
    p.add_argument("-f", "--force", action="store_true", help="replace an existing tag")
    p.add_argument("-l", "--list", action="store_true", help="list tags (matching a pattern)")
    p.add_argument("-d", "--delete", action="store_true", help="delete the named tags")
    p.add_argument(
        "-n",
        dest="lines",
        type=int,
        nargs="?",
        const=1,
        default=0,
        help="with a list: show that many lines of each annotated tag's message",
    )


def run(args: argparse.Namespace) -> int:
    from muse.cli._util import open_repo, resolve, short
    from muse.core.config import ConfigError
    from muse.core.refnames import RefNameError
    from muse.core.tags import create_tag, delete_tag, list_tags
    from muse.errors import MuseError

    repo = open_repo()
    message = _message(args)
    try:
        if args.delete:
            names = [n for n in (args.name, args.rev) if n]
            if not names:
                raise UsageError("name the tag to delete: muse tag -d NAME")
            for name in names:
                was = delete_tag(repo, name)
                print(f"Deleted tag '{name}' (was {short(was)})")
            return 0
        if args.list or args.name is None:
            if args.rev is not None:
                raise UsageError("muse tag -l takes one pattern")
            _list(repo, list_tags(repo, args.name), args.lines)
            return 0
        if (args.annotate or message is not None) and message is None:
            raise UsageError("an annotated tag needs a message: muse tag -a NAME -m MESSAGE")
        target = resolve(repo, args.rev or "HEAD", kind=None)
        new, old = create_tag(repo, args.name, target, message=message, force=args.force)
    except RefNameError as e:
        raise UsageError(str(e)) from None
    except ConfigError as e:
        raise MuseError(str(e)) from None
    if old is not None and old != new:
        print(f"Updated tag '{args.name}' (was {short(old)})")
    return 0


def _message(args: argparse.Namespace) -> str | None:
    if args.file is not None:
        if args.file == "-":
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
    elif args.message is not None:
        text = "\n\n".join(args.message)
    else:
        return None
    return text if not text or text.endswith("\n") else text + "\n"


def _list(repo, tags: dict[str, bytes], lines: int) -> None:  # type: ignore[no-untyped-def]
    from muse.core.objects import TAG, decode_tag

    out = []
    for name, oid in tags.items():
        if not lines:
            out.append(name)
            continue
        found = repo.store.get(oid)
        text = ""
        if found is not None and found[0] == TAG:
            text = decode_tag(found[1]).message
        else:
            text = repo.read_commit(repo.peel(oid)).message if found else ""
        first = text.strip("\n").split("\n")[:lines] or [""]
        out.append(f"{name:<15} {first[0]}".rstrip())
        out.extend(f"{'':<15} {ln}".rstrip() for ln in first[1:])
    if out:
        sys.stdout.write("\n".join(out) + "\n")
