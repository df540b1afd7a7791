#!/usr/bin/env python3
"""Start-up benchmark: what each `muse` verb costs before it does any real work.

For every verb of the `muse` command (`COMMANDS` in src/muse/cli/main.py) it runs a real,
near no-op invocation in a small scratch repository (`muse status` in a clean one-commit
repository, `muse push` when the hub is already up to date, `muse clone` of that one-commit
repository, ...), each as its own process through the installed `muse` script, several times,
round robin. Per verb it reports:

- the median wall time of the whole process, and how much of it is above the floor;
- the import time of what the verb loads: the sum of the self times that
  `PYTHONPROFILEIMPORTTIME=1` (`python -X importtime`) prints, median over separate runs (the
  profiling slows the process, so these runs are not the timed ones), the part of it spent in
  muse's own modules, the number of modules, and the heaviest packages the floor does not
  import.

`python3 -c pass` is the floor: the interpreter and its site start-up, which every process
pays; `muse --version` is the dispatcher alone. Verbs that talk to a hub run against a
`musehub serve` started here on loopback (`--no-hub`: they run `--help` instead, which loads
the verb's module and its parser only). The machines are shared and noisy; the figures are
for comparing verbs with each other and a change with its parent, measured in the same run
(docs/benchmarks.md, "Start-up").

    python3 tests/bench_startup.py --runs 10 --markdown-out /tmp/startup.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import museside, proc, report  # noqa: E402
from benchlib.hub import LocalHub  # noqa: E402

NETWORK = {"push", "pull", "fetch", "clone"}  # need a hub for a real invocation
TOP = 3  # heaviest packages beyond the floor shown per row
OWN = ("muse", "musehub")


@dataclass
class Case:
    """One row: a command line run in a directory of the scratch set-up."""

    label: str  # the verb, or a floor
    argv: list[str]  # {n}: the run's number, {root}: the scratch directory, {url}: the hub repo
    cwd: str  # "root", "work", "commit", "import"
    how: str  # what the invocation is, for the table
    python: bool = False  # argv is run by the interpreter, not by the muse script
    walls: list[float] = field(default_factory=list)
    imports: list[dict[str, int]] = field(default_factory=list)  # module -> self us, per run
    errors: list[str] = field(default_factory=list)


def muse_verbs() -> list[str]:
    """The verbs of the installed `muse`, in the order `muse --help` shows them."""
    from muse.cli.main import COMMANDS

    return list(COMMANDS)


def real_invocation(verb: str, hub: bool) -> tuple[list[str], str, str] | None:
    """(argv, directory, description) of a near no-op run of verb; None: none known here."""
    table: dict[str, tuple[list[str], str, str]] = {
        "init": (["init", "-q", "{root}/init-{n}"], "root", "a new repository"),
        "status": (["status"], "work", "clean one-commit repository"),
        "commit": (
            ["commit", "-q", "--allow-empty", "-m", "startup"],
            "commit",
            "an empty commit",
        ),
        "log": (["log"], "work", "one commit"),
        "show": (["show"], "work", "HEAD, one file"),
        "branch": (["branch"], "work", "list, one branch"),
        "checkout": (["checkout", "-q", "main"], "work", "the current branch"),
        "fsck": (["fsck", "-q"], "work", "one commit"),
        "config": (["config", "-l"], "work", "list"),
        "remote": (["remote", "-v"], "work", "list"),
        "auth": (["auth", "status"], "work", "status"),
        "merge": (["merge", "-q", "main"], "work", "already up to date"),
        "fast-import": (["fast-import", "-q"], "import", "an empty stream"),
        "push": (["push", "-q"], "work", "hub up to date"),
        "fetch": (["fetch", "-q"], "work", "hub up to date"),
        "pull": (["pull", "-q"], "work", "hub up to date"),
        "clone": (["clone", "-q", "{url}", "{root}/clone-{n}"], "root", "one commit, one file"),
    }
    if verb in NETWORK and not hub:
        return None
    return table.get(verb)


def cases(verbs: list[str], hub: bool, help_only: bool) -> list[Case]:
    out = [
        Case("python3 -c pass", ["-c", "pass"], "root", "the floor", python=True),
        Case("python3 -S -c pass", ["-S", "-c", "pass"], "root", "no site", python=True),
        Case("muse --version", ["--version"], "work", "the dispatcher"),
    ]
    for verb in verbs:
        real = None if help_only else real_invocation(verb, hub)
        if real is None:
            out.append(Case(verb, [verb, "--help"], "work", "--help"))
        else:
            out.append(Case(verb, *real))
    return out


def parse_importtime(stderr: str) -> dict[str, int]:
    """module -> self microseconds, from the lines `-X importtime` writes to stderr."""
    got: dict[str, int] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3:
            continue
        try:
            self_us = int(parts[0])
        except ValueError:  # the header line
            continue
        name = parts[2].strip()
        got[name] = got.get(name, 0) + self_us
    return got


def _ms(us: float) -> str:
    return f"{us / 1000:.1f}"


@dataclass
class Figures:
    wall: float  # seconds, median
    wall_min: float  # seconds: the least disturbed run
    imports_us: float  # median of the sum of self times
    beyond_us: float  # median of the part spent in modules the floor does not import
    muse_us: float  # median of the muse/musehub part
    modules: int  # median module count
    heaviest: list[tuple[str, float]]  # (package, median self us): others, beyond the floor


def figures(case: Case, floor_modules: set[str]) -> Figures | None:
    if not case.walls or not case.imports:
        return None

    per_run: list[dict[str, int]] = []  # top-level package -> self us, beyond the floor
    for r in case.imports:
        per: dict[str, int] = {}
        for name, us in r.items():
            top = name.split(".")[0]
            if name not in floor_modules and top not in OWN:
                per[top] = per.get(top, 0) + us
        per_run.append(per)
    tops = {t for per in per_run for t in per}
    medians = [(t, statistics.median(per.get(t, 0) for per in per_run)) for t in tops]
    heaviest = sorted(medians, key=lambda t: -t[1])[:TOP]
    return Figures(
        wall=statistics.median(case.walls),
        wall_min=min(case.walls),
        imports_us=statistics.median(sum(r.values()) for r in case.imports),
        beyond_us=statistics.median(
            sum(us for n, us in r.items() if n not in floor_modules) for r in case.imports
        ),
        muse_us=statistics.median(
            sum(us for n, us in r.items() if n.split(".")[0] in OWN) for r in case.imports
        ),
        modules=int(statistics.median(len(r) for r in case.imports)),
        heaviest=[(t, us) for t, us in heaviest if us >= 50],
    )


def table(rows: list[Case]) -> str:
    floor = rows[0]
    floor_modules = {name for r in floor.imports for name in r}
    ff = figures(floor, set())
    head = [
        "verb",
        "invocation",
        "wall p50 ms",
        "wall min ms",
        "over floor ms",
        "imports ms",
        "beyond floor ms",
        "muse's own ms",
        "modules",
        "heaviest others beyond the floor (ms)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in rows:
        f = figures(c, floor_modules)
        if f is None:
            why = (c.errors[0] if c.errors else "not run").replace("|", "/")
            lines.append(f"| {c.label} | {c.how} | FAIL: {why} | – | – | – | – | – | – | – |")
            continue
        over = f"{(f.wall - ff.wall) * 1000:+.1f}" if ff is not None and c is not floor else "–"
        heavy = ", ".join(f"{t} {_ms(us)}" for t, us in f.heaviest) if c is not floor else "–"
        lines.append(
            f"| {c.label} | {c.how} | {f.wall * 1000:.1f} | {f.wall_min * 1000:.1f} | {over} | "
            f"{_ms(f.imports_us)} | "
            f"{_ms(f.beyond_us)} | {_ms(f.muse_us)} | {f.modules} | {heavy or '–'} |"
        )
    return "\n".join(lines)


def header(args: argparse.Namespace, info: dict[str, str], hub: bool) -> str:
    argv = sys.argv[1:] if args.argv is None else args.argv
    where = (
        "network verbs against `musehub serve` on loopback"
        if hub
        else "network verbs as `--help` (no hub)"
    )
    return "\n".join(
        [
            f"## Start-up — {info['date']}",
            "",
            f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, "
            f"kernel {info['kernel']}, Python {info['python']}",
            f"- runs per row: {args.runs} timed + {args.runs} under `-X importtime`, round robin;"
            f" {where}",
            "- wall = wall clock of the whole process (median and least of the timed runs);"
            " over floor = median minus the floor's median; imports = median sum of the self"
            " times of `-X importtime` (inflated by the profiling itself)",
            "- command: `python3 tests/bench_startup.py " + " ".join(argv) + "`",
        ]
    )


def _login(env: dict[str, str], hub: LocalHub) -> None:
    cp = proc.run(
        museside.muse("auth", "login", hub.url, "--with-token"),
        env=env,
        input=hub.token.encode() + b"\n",
        check=False,
    )
    if cp.returncode != 0:
        env["MUSE_TOKEN"] = hub.token


def set_up(root: str, env: dict[str, str], hub: LocalHub | None) -> dict[str, str]:
    """The scratch repositories; returns the placeholders' values and the directories."""
    work = os.path.join(root, "work")
    m = museside.muse
    proc.run(m("init", "-q", work), env=env)
    with open(os.path.join(work, "verse.txt"), "w") as f:
        f.write("la la\n")
    proc.run(m("commit", "-q", "-m", "first verse"), cwd=work, env=env)
    proc.run(m("init", "-q", os.path.join(root, "commit")), env=env)
    proc.run(m("init", "-q", os.path.join(root, "import")), env=env)
    url = ""
    if hub is not None:
        _login(env, hub)
        _, url = hub.new_repo("startup")
        proc.run(m("remote", "add", "origin", url), cwd=work, env=env)
        proc.run(m("push", "-q", "-u", "origin", "main"), cwd=work, env=env)
    return {
        "root": root,
        "work": work,
        "commit": os.path.join(root, "commit"),
        "import": os.path.join(root, "import"),
        "url": url,
    }


