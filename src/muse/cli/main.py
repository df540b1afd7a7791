"""The `muse` command: a static table of verbs, each imported only when it runs.

Start-up is most of the time a user waits for at small sizes, so this module imports only
argparse-free standard modules until a verb is chosen; then it imports exactly
``muse.cli.cmd_<name>``, which defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from muse import __version__
from muse.errors import MuseError, UsageError

# command -> (module, one-line help). Order is the order shown by `muse --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("muse.cli.cmd_init", "create an empty repository"),
    "status": ("muse.cli.cmd_status", "show changes in the working tree"),
    "commit": ("muse.cli.cmd_commit", "record a snapshot of the working tree"),
    "log": ("muse.cli.cmd_log", "show commit history"),
    "show": ("muse.cli.cmd_show", "show a commit or any object"),
    "diff": ("muse.cli.cmd_diff", "show changes between the working tree and commits"),
    "branch": ("muse.cli.cmd_branch", "list, create or delete branches"),
    "checkout": ("muse.cli.cmd_checkout", "switch branches or check out a commit"),
    "fsck": ("muse.cli.cmd_fsck", "verify every object and the connectivity of refs"),
    "gc": ("muse.cli.cmd_gc", "pack loose objects and small packs into one pack"),
    "config": ("muse.cli.cmd_config", "get or set repository / user options"),
    "remote": ("muse.cli.cmd_remote", "manage remote hubs"),
    "auth": ("muse.cli.cmd_auth", "store or remove a hub access token"),
    "push": ("muse.cli.cmd_push", "send commits to a hub"),
    "pull": ("muse.cli.cmd_pull", "fetch from a hub and fast-forward"),
    "fetch": ("muse.cli.cmd_fetch", "download objects and refs from a hub"),
    "clone": ("muse.cli.cmd_clone", "copy a hub repository into a new directory"),
    "merge": ("muse.cli.cmd_merge", "merge a branch into the current one"),
    "resolve": ("muse.cli.cmd_resolve", "mark conflicted files as resolved"),
    "tag": ("muse.cli.cmd_tag", "create, list or delete tags"),
    "reset": ("muse.cli.cmd_reset", "move the current branch to another commit"),
    "revert": ("muse.cli.cmd_revert", "record a commit that undoes an earlier one"),
    "restore": ("muse.cli.cmd_restore", "discard changes to files in the working tree"),
    "stash": ("muse.cli.cmd_stash", "put working-tree changes aside and bring them back"),
    "reflog": ("muse.cli.cmd_reflog", "show where HEAD and branches have pointed"),
    "add": ("muse.cli.cmd_add", "(muse commits the whole tree) explain or limit a commit"),
    "rm": ("muse.cli.cmd_rm", "remove files from the working tree and the next commit"),
    "fast-import": ("muse.cli.cmd_fast_import", "import a git history (git fast-export)"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [
        "usage: muse [--version] [--help] <command> [<args>]",
        "",
        "commands:",
    ]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'muse help <command>' or 'muse <command> --help' for details."]
    return "\n".join(lines) + "\n"


def _make_parser(name: str) -> tuple[Any, Any]:
    """Import the verb's module and build its parser (argparse is imported only here)."""
    import argparse
    import importlib

    module_name, help_ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise

        raise MuseError(f"command {name!r} is not available in this build") from None

    class _Parser(argparse.ArgumentParser):
        def error(self, message: str) -> Any:  # one line, usage exit code

            raise UsageError(f"{message} (see 'muse {name} --help')")

    class _Formatter(argparse.RawDescriptionHelpFormatter):
        """argparse's, sized as shutil.get_terminal_size would size it, without importing
        shutil (and with it bz2 and lzma, 2.5 ms): add_argument makes a formatter for every
        argument, so every command paid for that import before it ran."""

        def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24):
            super().__init__(prog, indent_increment, max_help_position, _columns() - 2)

    from muse.cli.examples import epilog

    parser = _Parser(
        prog=f"muse {name}",
        description=help_,
        epilog=epilog(name),
        formatter_class=_Formatter,
    )
    module.add_arguments(parser)
    return module, parser


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size gives it: $COLUMNS, the terminal of
    stdout, else 80."""
    cols = os.environ.get("COLUMNS", "")
    if cols.isdigit() and int(cols) > 0:
        return int(cols)
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


def main(argv: list[str] | None = None) -> int:
    """Run one command; as the ``muse`` process itself (argv None) it ends the process at once."""
    rc = _run(argv)
    if (
        argv is None
        and os.environ.get("MUSE_NO_FAST_EXIT") != "1"
        and sys.getprofile() is None  # python -m cProfile / coverage write their data at exit
        and sys.gettrace() is None
    ):
        _fast_exit(rc)
    return rc


def _fast_exit(rc: int) -> None:
    """End the process without interpreter finalization: tearing down every module and object
    costs 10-15 ms here, a tenth of a small fetch. Nothing needs it: every file muse writes is
    written and closed (``with`` blocks, temp file + rename) before a command returns, muse
    registers no atexit work and starts no non-daemon thread it does not join. Only standard
    output and error are still buffered: flush them, or exit the normal way if that fails."""
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except Exception:  # noqa: BLE001 - e.g. a closed pipe: let the normal exit report it
        return
    os._exit(rc & 0xFF)  # what the OS keeps of sys.exit(rc), negative codes included


def _run(argv: list[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(args)
    except KeyboardInterrupt:
        sys.stderr.write("muse: interrupted\n")
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None  # type: ignore[assignment]
        except Exception:
            pass
        return 0
    except Exception as e:  # noqa: BLE001 - the one place that turns any error into one line
        if isinstance(e, MuseError):
            from muse.cli.errors import exit_code

            sys.stderr.write(f"muse: error: {e.describe()}\n")
            return exit_code(e)
        if os.environ.get("MUSE_DEBUG") == "1":
            import traceback

            traceback.print_exc()
        msg = str(e) or type(e).__name__
        if isinstance(e, OSError) and e.filename:
            msg = f"{e.strerror or msg}: {e.filename}"
        sys.stderr.write(f"muse: error: {msg.splitlines()[0] if msg else type(e).__name__}\n")
        return 1


def _main(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(_usage())
        return 0 if args else 2
    if args[0] in ("--version", "-V", "version"):
        sys.stdout.write(f"muse {__version__}\n")
        return 0
    name = args[0]
    if name == "help":
        if len(args) == 1:
            sys.stdout.write(_usage())
            return 0
        name = args[1]
        _check_command(name)
        _, parser = _make_parser(name)
        parser.print_help()
        return 0
    if name.startswith("-"):
        raise UsageError(f"unknown option {name!r} (see 'muse --help')")
    _check_command(name)
    module, parser = _make_parser(name)
    ns = _parse(parser, args[1:])
    rc = int(module.run(ns) or 0)
    if rc == 0 and name in AUTO_GC_AFTER:
        _auto_gc(quiet=bool(getattr(ns, "quiet", False)))
    return rc


def _parse(parser: Any, argv: list[str]) -> Any:
    """Options and positionals in any order, as git takes them: ``muse auth login
    --token-stdin URL`` as well as ``muse auth --token-stdin login URL`` (plain parse_args
    gives the optional URL up at the first option). A parser intermixing cannot serve (one
    with subcommands or a REMAINDER) parses as before."""
    try:
        return parser.parse_intermixed_args(argv)
    except TypeError:
        return parser.parse_args(argv)


#: Commands that add objects end with an automatic repack when one is due (git's gc --auto).
AUTO_GC_AFTER = frozenset({"commit", "merge", "pull", "fetch", "fast-import", "revert", "stash"})


def _auto_gc(quiet: bool) -> None:
    """Repack when the repository has many loose objects or packs (muse.core.repack)."""
    from muse.core import repack
    from muse.core.repo import NotARepository, Repository

    try:
        repo = Repository.find()
    except NotARepository:
        return
    if not repack.needed(repo):
        return
    if not quiet:
        sys.stderr.write("Auto packing the repository (muse gc)...\n")
    try:
        repack.auto(repo)
    except Exception as e:  # noqa: BLE001 - the command itself succeeded; say why, go on
        sys.stderr.write(f"muse: warning: automatic gc failed: {e}\n")


def _check_command(name: str) -> None:
    if name not in COMMANDS:
        raise UsageError(f"unknown command {name!r} (see 'muse --help')")


if __name__ == "__main__":
    raise SystemExit(main())
