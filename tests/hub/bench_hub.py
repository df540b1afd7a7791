"""Server-side benchmark of the hub's protocol half (a script, not a test).

    python tests/hub/bench_hub.py [--skip-1g] [--storage local|s3]

Starts a real `musehub serve` (one worker, so one process to watch) and measures:

- ingest + verify of the XL pack (docs/benchmarks.md, "Definition": 5,000 commits, 25,000
  files, ~100 MB) by
  push/stream and by push/presign (PUT to storage, then push/commit);
- an XL clone served by fetch/bundle (presign: the stored pack handed out; stream: built on
  the fly), and a one-commit fetch against the XL repository;
- peak RSS of the hub process while it ingests a 1 GB pack (stream and presign).

Prints the figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent

from muse.core import objects as O  # noqa: E402
from muse.core.pack.write import write_pack_file  # noqa: E402

MB = 1e6


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ the hub
class Hub:
    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "MUSEHUB_DATA_DIR": str(root / "data"),
            "MUSEHUB_LOG_LEVEL": "info",
            "MUSEHUB_RATE_LIMIT_PER_MINUTE": "0",
            **env,
        }
        self.cmd = [sys.executable, "-m", "musehub"]
        self.proc: subprocess.Popen[bytes] | None = None

    def admin(self, *args: str) -> str:
        out = subprocess.run(
            [*self.cmd, *args], env=self.env, capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    def start(self) -> None:
        log = open(self.root / "hub.log", "ab")
        self.proc = subprocess.Popen(
            [*self.cmd, "serve", "--port", str(self.port), "--workers", "1"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("hub did not start; see " + str(self.root / "hub.log"))

    def pids(self) -> list[int]:
        """The serve process and its children (uvicorn may fork a worker)."""
        assert self.proc is not None
        pids = [self.proc.pid]
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            pids += [int(p) for p in kids.split()]
        except OSError:
            pass
        return pids

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakRSS:
    """Samples the RSS of the hub's processes every 20 ms; .peak is the largest sum seen."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.peak = 0.0
        self.base = sum(rss_mb(p) for p in hub.pids())
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(rss_mb(p) for p in self.hub.pids()))
            time.sleep(0.02)

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


# --------------------------------------------------------------------------------- HTTP
def call(
    method: str,
    url: str,
    body: bytes | object = None,
    headers: dict[str, str] | None = None,
    sink: bool = False,
) -> tuple[int, bytes, dict[str, str]]:
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    c.request(method, u.path + ("?" + u.query if u.query else ""), body=body, headers=headers or {})  # type: ignore[arg-type]
    r = c.getresponse()
    if sink:
        n = 0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
        data = str(n).encode()
    else:
        data = r.read()
    c.close()
    return r.status, data, {k.lower(): v for k, v in r.getheaders()}


class Body:
    """A file-like request body: the push header, then the pack file, read in 1 MiB pieces."""

    def __init__(self, head: bytes, path: Path) -> None:
        self.head = head
        self.f = open(path, "rb")
        self.len = len(head) + path.stat().st_size

    def read(self, n: int = -1) -> bytes:
        if self.head:
            out, self.head = self.head, b""
            return out
        return self.f.read(1 << 20)


def push_stream(
    hub: Hub, repo: str, tok: str, updates: list[dict[str, object]], pack: Path
) -> tuple[int, bytes]:
    head = json.dumps({"updates": updates}).encode()
    body = Body(len(head).to_bytes(4, "big") + head, pack)
    st, data, _ = call(
        "POST",
        f"{hub.url}/{repo}/push/stream",
        body,
        {
            "Content-Type": "application/x-muse-push",
            "Content-Length": str(body.len),
            "Authorization": f"Bearer {tok}",
        },
    )
    return st, data


def jpost(hub: Hub, repo: str, verb: str, tok: str, doc: object) -> dict[str, object]:
    st, data, _ = call(
        "POST",
        f"{hub.url}/{repo}/{verb}",
        json.dumps(doc).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {tok}"},
    )
    if st != 200:
        raise RuntimeError(f"{verb}: {st} {data[:300]!r}")
    return json.loads(data)  # type: ignore[no-any-return]


