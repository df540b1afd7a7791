"""Big-file benchmark (issue 10): one large file through Muse, beside git and the machine's floor.

Steps, each a fresh process timed as a whole (wall clock), with the bytes it moved (``--json``)
and the peak RSS of the client and of the hub's processes (VmHWM, reset before each step):

    commit      the file, from scratch
    push        to an empty hub repository
    clone       into a new directory (wire + restore)
    edit-1B     one byte changed in the middle: commit, push, then pull in the clone
    insert-1M   1 MiB inserted in the middle: commit, push, pull
    append-10M  10 MiB appended: commit, push, pull

git runs the same steps (``git add``+``commit``, push to and clone from ``git daemon`` on
loopback). The floor is this machine reading, hashing (SHA-256) and writing the same bytes
once in one process. git-lfs is compared when ``git lfs`` and a ``giftless`` server are on
the PATH (``--lfs``); otherwise the table says it was not run.

    python3 tests/bench_bigfile.py [--size-mib 1024] [--path stream|presign]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import proc  # noqa: E402
from benchlib.gitside import git_env  # noqa: E402
from benchlib.hub import LocalHub, SeaweedFS  # noqa: E402
from benchlib.museside import muse_env  # noqa: E402

MiB = 1 << 20


class Step:
    def __init__(self, name: str, seconds: float, wire: int | None, client: int, hub: int) -> None:
        self.name, self.seconds, self.wire, self.client, self.hub = name, seconds, wire, client, hub


def _run(cmd: list[str], cwd: str, env: dict[str, str]) -> tuple[float, int, str]:
    """(seconds, peak RSS of this one process, stdout); raises on failure."""
    code, dt, rss, out, err = proc.measured(cmd, cwd, env)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err[-500:]}")
    return dt, rss, out


class Side:
    """One tool's run of the steps."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps: list[Step] = []


def _write_random(path: str, size: int, seed: bytes) -> None:
    """Incompressible, reproducible content (SHA-256 in counter mode, fast to make)."""
    block = bytearray()
    with open(path, "wb") as f:
        i = 0
        while i * 32 < size:
            block += hashlib.sha256(seed + i.to_bytes(8, "big")).digest()
            i += 1
            if len(block) >= MiB:
                f.write(block)
                block.clear()
        f.write(block)
        f.truncate(size)


