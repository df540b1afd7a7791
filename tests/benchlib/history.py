"""The real-history benchmark (`bench_wire.py --history PATH`, issue 13).

A git repository or bundle (for example pallets/flask) is brought into Muse once with
`git fast-export | muse fast-import` (untimed), then both tools move the same history over
loopback, alternating, every run on fresh repositories:

- push: the whole default branch to an empty repository (a hub repository; a bare repository
  under `git daemon`);
- clone: that repository, working tree included;
- fetch: the whole history into an empty repository with a remote (no working tree);
- pull: a clone holding the history up to the last 10 % of the first-parent chain pulls the
  rest (a fast-forward).

Beside the times: the pack bytes each verb moved (Muse's `--json` "bytes"; git's kept packs,
with `transfer.unpackLimit=1` so every received pack is kept as it came) and the repository
sizes at rest (the clone's `.muse` and `.git`; the hub's and the bare repository's store).
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import museside, proc, report
from .gitside import GitDaemon
from .hub import Hub

VERBS = ("push", "clone", "fetch", "pull")
PULL_SHARE = 0.10  # the incremental pull brings the last tenth of the first-parent chain
KEEP_PACKS = ["-c", "transfer.unpackLimit=1"]  # git keeps each received pack whole


@dataclass
class Side:
    times: list[float] = field(default_factory=list)
    wire_bytes: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)


@dataclass
class HistoryEnv:
    hub: Hub
    gitd: GitDaemon
    root: str
    muse_env: dict[str, str]
    git_env: dict[str, str]
    counter: int = 0

    def name(self, what: str) -> str:
        self.counter += 1
        return f"hist-{what}-{self.counter}"


@dataclass
class Prepared:
    """The history on both sides, built once and untimed."""

    git_src: str  # a bare mirror
    muse_full: str  # muse repository with the whole default branch
    muse_part: str  # muse repository with the history up to `base`, checked out
    git_part: str  # git clone at `base`, checked out
    branch: str
    tip: str  # git commit id of the branch tip
    base: str  # git commit id the incremental pull starts from
    commits: int
    first_parent: int
    files: int
    muse_tip: str = ""


def _git(env: HistoryEnv, *args: str, cwd: str | None = None) -> str:
    cp = proc.run([proc.GIT, *args], cwd=cwd, env=env.git_env)
    return cp.stdout.decode().strip()


def _muse(env: HistoryEnv, *args: str, cwd: str | None = None, input: bytes | None = None) -> str:
    cp = proc.run(museside.muse(*args), cwd=cwd, env=env.muse_env, input=input)
    return cp.stdout.decode().strip()


def _import(env: HistoryEnv, git_dir: str, ref: str, dest: str) -> None:
    """`git fast-export REF | muse fast-import` into a new Muse repository at dest."""
    museside.init_empty(dest)
    stream = proc.run(
        [proc.GIT, "-C", git_dir, "fast-export", "--signed-tags=strip", "--reencode=yes", ref],
        env=env.git_env,
    ).stdout
    _muse(env, "fast-import", "-q", cwd=dest, input=stream)


def prepare(env: HistoryEnv, path: str) -> Prepared:
    src = os.path.join(env.root, "history-src.git")
    _git(env, "clone", "-q", "--mirror", os.path.abspath(path), src)
    # packed as a hosting service serves it (deltas found afresh), not as the bundle came
    _git(env, "-C", src, "repack", "-q", "-a", "-d", "-f")
    head = _git(env, "-C", src, "symbolic-ref", "--short", "HEAD")
    tip = _git(env, "-C", src, "rev-parse", head)
    chain = int(_git(env, "-C", src, "rev-list", "--first-parent", "--count", head))
    back = max(1, int(chain * PULL_SHARE))
    base = _git(env, "-C", src, "rev-parse", f"{head}~{back}")
    _git(env, "-C", src, "branch", "-f", "bench-base", base)
    full = os.path.join(env.root, "history-muse-full")
    _import(env, src, head, full)
    part = os.path.join(env.root, "history-muse-part")
    _import(env, src, "bench-base", part)
    # the partial import names its branch bench-base: the local main starts there
    _muse(env, "branch", head, "bench-base", cwd=part)
    _muse(env, "checkout", "--force", head, cwd=part)
    _muse(env, "branch", "-D", "bench-base", cwd=part)
    gpart = os.path.join(env.root, "history-git-part")
    _git(env, "clone", "-q", "--no-local", "--single-branch", "-b", "bench-base", src, gpart)
    _git(env, "-C", gpart, "checkout", "-q", "-B", head)
    muse_tip = museside.read_ref(full, f"refs/heads/{head}")
    files = len(_git(env, "-C", src, "ls-tree", "-r", "--name-only", head).splitlines())
    commits = int(_git(env, "-C", src, "rev-list", "--count", head))
    return Prepared(src, full, part, gpart, head, tip, base, commits, chain, files, muse_tip)


def _du(path: str) -> int:
    total = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            try:
                total += os.lstat(os.path.join(dirpath, n)).st_size
            except OSError:
                pass
    return total


def _packs(git_dir: str) -> int:
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(git_dir, "objects/pack/*.pack")))


class Run:
    """One invocation's measurements: alternating muse and git runs of each verb."""

    def __init__(self, env: HistoryEnv, prep: Prepared) -> None:
        self.env = env
        self.prep = prep
        self.muse: dict[str, Side] = {v: Side() for v in VERBS}
        self.git: dict[str, Side] = {v: Side() for v in VERBS}
        self.rest: dict[str, int] = {}

    # ------------------------------------------------------------------ muse
    def _muse_timed(self, verb: str, *args: str, cwd: str) -> dict[str, Any]:
        t = proc.timed(museside.muse(*args), cwd=cwd, env=self.env.muse_env)
        summary = museside.parse_json_summary(t.stdout)
        side = self.muse[verb]
        side.times.append(t.seconds)
        side.wire_bytes.append(int(summary.get("bytes", 0)))
        side.requests.append(int(summary.get("requests", 0)))
        return summary

    def _hub_repo(self, what: str) -> str:
        slug, url = self.env.hub.new_repo(self.env.name(what))
        remote = f"r{self.env.counter}"
        _muse(self.env, "remote", "add", remote, url, cwd=self.prep.muse_full)
        _muse(self.env, "push", "-q", remote, self.prep.branch, cwd=self.prep.muse_full)
        return url

    def _check_muse_tip(self, repo: str) -> None:
        got = museside.read_ref(repo, f"refs/heads/{self.prep.branch}")
        if got != self.prep.muse_tip:
            raise RuntimeError(f"muse: {repo} ends at {got}, not {self.prep.muse_tip}")

    def muse_push(self) -> None:
        slug, url = self.env.hub.new_repo(self.env.name("push"))
        remote = f"r{self.env.counter}"
        _muse(self.env, "remote", "add", remote, url, cwd=self.prep.muse_full)
        self._muse_timed(
            "push", "push", "--json", remote, self.prep.branch, cwd=self.prep.muse_full
        )
        if self.env.hub.refs(slug).get(f"refs/heads/{self.prep.branch}") != self.prep.muse_tip:
            raise RuntimeError("muse push: the hub does not hold the tip")
        if "hub_repo" not in self.rest and hasattr(self.env.hub, "data_dir"):
            self.rest["hub_repo"] = _du(os.path.join(self.env.hub.data_dir, "objects"))

    def muse_clone(self) -> None:
        url = self._hub_repo("clone")
        dst = os.path.join(self.env.root, self.env.name("mclone"))
        self._muse_timed("clone", "clone", "--json", url, dst, cwd=self.env.root)
        self._check_muse_tip(dst)
        self.rest.setdefault("muse_clone", _du(os.path.join(dst, ".muse")))
        shutil.rmtree(dst, ignore_errors=True)

    def muse_fetch(self) -> None:
        url = self._hub_repo("fetch")
        dst = os.path.join(self.env.root, self.env.name("mfetch"))
        museside.init_empty(dst)
        _muse(self.env, "remote", "add", "origin", url, cwd=dst)
        self._muse_timed("fetch", "fetch", "--json", "origin", cwd=dst)
        got = museside.read_ref(dst, f"refs/remotes/origin/{self.prep.branch}")
        if got != self.prep.muse_tip:
            raise RuntimeError(f"muse fetch: origin/{self.prep.branch} is {got}")
        shutil.rmtree(dst, ignore_errors=True)

    def muse_pull(self) -> None:
        url = self._hub_repo("pull")
        dst = os.path.join(self.env.root, self.env.name("mpull"))
        shutil.copytree(self.prep.muse_part, dst, symlinks=True)
        _muse(self.env, "remote", "add", "origin", url, cwd=dst)
        self._muse_timed("pull", "pull", "--json", "origin", self.prep.branch, cwd=dst)
        self._check_muse_tip(dst)
        shutil.rmtree(dst, ignore_errors=True)

    # ------------------------------------------------------------------- git
    def _git_timed(self, verb: str, *args: str, cwd: str) -> None:
        t = proc.timed([proc.GIT, *args], cwd=cwd, env=self.env.git_env)
        self.git[verb].times.append(t.seconds)

    def _git_repo(self, what: str, seeded: bool) -> tuple[str, str]:
        name = self.env.name(what) + ".git"
        url = self.env.gitd.new_repo(name)
        bare = os.path.join(self.env.gitd.base_dir, name)
        _git(self.env, "-C", bare, "config", "receive.unpackLimit", "1")
        if seeded:
            _git(self.env, "-C", self.prep.git_src, "push", "-q", url, self.prep.branch)
        return bare, url

    def _check_git_tip(self, repo: str, ref: str) -> None:
        got = _git(self.env, "-C", repo, "rev-parse", ref)
        if got != self.prep.tip:
            raise RuntimeError(f"git: {repo} {ref} is {got}, not {self.prep.tip}")

    def git_push(self) -> None:
        bare, url = self._git_repo("gpush", seeded=False)
        self._git_timed("push", "push", "-q", url, self.prep.branch, cwd=self.prep.git_src)
        self._check_git_tip(bare, self.prep.branch)
        self.git["push"].wire_bytes.append(_packs(bare))
        self.rest.setdefault("git_bare", _du(os.path.join(bare, "objects")))

    def git_clone(self) -> None:
        _, url = self._git_repo("gclone", seeded=True)
        dst = os.path.join(self.env.root, self.env.name("gclone"))
        self._git_timed("clone", *KEEP_PACKS, "clone", "-q", url, dst, cwd=self.env.root)
        self._check_git_tip(dst, "HEAD")
        self.git["clone"].wire_bytes.append(_packs(os.path.join(dst, ".git")))
        self.rest.setdefault("git_clone", _du(os.path.join(dst, ".git")))
        shutil.rmtree(dst, ignore_errors=True)

    def git_fetch(self) -> None:
        _, url = self._git_repo("gfetch", seeded=True)
        dst = os.path.join(self.env.root, self.env.name("gfetch"))
        _git(self.env, "init", "-q", "-b", self.prep.branch, dst)
        _git(self.env, "-C", dst, "remote", "add", "origin", url)
        self._git_timed("fetch", *KEEP_PACKS, "fetch", "-q", "origin", cwd=dst)
        self._check_git_tip(dst, f"origin/{self.prep.branch}")
        self.git["fetch"].wire_bytes.append(_packs(os.path.join(dst, ".git")))
        shutil.rmtree(dst, ignore_errors=True)

    def git_pull(self) -> None:
        _, url = self._git_repo("gpull", seeded=True)
        dst = os.path.join(self.env.root, self.env.name("gpull"))
        shutil.copytree(self.prep.git_part, dst, symlinks=True)
        before = _packs(os.path.join(dst, ".git"))
        _git(self.env, "-C", dst, "remote", "set-url", "origin", url)
        self._git_timed(
            "pull", *KEEP_PACKS, "pull", "-q", "--ff-only", "origin", self.prep.branch, cwd=dst
        )
        self._check_git_tip(dst, "HEAD")
        self.git["pull"].wire_bytes.append(_packs(os.path.join(dst, ".git")) - before)
        shutil.rmtree(dst, ignore_errors=True)

    # ------------------------------------------------------------------- all
    def run(self, runs: int) -> None:
        steps: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
            "push": (self.muse_push, self.git_push),
            "clone": (self.muse_clone, self.git_clone),
            "fetch": (self.muse_fetch, self.git_fetch),
            "pull": (self.muse_pull, self.git_pull),
        }
        for verb in VERBS:
            ours, theirs = steps[verb]
            for i in range(runs):
                # alternate who goes first, so neither always meets a warm or cold cache
                for step in (ours, theirs) if i % 2 == 0 else (theirs, ours):
                    step()

    def table(self, label: str) -> str:
        p = self.prep
        lines = [
            f"### History: {label}",
            "",
            f"{p.commits:,} commits on `{p.branch}` ({p.first_parent:,} on the first-parent "
            f"chain), {p.files:,} files at the tip; the pull brings the last "
            f"{int(PULL_SHARE * 100)} % of the first-parent chain.",
            "",
            "| verb | muse p50 s | git p50 s | ours/git | muse pack MB | git pack MB "
            "| muse/git bytes | muse requests |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for verb in VERBS:
            m, g = self.muse[verb], self.git[verb]
            mt, gt = report.p50(m.times), report.p50(g.times)
            mb = report.p50([float(b) for b in m.wire_bytes]) if m.wire_bytes else 0.0
            gb = report.p50([float(b) for b in g.wire_bytes]) if g.wire_bytes else 0.0
            req = int(report.p50([float(r) for r in m.requests])) if m.requests else 0
            lines.append(
                f"| {verb} | {mt:.3f} | {gt:.3f} | {mt / gt:.2f} | {mb / 1e6:.2f} | "
                f"{gb / 1e6:.2f} | {mb / gb if gb else 0:.2f} | {req} |"
            )
        r = self.rest
        lines += [
            "",
            "At rest: "
            + ", ".join(
                f"{k.replace('_', ' ')} {v / 1e6:.2f} MB"
                for k, v in (
                    ("muse_clone", r.get("muse_clone", 0)),
                    ("git_clone", r.get("git_clone", 0)),
                    ("hub_repo", r.get("hub_repo", 0)),
                    ("git_bare", r.get("git_bare", 0)),
                )
                if v
            )
            + " (a clone's `.muse` / `.git`; the hub's objects after the first push / the "
            "bare repository's objects).",
        ]
        return "\n".join(lines)


def run_history(env: HistoryEnv, path: str, runs: int) -> str:
    """Prepare, measure and return the markdown section for one history."""
    prep = prepare(env, path)
    r = Run(env, prep)
    r.run(runs)
    return r.table(os.path.basename(os.path.abspath(path)))