def push_presign(
    hub: Hub, repo: str, tok: str, updates: list[dict[str, object]], pack: Path
) -> tuple[float, float, dict[str, object]]:
    """(seconds PUT, seconds commit, answer)."""
    size = pack.stat().st_size
    doc = jpost(hub, repo, "push/presign", tok, {"size": size, "objects": 0})
    t0 = time.perf_counter()
    with open(pack, "rb") as f:
        st, data, _ = call(
            "PUT",
            str(doc["url"]),
            f,
            {**doc["headers"], "Content-Length": str(size)},  # type: ignore[dict-item]
        )
    assert st in (200, 201, 204), (st, data[:200])
    t1 = time.perf_counter()
    ans = jpost(hub, repo, "push/commit", tok, {"upload_id": doc["upload_id"], "updates": updates})
    return t1 - t0, time.perf_counter() - t1, ans


def fetch(
    hub: Hub, repo: str, tok: str, wants: list[bytes], haves: list[bytes], path: str
) -> tuple[int, int]:
    """(objects, bytes received) of one fetch/bundle, following presigned bundles."""
    st, data, headers = call(
        "POST",
        f"{hub.url}/{repo}/fetch/bundle",
        json.dumps(
            {"wants": [w.hex() for w in wants], "haves": [h.hex() for h in haves], "path": path}
        ).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {tok}"},
        sink=True,
    )
    assert st == 200, (st, data[:300])
    if headers.get("content-type", "").startswith("application/x-muse-pack"):
        return int(headers["muse-objects"]), int(data)
    st, data, _ = call(
        "POST",
        f"{hub.url}/{repo}/fetch/bundle",
        json.dumps(
            {"wants": [w.hex() for w in wants], "haves": [h.hex() for h in haves], "path": path}
        ).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {tok}"},
    )
    doc = json.loads(data)
    total = 0
    for b in doc["bundles"]:
        st, n, _ = call("GET", b["url"], sink=True)
        assert st == 200
        total += int(n)
    return int(doc["objects"]), total


# ------------------------------------------------------------------------------- packs
def xl_history() -> tuple[list[tuple[int, bytes]], list[bytes]]:
    """The XL history (docs/benchmarks.md, "Definition"): commit k adds
    part{k%50}/c{k:05d}-{i}.bin, 4,096 bytes each."""
    import random

    objs: list[tuple[int, bytes]] = []
    commits: list[bytes] = []
    parts: dict[str, dict[str, bytes]] = {}
    part_ids: dict[str, bytes] = {}
    parent: tuple[bytes, ...] = ()
    for k in range(5000):
        d = f"part{k % 50:02d}"
        entries = parts.setdefault(d, {})
        for i in range(5):
            body = b"\x00" + random.Random(f"XL:{k}:{i}").randbytes(4095)
            objs.append((O.BLOB, body))
            entries[f"c{k:05d}-{i}.bin"] = O.object_id(O.BLOB, body)
        tb = O.encode_tree([(n, O.MODE_FILE, i) for n, i in entries.items()])
        objs.append((O.TREE, tb))
        part_ids[d] = O.object_id(O.TREE, tb)
        rb = O.encode_tree([(n, O.MODE_TREE, i) for n, i in part_ids.items()])
        objs.append((O.TREE, rb))
        sig = O.Signature("Bench Author", "bench@example.invalid", 1704067200 + k)
        cb = O.Commit(O.object_id(O.TREE, rb), parent, sig, sig, f"commit {k}").encode()
        objs.append((O.COMMIT, cb))
        parent = (O.object_id(O.COMMIT, cb),)
        commits.append(parent[0])
    return objs, commits


