"""The two drills of issue 15 against a running staging site, run as its client:

- bypass: the XL push forced onto the stream path is refused by the edge's 100 MB body cap
  with a clear client message, while the same push on the presign path passes;
- hub kill: one of the two hub processes is killed in the middle of an L push and of an L
  clone; the command succeeds through the other one (or fails with one clear line and succeeds
  when run again), and a fresh clone of what the hub holds passes ``muse fsck``.

    ip netns exec N-c python3 -m staging.drills --state /tmp/muse-staging-N/state.json

Prints a Markdown section (``--markdown-out`` appends it to a file) and exits 1 if a drill's
promise is broken.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import museside, workload  # noqa: E402
from benchlib.hub import Hub  # noqa: E402


class Client:
    """The bench's muse environment (private HOME, the staging CA, a stored token)."""

    def __init__(self, state: dict[str, object], root: str) -> None:
        self.state = state
        self.root = root
        home = os.path.join(root, "home")
        os.makedirs(home)
        self.env = museside.muse_env(home)
        self.env["MUSE_SSL_CA_INFO"] = str(state["ca"])
        self.hub = Hub(str(state["url"]), str(state["token"]), ca=str(state["ca"]))
        cp = self.run("auth", "login", self.hub.url, "--token-stdin", input=self.hub.token + "\n")
        if cp.returncode != 0:
            raise RuntimeError(f"muse auth login: {cp.stderr.strip()}")

    def run(self, *args: str, cwd: str | None = None, input: str | None = None) -> Any:
        return subprocess.run(museside.muse(*args), cwd=cwd, env=self.env, input=input,
                              capture_output=True, text=True)  # fmt: skip

    def start(self, *args: str, cwd: str | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(museside.muse(*args), cwd=cwd, env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

    def seeded(self, size: str, name: str) -> tuple[str, str, str]:
        """A local repository of tier ``size`` (every commit) with origin set to a new hub
        repository: (its directory, the tip, the hub's slug)."""
        tier = workload.TIERS[size]
        src = os.path.join(self.root, name)
        tip = museside.seed(src, tier, tier.commits)
        slug, url = self.hub.new_repo(name)
        self.run("remote", "add", "origin", url, cwd=src)
        return src, tip, slug

    def verify(self, url: str, tip: str, dest: str) -> str:
        """'ok' when a fresh clone of ``url`` has ``tip`` and passes fsck, else why not."""
        cp = self.run("clone", "--quiet", url, dest)
        if cp.returncode != 0:
            return f"clone failed: {error_line(cp.stderr)}"
        got = museside.read_ref(dest, "refs/heads/main")
        if got != tip:
            return f"main is {got[:12]}, expected {tip[:12]}"
        cp = self.run("fsck", cwd=dest)
        return "ok" if cp.returncode == 0 else f"fsck: {cp.stdout[-300:]}{cp.stderr[-300:]}"


def error_line(stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.startswith("muse: error:")]
    if "Traceback" in stderr:
        return "TRACEBACK: " + stderr.strip().splitlines()[-1]
    return lines[-1] if len(lines) == 1 else (stderr.strip()[-300:] or "(no message)")


# ------------------------------------------------------------------------------ bypass
def bypass(c: Client) -> tuple[bool, list[str]]:
    src, tip, slug = c.seeded("xl", "bypass-xl")
    t = time.monotonic()
    cp = c.run("push", "--path", "stream", "origin", "main", cwd=src)
    stream_s = time.monotonic() - t
    line = error_line(cp.stderr)
    refused = cp.returncode != 0 and "413" in line and "--path presign" in line
    untouched = not c.hub.refs(slug).get("refs/heads/main")
    t = time.monotonic()
    cp2 = c.run("push", "--json", "--path", "presign", "origin", "main", cwd=src)
    presign_s = time.monotonic() - t
    summary = museside.parse_json_summary(cp2.stdout)
    passed = cp2.returncode == 0 and c.hub.refs(slug).get("refs/heads/main") == tip
    out = [
        f"- XL push `--path stream`: exit {cp.returncode} after {stream_s:.1f} s, "
        f"hub's main {'untouched' if untouched else 'CHANGED'}; the client said:",
        f"  `{line}`",
        f"- XL push `--path presign` (same repository, right after): exit {cp2.returncode} "
        f"in {presign_s:.1f} s, {summary.get('requests', '?')} requests, "
        f"{summary.get('round_trips', '?')} round trips; hub's main is the pushed tip: "
        f"{'yes' if passed else 'NO'}",
    ]
    return refused and untouched and passed, out


# ---------------------------------------------------------------------------- hub kill
def _group_cpu(pgid: int) -> int:
    """CPU ticks used so far by every process of a process group (a hub and its workers)."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total


def _kill_busiest(pids: list[int], window: float = 0.4) -> int:
    """Kill (SIGKILL, the whole process group) the hub process using the most CPU now: the
    one serving the verb in flight, if any."""
    before = {p: _group_cpu(p) for p in pids}
    time.sleep(window)
    busiest = max(pids, key=lambda p: _group_cpu(p) - before[p])
    os.killpg(busiest, signal.SIGKILL)
    return busiest


_kill_times: list[float] = []


def _last_kill_at(t0: float) -> float:
    return _kill_times[-1] - t0 if _kill_times and _kill_times[-1] > t0 else float("nan")


def _kill_when_busy(pids: list[int], p: subprocess.Popen[str], ticks: int = 3) -> int | None:
    """Kill the first hub process seen working (``ticks`` of CPU in 50 ms): nginx buffers a
    push's body whole before the origin sees it, and a clone's answer leaves the origin
    faster than the WAN takes it, so a hub is busy only for part of a verb."""
    last = {q: _group_cpu(q) for q in pids}
    while p.poll() is None:
        time.sleep(0.05)
        now = {q: _group_cpu(q) for q in pids}
        busy = [q for q in pids if now[q] - last[q] >= ticks]
        if busy:
            os.killpg(busy[0], signal.SIGKILL)
            _kill_times.append(time.monotonic())
            return busy[0]
        last = now
    return None


def _restart_hubs(
    state: dict[str, object], state_path: Path, killed: int | None
) -> tuple[dict[str, object], list[int]]:
    """Ask the site's supervisor to restart the killed hub (SIGHUP): its new state, and the
    hub processes now."""
    if killed is None:
        return state, [int(x) for x in state["hub_pids"]]  # type: ignore[attr-defined]
    old = state["hub_pids"]
    os.kill(int(state["supervisor_pid"]), signal.SIGHUP)  # type: ignore[call-overload]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = json.loads(state_path.read_text())
        if new["hub_pids"] != old:
            return dict(new), [int(x) for x in new["hub_pids"]]
        time.sleep(0.3)
    raise RuntimeError("the supervisor did not restart the killed hub")


Attempt = tuple[subprocess.CompletedProcess[str], float, int | None]


def _attempt(
    c: Client, args: list[str], cwd: str | None, kill_after: float | None, pids: list[int],
    busy: bool = False, ticks: int = 3,
) -> Attempt:  # fmt: skip
    t = time.monotonic()
    p = c.start(*args, cwd=cwd)
    killed = None
    if busy:
        killed = _kill_when_busy(pids, p, ticks)
    elif kill_after is not None:
        time.sleep(max(0.0, kill_after - 0.4))
        if p.poll() is None:
            killed = _kill_busiest(pids)
    out, err = p.communicate()
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), time.monotonic() - t, killed


def _when(mode: str, base_s: float, killed: int | None, at: float) -> str:
    if killed is None:
        return "NO hub process killed (the verb ended first)"
    if mode == "mid":
        return f"hub process {killed} killed at {base_s / 2:.1f} s (half the baseline)"
    return f"hub process {killed} killed at {at:.1f} s, as soon as it was busy"


def _line(
    verb: str,
    base_s: float,
    mode: str,
    killed: int | None,
    at: float,
    cp: subprocess.CompletedProcess[str],
    sec: float,
    line: str,
    again: str,
) -> str:
    return (
        f"- L {verb} (baseline {base_s:.1f} s), {_when(mode, base_s, killed, at)}: exit "
        f"{cp.returncode} after {sec:.1f} s" + (f" with `{line}`" if line else "") + again
    )


def hub_kill(c: Client, state: dict[str, object], state_path: Path) -> tuple[bool, list[str]]:
    """Each verb twice: the kill at half of a baseline run's time (whichever hub is busiest
    then), and the kill of the first hub seen working on it."""
    ok = True
    lines = []
    pids = [int(x) for x in state["hub_pids"]]  # type: ignore[union-attr]
    base_src, _, _ = c.seeded("l", "kill-base")
    _, push_s, _ = _attempt(c, ["push", "origin", "main"], base_src, None, pids)
    for mode in ("mid", "busy"):
        src, tip, slug = c.seeded("l", f"kill-push-{mode}")
        t0 = time.monotonic()
        cp, sec, killed = _attempt(c, ["push", "origin", "main"], src, push_s / 2, pids,
                                   busy=mode == "busy")  # fmt: skip
        at = sec if mode == "mid" else _last_kill_at(t0)
        again = ""
        if cp.returncode != 0:
            cp2 = c.run("push", "origin", "main", cwd=src)
            again = f"; run again: exit {cp2.returncode}" + (
                f" ({error_line(cp2.stderr)})" if cp2.returncode else ""
            )
            ok &= cp2.returncode == 0
        line = error_line(cp.stderr) if cp.returncode else ""
        ok &= "TRACEBACK" not in line
        url = c.hub.repo_url(slug)
        verdict = c.verify(url, tip, os.path.join(c.root, f"v-push-{mode}"))
        ok &= verdict == "ok"
        lines.append(
            _line("push", push_s, mode, killed, at, cp, sec, line, again)
            + f"; a fresh clone of the hub's repository: tip and fsck {verdict}"
        )
        state, pids = _restart_hubs(state, state_path, killed)
        # the clone of what was just pushed (L), killed the same way
        _, clone_s, _ = _attempt(
            c, ["clone", "--quiet", url, os.path.join(c.root, f"cb-{mode}")], None, None, pids
        )
        dest = os.path.join(c.root, f"kill-clone-{mode}")
        t0 = time.monotonic()
        cp, sec, killed = _attempt(c, ["clone", "--quiet", url, dest], None, clone_s / 2, pids,
                                   busy=mode == "busy", ticks=1)  # fmt: skip
        at = sec if mode == "mid" else _last_kill_at(t0)
        again = ""
        if cp.returncode != 0:
            left = os.path.exists(dest)
            cp2 = c.run("clone", "--quiet", url, dest)
            again = (f"; left {'a directory' if left else 'nothing'} behind; run again: exit "
                     f"{cp2.returncode}")  # fmt: skip
            ok &= cp2.returncode == 0
        line = error_line(cp.stderr) if cp.returncode else ""
        ok &= "TRACEBACK" not in line
        fsck = c.run("fsck", cwd=dest) if os.path.isdir(dest) else None
        got = museside.read_ref(dest, "refs/heads/main") if fsck else ""
        verdict = "ok" if fsck and fsck.returncode == 0 and got == tip else "BROKEN"
        ok &= verdict == "ok"
        lines.append(
            _line("clone", clone_s, mode, killed, at, cp, sec, line, again)
            + f"; tip and fsck of the clone: {verdict}"
        )
        state, pids = _restart_hubs(state, state_path, killed)
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--state", required=True, type=Path)
    p.add_argument("--only", choices=["bypass", "kill"])
    p.add_argument("--markdown-out")
    a = p.parse_args(argv)
    state = json.loads(a.state.read_text())
    root = tempfile.mkdtemp(prefix="musedrill-")
    ok = True
    md = [f"### Drills ({state['label']})", ""]
    try:
        c = Client(state, root)
        museside.compile_sources()
        if a.only in (None, "bypass"):
            good, lines = bypass(c)
            ok &= good
            md += ["Bypass of the proxy's 100 MB cap " + ("(as promised):" if good else
                   "(BROKEN):"), "", *lines, ""]  # fmt: skip
        if a.only in (None, "kill"):
            good, lines = hub_kill(c, state, a.state)
            ok &= good
            md += ["One of the two hub processes killed mid-verb " + ("(as promised):" if good
                   else "(BROKEN):"), "", *lines, ""]  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    text = "\n".join(md)
    print(text)
    if a.markdown_out:
        with open(a.markdown_out, "a") as f:
            f.write("\n" + text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