def _edits(path: str, size: int) -> list[tuple[str, Any]]:
    def one_byte() -> None:
        with open(path, "r+b") as f:
            f.seek(size // 2)
            b = f.read(1)
            f.seek(size // 2)
            f.write(bytes([b[0] ^ 0xFF]))

    def insert() -> None:
        tmp = path + ".new"
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            left = size // 3
            while left:  # in pieces: this process's size would count in its children's peaks
                piece = src.read(min(left, 8 * MiB))
                dst.write(piece)
                left -= len(piece)
            dst.write(os.urandom(MiB))
            shutil.copyfileobj(src, dst, 8 * MiB)
        os.replace(tmp, path)

    def append() -> None:
        with open(path, "ab") as f:
            f.write(os.urandom(10 * MiB))

    return [("edit-1B", one_byte), ("insert-1M", insert), ("append-10M", append)]


def run_muse(work: str, size: int, path: str, storage: str = "local") -> Side:
    side = Side("muse")
    s3 = SeaweedFS(os.path.join(work, "seaweedfs")) if storage == "s3" else None
    try:
        hub = LocalHub(os.path.join(work, "hub"), storage, s3.endpoint if s3 else None)
    except Exception:
        if s3 is not None:
            s3.stop()
        raise
    try:
        slug, _ = hub.new_repo("bigfile")
        url = hub.repo_url(slug)
        env = muse_env(work)  # cached bytecode, as a user's muse runs
        env.update(MUSE_TOKEN=hub.token, MUSE_TOKEN_HUB=hub.url)
        src, dst = os.path.join(work, "m-src"), os.path.join(work, "m-dst")
        os.makedirs(src)
        proc.run([*proc.MUSE, "init", src], env=env)
        f = os.path.join(src, "take.wav")
        _write_random(f, size, b"bigfile")
        proc.run([*proc.MUSE, "remote", "add", "origin", url], env=env, cwd=src)

        def step(name: str, args: list[str], cwd: str) -> dict[str, Any]:
            pids = proc.descendants(hub.proc.pid)
            proc.reset_peak_rss(pids)
            subprocess.run(["sync"], check=False)
            dt, rss, out = _run([*proc.MUSE, *args], cwd, env)
            doc: dict[str, Any] = {}
            if "--json" in args:
                doc = json.loads(out.strip().splitlines()[-1])
            hub_rss = max(proc.peak_rss(p) for p in proc.descendants(hub.proc.pid))
            side.steps.append(Step(name, dt, doc.get("bytes"), rss, hub_rss))
            return doc

        step("commit", ["commit", "-m", "take 1"], src)
        step("push", ["push", "--json", "--path", path, "-u", "origin", "main"], src)
        step("clone", ["clone", "--json", "--path", path, url, dst], work)
        for name, edit in _edits(f, size):
            edit()
            step(f"{name} commit", ["commit", "-m", name], src)
            step(f"{name} push", ["push", "--json", "--path", path], src)
            step(f"{name} pull", ["pull", "--json", "--path", path], dst)
        with open(os.path.join(dst, "take.wav"), "rb") as a, open(f, "rb") as b:
            if hashlib.sha256(a.read()).digest() != hashlib.sha256(b.read()).digest():
                raise RuntimeError("the clone's file differs from the source's")
    finally:
        hub.stop()
        if s3 is not None:
            s3.stop()
    return side


GIFTLESS_CONFIG = """AUTH_PROVIDERS:
  - factory: giftless.auth.jwt:factory
    options:
      private_key: muse-bench-giftless-action-signing-key
  - giftless.auth.allow_anon:read_write
PRE_AUTHORIZED_ACTION_PROVIDER:
  factory: giftless.auth.jwt:factory
  options:
    private_key: muse-bench-giftless-action-signing-key
TRANSFER_ADAPTERS:
  basic:
    factory: giftless.transfer.basic_streaming:factory
    options:
      storage_class: giftless.storage.local_storage:LocalStorage
      storage_options:
        path: {path}
"""


class Giftless:
    """A giftless LFS server (local storage, anonymous read-write) on a loopback port."""

    def __init__(self, python: str, work: str) -> None:
        os.makedirs(work, exist_ok=True)
        config = os.path.join(work, "giftless.yaml")
        with open(config, "w") as f:
            f.write(GIFTLESS_CONFIG.format(path=os.path.join(work, "storage")))
        self.port = proc.free_port()
        self.url = f"http://127.0.0.1:{self.port}/bench/big"
        self._log = open(os.path.join(work, "giftless.log"), "wb")
        self.proc = subprocess.Popen(
            [python, "-m", "flask", "--app", "giftless.wsgi_entrypoint", "run"]
            + ["--host", "127.0.0.1", "--port", str(self.port), "--with-threads"],
            env=dict(os.environ, GIFTLESS_CONFIG_FILE=config),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        proc.wait_port(self.port, 30, self.proc)  # type: ignore[arg-type]

    def stop(self) -> None:
        proc.stop(self.proc)  # type: ignore[arg-type]
        self._log.close()


def run_git(work: str, size: int, lfs_python: str | None = None) -> Side:
    """git over git daemon; with ``lfs_python`` (a Python that has giftless), git-lfs with
    *.wav tracked and a giftless server as its LFS endpoint."""
    name = "git-lfs" if lfs_python else "git"
    side = Side(name)
    work = os.path.join(work, name)
    env = git_env(os.path.join(work, "home"))
    os.makedirs(env["HOME"], exist_ok=True)
    base = os.path.join(work, "srv")
    bare = os.path.join(base, "big.git")
    os.makedirs(base)
    proc.run(["git", "init", "-q", "--bare", "-b", "main", bare], env=env)
    proc.run(["git", "-C", bare, "config", "daemon.receivepack", "true"], env=env)
    lfs = Giftless(lfs_python, os.path.join(work, "lfs")) if lfs_python else None
    port = proc.free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            base,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait_port(port, 10, daemon)  # type: ignore[arg-type]
        url = f"git://127.0.0.1:{port}/big.git"
        src, dst = os.path.join(work, "src"), os.path.join(work, "dst")
        proc.run(["git", "init", "-q", "-b", "main", src], env=env)
        first = [["git", "add", "take.wav"], ["git", "commit", "-qm", "take 1"]]
        if lfs is not None:
            proc.run(["git", "lfs", "install"], env=env, cwd=src)  # filters in $HOME
            proc.run(["git", "lfs", "track", "*.wav"], env=env, cwd=src)
            with open(os.path.join(src, ".lfsconfig"), "w") as f:
                f.write(f"[lfs]\n\turl = {lfs.url}\n")
            first.insert(0, ["git", "add", ".gitattributes", ".lfsconfig"])
        f = os.path.join(src, "take.wav")
        _write_random(f, size, b"bigfile")

        def step(name: str, cmds: list[list[str]], cwd: str) -> None:
            subprocess.run(["sync"], check=False)
            total, peak = 0.0, 0
            for c in cmds:
                dt, rss, _ = _run(c, cwd, env)
                total += dt
                peak = max(peak, rss)
            hub = proc.peak_rss(lfs.proc.pid) if lfs is not None else 0
            side.steps.append(Step(name, total, None, peak, hub))

        step("commit", first, src)
        step("push", [["git", "push", "-q", url, "main"]], src)
        step("clone", [["git", "clone", "-q", url, dst]], work)
        if os.path.getsize(os.path.join(dst, "take.wav")) != size:
            raise RuntimeError(f"{side.name}: the clone holds no file content (a pointer?)")
        for name, edit in _edits(f, size):
            edit()
            step(f"{name} commit", [["git", "commit", "-qam", name]], src)
            step(f"{name} push", [["git", "push", "-q", url, "main"]], src)
            step(f"{name} pull", [["git", "pull", "-q", url, "main"]], dst)
        with open(os.path.join(dst, "take.wav"), "rb") as a, open(f, "rb") as b:
            if hashlib.sha256(a.read()).digest() != hashlib.sha256(b.read()).digest():
                raise RuntimeError(f"{name}: the clone's file differs from the source's")
    finally:
        daemon.terminate()
        daemon.wait()
        if lfs is not None:
            lfs.stop()
    return side


def floor(work: str, size: int) -> float:
    """Seconds for this machine to read, SHA-256 and write ``size`` bytes once."""
    src = os.path.join(work, "floor-in")
    _write_random(src, size, b"floor")
    subprocess.run(["sync"], check=False)
    t = time.perf_counter()
    h = hashlib.sha256()
    with open(src, "rb", buffering=0) as a, open(src + ".out", "wb", buffering=0) as b:
        while True:
            chunk = a.read(8 * MiB)
            if not chunk:
                break
            h.update(chunk)
            b.write(chunk)
        os.fsync(b.fileno())
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--path", choices=["stream", "presign"], default="presign")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--storage", choices=["local", "s3"], default="local", help="the hub's")
    ap.add_argument("--no-git", action="store_true", help="muse only (no git, no git-lfs)")
    ap.add_argument(
        "--lfs-python",
        help="a Python with giftless installed: compare with git-lfs (Debian package git-lfs) "
        "against a giftless LFS server (pip install giftless flask flask-classful "
        "flask-marshmallow webargs figcan python-dateutil python-dotenv pyyaml 'pyjwt<2.10' "
        "cachetools requests typing_extensions)",
    )
    args = ap.parse_args(argv)
    size = args.size_mib * MiB
    work = tempfile.mkdtemp(prefix="muse-bigfile-")
    try:
        fl = floor(work, size)
        muse = run_muse(work, size, args.path, args.storage)
        git = None if args.no_git else run_git(work, size)
        lfs = run_git(work, size, args.lfs_python) if args.lfs_python and git else None
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    note = "" if lfs else "; git-lfs not run (give --lfs-python)"
    print(
        f"# one {args.size_mib} MiB file, muse --path {args.path}, hub storage {args.storage};"
        f" floor (read+SHA-256+write) {fl:.2f} s{note}"
    )
    head = "| step | muse s |" + (" git s | muse/git |" if git else "")
    head += " git-lfs s | muse/git-lfs |" if lfs else ""
    head += " muse wire MB | muse client MiB | hub MiB |" + (" git client MiB |" if git else "")
    head += " git-lfs client MiB | giftless MiB |" if lfs else ""
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for i, m in enumerate(muse.steps):
        wire = f"{m.wire / 1e6:.1f}" if m.wire is not None else "–"
        row = f"| {m.name} | {m.seconds:.2f} |"
        g = git.steps[i] if git else None
        if g:
            row += f" {g.seconds:.2f} | {m.seconds / g.seconds:.2f} |"
        if lfs:
            row += f" {lfs.steps[i].seconds:.2f} | {m.seconds / lfs.steps[i].seconds:.2f} |"
        row += f" {wire} | {m.client >> 20} | {m.hub >> 20} |"
        if g:
            row += f" {g.client >> 20} |"
        if lfs:
            row += f" {lfs.steps[i].client >> 20} | {lfs.steps[i].hub >> 20} |"
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