def xl_pack(tmp: Path) -> tuple[Path, list[bytes], tuple[Path, Path]]:
    """The XL history as one pack, and as two packs (commits 0..2499, 2500..4999)."""
    t = time.perf_counter()
    objs, commits = xl_history()
    d = tmp / "xl"
    d.mkdir()
    pf = write_pack_file(str(d), objs)
    print(
        f"built XL history + pack in {time.perf_counter() - t:.1f}s: {pf.count} objects, "
        f"{os.path.getsize(pf.path) / MB:.1f} MB"
    )
    halves = []
    for name, part in (("h1", objs[: 2500 * 8]), ("h2", objs[2500 * 8 :])):
        (d / name).mkdir()
        halves.append(Path(write_pack_file(str(d / name), part).path))
    return Path(pf.path), commits, (halves[0], halves[1])


def big_pack(tmp: Path, total_mb: int) -> tuple[Path, bytes]:
    """One commit of 1 MiB random files, total_mb of them, in 32 directories."""
    d = tmp / "big"
    d.mkdir()
    files: dict[str, dict[str, bytes]] = {}

    def objects():  # type: ignore[no-untyped-def]
        for i in range(total_mb):
            body = os.urandom(1 << 20)
            oid = O.object_id(O.BLOB, body)
            files.setdefault(f"d{i % 32:02d}", {})[f"f{i:05d}.bin"] = oid
            yield O.BLOB, body
        root = []
        for name, entries in files.items():
            tb = O.encode_tree([(n, O.MODE_FILE, i) for n, i in entries.items()])
            yield O.TREE, tb
            root.append((name, O.MODE_TREE, O.object_id(O.TREE, tb)))
        rb = O.encode_tree(root)
        yield O.TREE, rb
        sig = O.Signature("Bench", "bench@example.invalid", 1704067200)
        cb = O.Commit(O.object_id(O.TREE, rb), (), sig, sig, "big").encode()
        big_pack.commit = O.object_id(O.COMMIT, cb)  # type: ignore[attr-defined]
        yield O.COMMIT, cb

    pf = write_pack_file(str(d), objects())
    return Path(pf.path), big_pack.commit  # type: ignore[attr-defined]