def run_case(case: Case, n: int, dirs: dict[str, str], env: dict[str, str], profile: bool) -> None:
    argv = [a.format(n=n, root=dirs["root"], url=dirs["url"]) for a in case.argv]
    cmd = [sys.executable, *argv] if case.python else museside.muse(*argv)
    run_env = dict(env)
    if profile:
        run_env["PYTHONPROFILEIMPORTTIME"] = "1"
    try:
        t = proc.timed(cmd, cwd=dirs[case.cwd], env=run_env, timeout=120)
    except (proc.CommandFailed, OSError, TimeoutError) as e:
        case.errors.append(str(e))
        return
    if profile:
        case.imports.append(parse_importtime(t.stderr))
    else:
        case.walls.append(t.seconds)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=10, help="timed runs per row (and as many profiled)")
    p.add_argument("--verb", action="append", help="only this verb (repeatable; default: all)")
    p.add_argument("--no-hub", action="store_true", help="network verbs run --help instead")
    p.add_argument("--help-only", action="store_true", help="every verb runs --help")
    p.add_argument("--markdown-out", help="write the header and the table here (Markdown)")
    p.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    args = p.parse_args(argv)
    args.argv = argv
    if args.runs < 1:
        p.error("--runs must be at least 1")
    known = muse_verbs()
    for v in args.verb or []:
        if v not in known:
            p.error(f"unknown verb {v!r} (muse has: {', '.join(known)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    verbs = [v for v in muse_verbs() if not args.verb or v in args.verb]
    use_hub = not args.no_hub and not args.help_only and any(v in NETWORK for v in verbs)
    root = tempfile.mkdtemp(prefix="musestartup-", dir=args.workdir)
    home = os.path.join(root, "home")
    os.makedirs(home)
    env = museside.muse_env(home)
    info = report.machine()
    hub: LocalHub | None = None
    rows = cases(verbs, use_hub, args.help_only)
    try:
        museside.compile_sources()
        if use_hub:
            hub = LocalHub(os.path.join(root, "hub"))
        dirs = set_up(root, env, hub)
        n = 0
        for r in range(args.runs):
            for profile in (False, True):
                for case in rows:
                    n += 1
                    run_case(case, n, dirs, env, profile)
            print(f"  run {r + 1}/{args.runs} done", file=sys.stderr, flush=True)
    finally:
        if hub is not None:
            hub.stop()
        shutil.rmtree(root, ignore_errors=True)
    md = header(args, info, use_hub) + "\n\n" + table(rows)
    print(md, flush=True)
    if args.markdown_out:
        with open(args.markdown_out, "w") as f:
            f.write(md + "\n")
    return 1 if any(c.errors for c in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
