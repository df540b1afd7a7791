"""muse config: get, set, unset or list options (repository, or --global for the user)."""

from __future__ import annotations

import argparse
import sys

from muse.errors import MuseError, NotFound


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("key", nargs="?", help="dotted key, e.g. user.name")
    p.add_argument("value", nargs="?", help="new value")
    p.add_argument("--global", dest="global_", action="store_true", help="the user's config")
    p.add_argument("--unset", action="store_true", help="remove the key")
    p.add_argument("-l", "--list", action="store_true", help="list every option")


def _flatten(d: dict, prefix: str = "") -> list[tuple[str, object]]:  # type: ignore[type-arg]
    out: list[tuple[str, object]] = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += _flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", v))
    return out


def _show(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def run(args: argparse.Namespace) -> int:
    from muse.core import config as c

    if args.global_:
        path = c.global_config_path()
        cfg = c.load(path)

        def save() -> None:
            c.save(path, cfg)
    else:
        from muse.cli._util import open_repo

        repo = open_repo()
        cfg = repo.config if (args.value is not None or args.unset) else repo.effective_config()
        save = repo.save_config
    try:
        if args.list or args.key is None:
            for k, v in _flatten(cfg):
                sys.stdout.write(f"{k}={_show(v)}\n")
            return 0
        if args.unset:
            if not c.unset_value(cfg, args.key):
                raise NotFound(f"no such option: {args.key}")
            save()
            return 0
        if args.value is None:
            v = c.get_value(cfg, args.key)
            if v is None or isinstance(v, dict):
                return 1
            sys.stdout.write(_show(v) + "\n")
            return 0
        if args.key in ("user.name", "user.email"):
            from muse.core.objects import check_identity

            try:
                check_identity(args.value, "x") if args.key == "user.name" else check_identity(
                    "x", args.value
                )
            except ValueError as e:
                raise MuseError(str(e)) from None
        c.set_value(cfg, args.key, args.value)
        save()
        return 0
    except c.ConfigError as e:
        raise MuseError(str(e)) from None
