#!/usr/bin/env python3
"""The four-verb MuseWire benchmark (ticket: ../shared/seed/musewire-benchmarks.txt).

Times `muse push|fetch|clone|pull` as whole processes against a real `musehub serve` over
loopback, on the workload of WORKLOAD.md, every run on fresh repositories, and (with
`--compare git`) the same verbs through `git daemon` alternating with ours in the same run:
the machines are noisy, so the ratio measured side by side is the figure that counts.

    python3 tests/bench_wire.py --size m --verb all --runs 3 --compare git
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import gitside, museside, proc, report, workload  # noqa: E402
from benchlib.hub import Hub, LocalHub, SeaweedFS  # noqa: E402
from benchlib.workload import Tier  # noqa: E402

VERBS = ["push", "fetch", "clone", "pull"]
NATURAL_PATHS = {
    "xs": ["stream"],
    "s": ["stream"],
    "m": ["stream"],
    "l": ["stream", "presign"],
    "xl": ["presign"],
}
FULL_TREE_SIZES = {"xs", "s", "m"}  # clone/pull trees compared byte for byte in full
FSCK_SIZES = {"xs", "s", "m"}


class WrongResult(Exception):
    """The verb finished but the receiving side does not match the source."""


@dataclass
class Sample:
    seconds: float
    wire: float | None = None
    restore: float | None = None
    path: str | None = None
    checkout: float | None = None  # git: checkout part of clone


@dataclass
class Env:
    """Everything shared by the runs of one bench invocation."""

    hub: Hub
    root: str  # scratch directory of this invocation
    muse_env: dict[str, str]
    git_env: dict[str, str]
    gitd: gitside.GitDaemon | None
    storage: str
    cleanup_hub: bool = False
    profile_dir: str | None = None
    counter: int = 0
    created: list[str] = field(default_factory=list)  # hub repositories made by this run
    notes: list[str] = field(default_factory=list)

    templates: dict[tuple[str, str, int], tuple[str, str]] = field(default_factory=dict)

    def _template(self, key: tuple[str, str, int], build: Callable[[str], str]) -> tuple[str, str]:
        if key not in self.templates:
            path = os.path.join(self.root, key[1], "templates", "-".join(map(str, key)))
            self.templates[key] = (path, build(path))
        return self.templates[key]

    def seed_muse(self, dest: str, tier: Tier, end: int) -> str:
        """A new repository holding commits 0..end-1: a copy of one built by HistoryWriter
        for this size (a fresh directory each run, with the same bytes, built once)."""
        path, tip = self._template(
            ("muse", tier.name.lower(), end), lambda p: museside.seed(p, tier, end)
        )
        shutil.copytree(path, dest, symlinks=True)
        return tip

    def seed_git(self, dest: str, tier: Tier, end: int, bare: bool = False) -> str:
        """The git twin of seed_muse (fast-import once per size, then copies)."""
        kind = "git-bare" if bare else "git"
        path, tip = self._template(
            (kind, tier.name.lower(), end),
            lambda p: gitside.seed(p, tier, end, self.git_env, bare=bare),
        )
        shutil.copytree(path, dest, symlinks=True)
        return tip

    def drop_templates(self) -> None:
        self.templates.clear()

    def run_dir(self, size_dir: str, label: str) -> str:
        self.counter += 1
        d = os.path.join(size_dir, f"{self.counter:04d}-{label}")
        os.makedirs(d)
        return d


# ------------------------------------------------------------------------------- muse side
def _path_args(path: str, forced: bool) -> list[str]:
    return ["--path", path] if forced else []


def _muse(env: Env, *args: str, cwd: str | None = None) -> None:
    proc.run(museside.muse(*args), cwd=cwd, env=env.muse_env)


def _timed_muse(env: Env, *args: str, cwd: str | None = None) -> Sample:
    cmd = museside.muse(*args)
    if env.profile_dir:
        env.counter += 1
        out = os.path.join(env.profile_dir, f"{env.counter:04d}-{args[0]}.txt")
        cmd = ["py-spy", "record", "-r", "1000", "-f", "raw", "-o", out, "--", *cmd]
    t = proc.timed(cmd, cwd=cwd, env=env.muse_env)
    summary = museside.parse_json_summary(t.stdout)
    wire = summary.get("wire_seconds")
    restore = summary.get("restore_seconds")
    return Sample(
        t.seconds,
        float(wire) if isinstance(wire, int | float) else None,
        float(restore) if isinstance(restore, int | float) else None,
        str(summary["path"]) if isinstance(summary.get("path"), str) else None,
    )


def _seed_hub(env: Env, rd: str, tier: Tier, end: int, url: str, name: str) -> str:
    """The hub repository receives commits 0..end-1 by a muse push (untimed)."""
    src = os.path.join(rd, name)
    tip = env.seed_muse(src, tier, end)
    _muse(env, "remote", "add", "origin", url, cwd=src)
    if end > 0:
        _muse(env, "push", "--quiet", "origin", "main", cwd=src)
    return tip


def _check_hub_tip(env: Env, slug: str, tip: str) -> None:
    got = env.hub.refs(slug).get("refs/heads/main", "")
    if got != tip:
        raise WrongResult(f"hub main is {got[:12] or 'missing'}, expected {tip[:12]}")


def _check_local(
    repo: str, ref: str, tip: str, tier: Tier, end: int, tree: bool, size: str
) -> None:
    got = museside.read_ref(repo, ref)
    if got != tip:
        raise WrongResult(f"{ref} is {got[:12] or 'missing'}, expected {tip[:12]}")
    missing = museside.missing_objects(repo, tip, None if size in FULL_TREE_SIZES else 300)
    if missing:
        raise WrongResult(f"{len(missing)} objects missing locally, e.g. {missing[0][:12]}")
    if tree:
        why = museside.compare_tree(repo, tier, end, size in FULL_TREE_SIZES, ".muse")
        if why:
            raise WrongResult(why)


def muse_run(env: Env, verb: str, size: str, path: str, forced: bool, rd: str) -> Sample:
    """One fresh run of `muse <verb>`: untimed seeding, the timed command, validation."""
    tier = workload.TIERS[size]
    c = tier.commits
    pa = _path_args(path, forced)
    slug, url = env.hub.new_repo(f"{verb}-{size}")
    env.created.append(slug)
    if verb == "push":
        src = os.path.join(rd, "src")
        tip = env.seed_muse(src, tier, c)
        _muse(env, "remote", "add", "origin", url, cwd=src)
        s = _timed_muse(env, "push", "--json", *pa, "origin", "main", cwd=src)
        _check_hub_tip(env, slug, tip)
    elif verb == "fetch":
        tip = _seed_hub(env, rd, tier, c, url, "seed")
        dst = os.path.join(rd, "dst")
        museside.init_empty(dst)
        _muse(env, "remote", "add", "origin", url, cwd=dst)
        s = _timed_muse(env, "fetch", "--json", *pa, "origin", cwd=dst)
        _check_local(dst, "refs/remotes/origin/main", tip, tier, c, False, size)
    elif verb == "clone":
        tip = _seed_hub(env, rd, tier, c, url, "seed")
        dst = os.path.join(rd, "dst")
        s = _timed_muse(env, "clone", "--json", *pa, url, dst, cwd=rd)
        _check_local(dst, "refs/heads/main", tip, tier, c, True, size)
    elif verb == "pull":
        h = tier.half
        _seed_hub(env, rd, tier, h, url, "seed-half")
        dst = os.path.join(rd, "dst")
        if h > 0:
            _muse(env, "clone", "--quiet", url, dst, cwd=rd)
        else:
            museside.init_empty(dst)
            _muse(env, "remote", "add", "origin", url, cwd=dst)
        tip = _seed_hub(env, rd, tier, c, url, "seed-full")
        s = _timed_muse(env, "pull", "--json", *pa, "origin", "main", cwd=dst)
        _check_local(dst, "refs/heads/main", tip, tier, c, True, size)
    else:
        raise ValueError(verb)
    if size in FSCK_SIZES and verb != "push":
        _muse(env, "fsck", cwd=os.path.join(rd, "dst"))
    if s.path is None and forced:
        s.path = path
    return s


# -------------------------------------------------------------------------------- git side
def _git(env: Env, *args: str, cwd: str | None = None) -> None:
    proc.run([proc.GIT, *args], cwd=cwd, env=env.git_env)


def _timed_git(env: Env, *args: str, cwd: str | None = None) -> float:
    return proc.timed([proc.GIT, *args], cwd=cwd, env=env.git_env).seconds


def _git_hub_repo(env: Env, rd: str, tier: Tier, end: int) -> tuple[str, str]:
    """A bare repository under git daemon holding commits 0..end-1 (fast-import, untimed)."""
    assert env.gitd is not None
    name = f"{os.path.basename(rd)}.git"
    bare = os.path.join(env.gitd.base_dir, name)
    env.seed_git(bare, tier, end, bare=True)
    return bare, env.gitd.url(name)


def _check_git_tip(env: Env, repo: str, ref: str, tip: str) -> None:
    got = gitside.rev_parse(repo, ref, env.git_env)
    if got != tip:
        raise WrongResult(f"git {ref} is {got[:12] or 'missing'}, expected {tip[:12]}")


def git_run(env: Env, verb: str, size: str, rd: str) -> Sample:
    """The same verb and workload through git over git daemon (git's own defaults)."""
    assert env.gitd is not None
    tier = workload.TIERS[size]
    c = tier.commits
    q = "-q"
    if verb == "push":
        src = os.path.join(rd, "gsrc")
        tip = env.seed_git(src, tier, c)
        name = f"{os.path.basename(rd)}.git"
        url = env.gitd.new_repo(name)
        _git(env, "remote", "add", "origin", url, cwd=src)
        sec = _timed_git(env, "push", q, "origin", "main", cwd=src)
        _check_git_tip(env, os.path.join(env.gitd.base_dir, name), "refs/heads/main", tip)
        return Sample(sec)
    if verb == "fetch":
        bare, url = _git_hub_repo(env, rd, tier, c)
        tip = gitside.rev_parse(bare, "refs/heads/main", env.git_env)
        dst = os.path.join(rd, "gdst")
        _git(env, "init", q, "-b", "main", dst)
        _git(env, "remote", "add", "origin", url, cwd=dst)
        sec = _timed_git(env, "fetch", q, "origin", cwd=dst)
        _check_git_tip(env, dst, "refs/remotes/origin/main", tip)
        return Sample(sec)
    if verb == "clone":
        bare, url = _git_hub_repo(env, rd, tier, c)
        tip = gitside.rev_parse(bare, "refs/heads/main", env.git_env)
        dst = os.path.join(rd, "gdst")
        sec = _timed_git(env, "clone", q, url, dst, cwd=rd)
        _check_git_tip(env, dst, "HEAD", tip)
        why = museside.compare_tree(dst, tier, c, size in FULL_TREE_SIZES, ".git")
        if why:
            raise WrongResult("git: " + why)
        # git's checkout part: a second clone without checkout, then a timed checkout.
        dst2 = os.path.join(rd, "gdst-nc")
        _git(env, "clone", q, "--no-checkout", url, dst2, cwd=rd)
        co = _timed_git(env, "checkout", q, "-f", "main", cwd=dst2)
        return Sample(sec, checkout=co)
    if verb == "pull":
        h = tier.half
        name = f"{os.path.basename(rd)}.git"
        url = env.gitd.new_repo(name)
        dst = os.path.join(rd, "gdst")
        if h > 0:
            half = os.path.join(rd, "ghalf")
            env.seed_git(half, tier, h)
            _git(env, "push", q, url, "main", cwd=half)
            _git(env, "clone", q, url, dst, cwd=rd)
        else:
            _git(env, "init", q, "-b", "main", dst)
            _git(env, "remote", "add", "origin", url, cwd=dst)
        full = os.path.join(rd, "gfull")
        tip = env.seed_git(full, tier, c)
        _git(env, "push", q, url, "main", cwd=full)
        sec = _timed_git(env, "pull", q, "--ff-only", "origin", "main", cwd=dst)
        _check_git_tip(env, dst, "HEAD", tip)
        why = museside.compare_tree(dst, tier, c, size in FULL_TREE_SIZES, ".git")
        if why:
            raise WrongResult("git: " + why)
        return Sample(sec)
    raise ValueError(verb)


# ---------------------------------------------------------------------------------- driver
def moved(verb: str, tier: Tier) -> int:
    """Files the verb moves: everything, except pull which brings commits h..C-1."""
    if verb == "pull":
        return tier.files_in(tier.half, tier.commits)
    return tier.objects


def _attempt(
    fn: Callable[..., Sample], args: tuple[object, ...], errors: list[str]
) -> Sample | None:
    try:
        return fn(*args)
    except WrongResult as e:
        errors.append(f"wrong result: {e}")
    except proc.CommandFailed as e:
        errors.append(str(e))
    except Exception as e:  # noqa: BLE001 - a broken run is a FAIL row, not a crashed bench
        if os.environ.get("BENCH_DEBUG"):
            traceback.print_exc()
        errors.append(f"{type(e).__name__}: {e}")
    return None


def run_size(
    env: Env, size: str, verbs: list[str], paths: list[str], forced: bool, runs: int, compare: bool
) -> list[report.Row]:
    tier = workload.TIERS[size]
    size_dir = os.path.join(env.root, size)
    os.makedirs(size_dir)
    rows: list[report.Row] = []
    list(workload.commits(tier))  # generate the content once, untimed
    try:
        for verb in verbs:
            n = moved(verb, tier)
            for path in paths:
                row = report.Row(verb, size, path, n * workload.FILE_SIZE, n, runs=runs)
                for r in range(runs):
                    order = ["muse", "git"] if r % 2 == 0 else ["git", "muse"]
                    for side in order:
                        if side == "muse":
                            rd = env.run_dir(size_dir, f"{verb}-{path}-muse")
                            s = _attempt(muse_run, (env, verb, size, path, forced, rd), row.errors)
                            if s is not None:
                                row.times.append(s.seconds)
                                if s.wire is not None:
                                    row.wire.append(s.wire)
                                if s.restore is not None:
                                    row.restore.append(s.restore)
                                if s.path:
                                    row.paths_taken.append(s.path)
                        elif compare:
                            rd = env.run_dir(size_dir, f"{verb}-{path}-git")
                            g = _attempt(git_run, (env, verb, size, rd), row.git_errors)
                            if g is not None:
                                row.git_times.append(g.seconds)
                                if g.checkout is not None:
                                    row.git_checkout.append(g.checkout)
                    _progress(row, r)
                rows.append(row)
    finally:
        # WORKLOAD.md: keep a size's directories until the size is done, then delete them.
        shutil.rmtree(size_dir, ignore_errors=True)
        if env.cleanup_hub:  # a staging hub keeps what it is given: remove our repositories
            for slug in env.created:
                env.hub.delete_repo(slug)
        env.created.clear()
        env.drop_templates()
        if env.gitd is not None:
            for name in os.listdir(env.gitd.base_dir):
                shutil.rmtree(os.path.join(env.gitd.base_dir, name), ignore_errors=True)
        os.sync()
    return rows


def _progress(row: report.Row, r: int) -> None:
    last = f"{row.times[-1]:.3f}s" if len(row.times) > r else "failed"
    git = f", git {row.git_times[-1]:.3f}s" if len(row.git_times) > r else ""
    print(
        f"  {row.verb} {row.size.upper()} {row.path} run {r + 1}: {last}{git}",
        file=sys.stderr,
        flush=True,
    )


def paths_for(size: str, forced: str | None) -> tuple[list[str], bool]:
    """The ticket's default: each size its natural path, L both; --path forces one (or both)."""
    if forced == "both":
        return ["stream", "presign"], True
    if forced:
        return [forced], True
    natural = NATURAL_PATHS[size]
    return natural, len(natural) > 1


def header_md(env: Env, args: argparse.Namespace, info: dict[str, str]) -> str:
    if args.url:
        where = f"existing hub {env.hub.url}"
        storage = "the hub's own"
    elif env.storage == "s3":
        where = "`musehub serve` on loopback, SQLite + S3 storage (SeaweedFS on loopback)"
        storage = "s3 (SeaweedFS)"
    else:
        where = "`musehub serve` on loopback, embedded defaults (SQLite + local directory)"
        storage = "local"
    git = "; git: `git daemon` on loopback, alternating with ours" if env.gitd else ""
    argv = sys.argv[1:] if args.argv is None else args.argv
    shown = ["***" if i > 0 and argv[i - 1] == "--token" else a for i, a in enumerate(argv)]
    return "\n".join(
        [
            f"## MuseWire benchmark — storage: {storage} — {info['date']}",
            "",
            f"- machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, "
            f"kernel {info['kernel']}, Python {info['python']}, {info['git']}",
            f"- hub: {where}{git}",
            f"- runs per row: {args.runs}; times are p50/p95 wall clock of the whole command; "
            "MB/s = content bytes moved / p50; every run on fresh repositories",
            "- command: `python3 tests/bench_wire.py " + " ".join(shown) + "`",
        ]
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--size", choices=[*workload.ORDER, "all"], default="all")
    p.add_argument("--verb", choices=[*VERBS, "all"], default="all")
    p.add_argument(
        "--path",
        choices=["stream", "presign", "both"],
        default=None,
        help="force a transport path (default: each size's natural path, L both)",
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--storage", choices=["local", "s3"], default="local")
    p.add_argument("--url", help="benchmark an existing hub (staging) instead of starting one")
    p.add_argument("--token", help="token for --url (write access)")
    p.add_argument("--compare", choices=["git", "none"], default="none")
    p.add_argument("--json", dest="json_path", help="write the results as JSON here")
    p.add_argument("--markdown-out", help="write the header and all tables here (Markdown)")
    p.add_argument(
        "--markdown-append",
        action="store_true",
        help="append to --markdown-out instead of replacing it",
    )
    p.add_argument(
        "--hub-log", help="keep the hub's info log here (server time per request, push phases)"
    )
    p.add_argument(
        "--profile",
        metavar="DIR",
        help="run every timed muse command under py-spy (raw stacks in DIR; times inflated)",
    )
    p.add_argument("--workdir", default=None, help="scratch directory (default: a temp dir)")
    args = p.parse_args(argv)
    args.argv = argv
    if args.url and not args.token:
        p.error("--url needs --token")
    if args.runs < 1:
        p.error("--runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = workload.ORDER if args.size == "all" else [args.size]
    verbs = VERBS if args.verb == "all" else [args.verb]
    compare = args.compare == "git"
    root = tempfile.mkdtemp(prefix="musebench-", dir=args.workdir)
    home = os.path.join(root, "home")
    os.makedirs(home)
    started: list[LocalHub | SeaweedFS | gitside.GitDaemon] = []
    info = report.machine()
    all_rows: list[report.Row] = []
    md: list[str] = []
    try:
        if args.url:
            hub: Hub = Hub(args.url, args.token)
        else:
            s3 = None
            if args.storage == "s3":
                s3 = SeaweedFS(os.path.join(root, "seaweedfs"))
                started.append(s3)
            hub = LocalHub(
                os.path.join(root, "hub"),
                args.storage,
                s3.endpoint if s3 else None,
                log_level="info" if args.hub_log else "warning",
            )
            started.append(hub)
        genv = gitside.git_env(home)
        gitd = None
        if compare:
            base = os.path.join(root, "gitd")
            os.makedirs(base)
            gitd = gitside.GitDaemon(base, genv)
            started.append(gitd)
        menv = museside.muse_env(home)
        museside.compile_sources()
        _login(menv, hub)
        env = Env(hub, root, menv, genv, gitd, args.storage, cleanup_hub=bool(args.url))
        if args.profile:
            os.makedirs(args.profile, exist_ok=True)
            env.profile_dir = os.path.abspath(args.profile)
        md.append(header_md(env, args, info))
        print(md[-1] + "\n", flush=True)
        for size in sizes:
            paths, forced = paths_for(size, args.path)
            t0 = time.monotonic()
            rows = run_size(env, size, verbs, paths, forced, args.runs, compare)
            all_rows += rows
            table = f"### {size.upper()}\n\n" + report.size_table(rows, compare)
            md.append(table)
            print(table + f"\n\n({size.upper()} took {time.monotonic() - t0:.0f} s)\n", flush=True)
        verdicts = "### Gates (ticket #47)\n\n" + report.gate_verdicts(all_rows)
        if compare:
            verdicts += "\n\n" + report.behind_git(all_rows)
        md.append(verdicts)
        print(verdicts, flush=True)
    finally:
        for s in reversed(started):
            try:
                s.stop()
            except Exception:  # noqa: BLE001
                pass
            if args.hub_log and isinstance(s, LocalHub):
                shutil.copyfile(s.log_path, args.hub_log)
        shutil.rmtree(root, ignore_errors=True)
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(
                {
                    "machine": info,
                    "storage": args.storage,
                    "runs": args.runs,
                    "rows": [r.to_json() for r in all_rows],
                },
                f,
                indent=2,
            )
    if args.markdown_out:
        mode = "a" if args.markdown_append and os.path.exists(args.markdown_out) else "w"
        with open(args.markdown_out, mode) as f:
            head = "\n" if mode == "a" else report.PREAMBLE + "\n"
            f.write(head + "\n\n".join(md) + "\n")
    ok = all(r.valid and not r.git_errors for r in all_rows)
    return 0 if ok and all_rows else 1


def _login(menv: dict[str, str], hub: Hub) -> None:
    """Store the token the way a user would (`muse auth login`, token on standard input)."""
    cp = proc.run(
        museside.muse("auth", "login", hub.url, "--with-token"),
        env=menv,
        input=hub.token.encode() + b"\n",
        check=False,
    )
    if cp.returncode != 0:
        menv["MUSE_TOKEN"] = hub.token
        print(
            f"note: muse auth login failed ({cp.stderr.decode().strip()[:200]}); "
            "relying on MUSE_TOKEN",
            file=sys.stderr,
        )


if __name__ == "__main__":
    raise SystemExit(main())