def upd(new: bytes, old: bytes | None = None) -> list[dict[str, object]]:
    return [{"ref": "refs/heads/main", "old": old.hex() if old else None, "new": new.hex()}]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-1g", action="store_true")
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--storage", default="local", choices=["local", "s3"])
    ap.add_argument("--s3-endpoint", default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    env = {}
    weed = None
    if args.storage == "s3" and not args.s3_endpoint:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from fixtures.services import SeaweedFS

        weed = SeaweedFS(str(tmp / "weed"))
        env = weed.settings_env("bench")
    elif args.storage == "s3":
        env = {
            "MUSEHUB_STORAGE": "s3",
            "MUSEHUB_S3_ENDPOINT": args.s3_endpoint,
            "MUSEHUB_S3_BUCKET": "bench",
            "MUSEHUB_S3_ACCESS_KEY": "any",
            "MUSEHUB_S3_SECRET_KEY": "any",
        }
    hub = Hub(tmp, env)
    try:
        pack, commits, halves = xl_pack(tmp)
        size = pack.stat().st_size
        hub.admin("user", "add", "bench")
        tok = hub.admin("token", "create", "bench")
        for r in ("xl-stream", "xl-presign", "xl-pull", "big-stream", "big-presign"):
            hub.admin("repo", "create", f"bench/{r}")
        hub.start()
        print(f"hub pid {hub.pids()} RSS at start {sum(rss_mb(p) for p in hub.pids()):.0f} MB")

        with PeakRSS(hub) as m:
            t = time.perf_counter()
            st, data = push_stream(hub, "bench/xl-stream", tok, upd(commits[-1]), pack)
            dt = time.perf_counter() - t
        assert st == 200, data[:300]
        print(
            f"XL push/stream: {dt:.2f}s  {size / MB / dt:.0f} MB/s of pack  "
            f"({25000 * 4096 / MB / dt:.0f} MB/s of content)  peak RSS {m.peak:.0f} MB"
        )

        t = time.perf_counter()
        put_s, commit_s, _ = push_presign(hub, "bench/xl-presign", tok, upd(commits[-1]), pack)
        dt = time.perf_counter() - t
        print(
            f"XL push/presign: {dt:.2f}s total; PUT {put_s:.2f}s, commit (verify+store) "
            f"{commit_s:.2f}s = {size / MB / commit_s:.0f} MB/s"
        )

        for label, path in (
            ("presign", "presign"),
            ("presign again", "presign"),
            ("stream", "stream"),
        ):
            t = time.perf_counter()
            n, nbytes = fetch(hub, "bench/xl-stream", tok, [commits[-1]], [], path)
            dt = time.perf_counter() - t
            print(
                f"XL clone fetch/bundle {label}: {dt:.2f}s  {n} objects  {nbytes / MB:.1f} MB  "
                f"{nbytes / MB / dt:.0f} MB/s"
            )
        t = time.perf_counter()
        n, nbytes = fetch(hub, "bench/xl-stream", tok, [commits[-1]], [commits[-2]], "auto")
        print(f"XL one-commit fetch: {time.perf_counter() - t:.3f}s  {n} objects  {nbytes} bytes")
        t = time.perf_counter()
        n, nbytes = fetch(hub, "bench/xl-stream", tok, [commits[-1]], [commits[2499]], "auto")
        print(
            f"XL half-history fetch, one stored pack (bundle built): "
            f"{time.perf_counter() - t:.2f}s  {n} objects  {nbytes / MB:.1f} MB"
        )
        st, data = push_stream(hub, "bench/xl-pull", tok, upd(commits[2499]), halves[0])
        assert st == 200, data[:300]
        st, data = push_stream(
            hub, "bench/xl-pull", tok, upd(commits[-1], commits[2499]), halves[1]
        )
        assert st == 200, data[:300]
        for path in ("auto", "stream"):
            t = time.perf_counter()
            n, nbytes = fetch(hub, "bench/xl-pull", tok, [commits[-1]], [commits[2499]], path)
            print(
                f"XL pull of the last push ({path}, stored pack handed out): "
                f"{time.perf_counter() - t:.2f}s  {n} objects  {nbytes / MB:.1f} MB"
            )

        print(f"hub RSS after the XL runs: {sum(rss_mb(p) for p in hub.pids()):.0f} MB")
        if not args.skip_1g:
            hub.stop()  # a fresh process: what ingesting 1 GB itself costs
            hub.start()
            print(f"hub restarted, RSS {sum(rss_mb(p) for p in hub.pids()):.0f} MB")
            t = time.perf_counter()
            big, bc = big_pack(tmp, args.big_mb)
            bsize = big.stat().st_size
            print(f"built a {bsize / MB:.0f} MB pack in {time.perf_counter() - t:.1f}s")
            with PeakRSS(hub) as m:
                t = time.perf_counter()
                st, data = push_stream(hub, "bench/big-stream", tok, upd(bc), big)
                dt = time.perf_counter() - t
            assert st == 200, data[:300]
            print(
                f"1 GB push/stream: {dt:.2f}s  {bsize / MB / dt:.0f} MB/s  "
                f"hub RSS before {m.base:.0f} MB, peak {m.peak:.0f} MB"
            )
            with PeakRSS(hub) as m:
                put_s, commit_s, _ = push_presign(hub, "bench/big-presign", tok, upd(bc), big)
            print(
                f"1 GB push/presign: PUT {put_s:.2f}s, commit {commit_s:.2f}s "
                f"({bsize / MB / commit_s:.0f} MB/s)  hub peak RSS {m.peak:.0f} MB"
            )
    finally:
        hub.stop()
        if weed is not None:
            weed.stop()
        log = tmp / "hub.log"
        for line in (log.read_text(errors="replace") if log.exists() else "").splitlines():
            if "push to repo" in line:
                print("  hub:", line.split("musehub.protocol: ")[-1])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
