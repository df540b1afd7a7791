"""The staging site of issue 15, on one machine: two network namespaces joined by a veth pair
(addresses that exist only there), ``tc tbf`` bandwidth on both ends, the delaying relay for
the round trip, and in the site namespace PostgreSQL, SeaweedFS, two ``musehub serve``
processes on them behind nginx (TLS, a CDN's limits) with ``git http-backend`` beside.

    python3 -m staging.site up [--profile wan50|wan20] [--name N]   # prints the URLs, CA, token
    python3 -m staging.site bench [--profile ...] [-- bench_wire options]
    python3 -m staging.site down [--name N]                          # nothing left behind

``up`` starts a supervisor inside the site namespace (``_site``) that owns every server and
writes ``state.json`` when all answer; ``down`` stops it and removes the namespaces, the
hosts files under /etc/netns and the state directory. Clients run inside the client
namespace (``ip netns exec N-c ...``), where /etc/hosts names the site (ip-netns bind-mounts
/etc/netns/N-c/hosts over it), so certificates are checked against real host names.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
HUB_HOST = "hub.staging.test"
S3_HOST = "s3.staging.test"
CLIENT_ADDR, SITE_ADDR = "10.77.0.1", "10.77.0.2"
EDGE_LISTEN = "127.0.0.1:8443"  # nginx inside the site; the relay on SITE_ADDR:443 feeds it
PROXY_PORT = 3128  # a forward proxy (tinyproxy) on the client's side, for HTTPS_PROXY


@dataclass(frozen=True)
class Profile:
    name: str
    rtt_ms: float
    rate: str  # tc's notation
    burst: str

    @property
    def label(self) -> str:
        rate = self.rate.replace("mbit", " Mbit/s").replace("gbit", " Gbit/s")
        return f"{self.name}: {self.rtt_ms:g} ms RTT, {rate}"


PROFILES = {
    "wan50": Profile("wan50", 50, "100mbit", "256kb"),
    "wan20": Profile("wan20", 20, "1gbit", "1mb"),
}


def state_dir(name: str) -> Path:
    return Path(os.environ.get("MUSE_STAGING_DIR", "/tmp")) / f"muse-staging-{name}"


def namespaces(name: str) -> tuple[str, str]:
    """(client, site) namespace names; the veth ends inside them carry the same names."""
    return f"{name}-c", f"{name}-s"


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(cmd, capture_output=True, text=True)
    if check and cp.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {cp.stderr.strip() or cp.returncode}")
    return cp


def existing_namespaces() -> set[str]:
    out = _run("ip", "netns", "list", check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


# ---------------------------------------------------------------------------- the network
def make_network(name: str, profile: Profile) -> None:
    """Two namespaces, one veth pair between them, tbf on each end (each direction)."""
    cns, sns = namespaces(name)
    for ns in (cns, sns):
        _run("ip", "netns", "add", ns)
        _run("ip", "-n", ns, "link", "set", "lo", "up")
    _run("ip", "link", "add", cns, "type", "veth", "peer", "name", sns)
    for ns, addr in ((cns, CLIENT_ADDR), (sns, SITE_ADDR)):
        _run("ip", "link", "set", ns, "netns", ns)
        _run("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", ns)
        _run("ip", "-n", ns, "link", "set", ns, "up")
        _run("tc", "-n", ns, "qdisc", "add", "dev", ns, "root", "tbf", "rate", profile.rate,
             "burst", profile.burst, "latency", "20ms")  # fmt: skip
    hosts = Path("/etc/netns") / cns
    hosts.mkdir(parents=True, exist_ok=True)
    (hosts / "hosts").write_text(f"127.0.0.1 localhost\n{SITE_ADDR} {HUB_HOST} {S3_HOST}\n")


def remove_network(name: str) -> list[str]:
    """Kill what still runs in our namespaces, delete them and their /etc/netns entries;
    returns what had to be killed (empty after a clean stop)."""
    killed = []
    for ns in namespaces(name):
        if ns in existing_namespaces():
            for pid in _run("ip", "netns", "pids", ns, check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(f"{ns}:{pid}")
                except ProcessLookupError:
                    pass
            for _ in range(50):
                if not _run("ip", "netns", "pids", ns, check=False).stdout.split():
                    break
                time.sleep(0.1)
            _run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
    return killed


# ------------------------------------------------------------- the site (its supervisor)
def serve_site(name: str, profile: Profile) -> None:
    """Inside the site namespace: start every server, write state.json, wait for SIGTERM
    (SIGHUP restarts a hub process that was killed)."""
    sys.path.insert(0, str(TESTS))
    from fixtures import Hub, PostgresCluster, SeaweedFS, free_port, start_hub

    from staging.edge import Edge, Site
    from staging.forward import ForwardProxy
    from staging.pki import CA

    base = state_dir(name)
    stopping: list[object] = []
    stop = []

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        pg = PostgresCluster()
        stop.append(pg.stop)
        (base / "pg-dir").write_text(pg.dir)  # down removes it if we die without stopping
        weed = SeaweedFS(str(base / "seaweedfs"))
        stop.append(weed.stop)
        ca = CA(base / "pki")
        hub_crt, hub_key = ca.issue("hub", [HUB_HOST])
        s3_crt, s3_key = ca.issue("s3", [S3_HOST])
        env = {
            "MUSEHUB_PUBLIC_URL": f"https://{HUB_HOST}",
            "MUSEHUB_S3_PUBLIC_ENDPOINT": f"https://{S3_HOST}",
            "MUSEHUB_TRUSTED_PROXIES": "127.0.0.1",
            "MUSEHUB_LOG_LEVEL": "warning",
        }
        hubs = [
            start_hub(
                base / "hubs", "s3", pg.new_database("musehub"), s3=weed, bucket="staging", env=env
            )  # fmt: skip
        ]
        stop.append(hubs[0].stop)
        # a second process on the same data directory, database and bucket (start_hub's
        # share= would give it a loopback public URL; ours is the edge's)
        port = free_port()
        second = Hub(hubs[0].data_dir, {**hubs[0].env, "MUSEHUB_PORT": str(port)}, port,
                     hubs[0].admin_token, 1, 60.0)  # fmt: skip
        second.log_path = base / "hubs" / f"musehub-{port}.log"
        hubs.append(second.start())
        stop.append(hubs[1].stop)
        git_root = base / "git"
        git_root.mkdir(exist_ok=True)
        edge = Edge(
            base / "edge",
            EDGE_LISTEN,
            Site(HUB_HOST, hub_crt, hub_key, [f"127.0.0.1:{h.port}" for h in hubs]),
            Site(S3_HOST, s3_crt, s3_key, [weed.endpoint.removeprefix("http://")]),
            git_root=git_root,
        )
        stop.append(edge.stop)
        relay = subprocess.Popen(
            [sys.executable, "-m", "staging.relay", "--listen", f"{SITE_ADDR}:443",
             "--to", EDGE_LISTEN, "--rtt-ms", str(profile.rtt_ms)],
            cwd=TESTS, start_new_session=True, stderr=open(base / "relay.log", "ab"),
        )  # fmt: skip
        stop.append(lambda: (relay.terminate(), relay.wait(10)))
        # a corporate proxy on the client's LAN: CONNECT to the site's port 443 only
        fwd = ForwardProxy(base / "forward", CLIENT_ADDR, PROXY_PORT, connect_ports=[443],
                           netns=namespaces(name)[0])  # fmt: skip
        stop.append(fwd.stop)

        def restart_dead(*_: object) -> None:
            for h in hubs:
                if not h.running:
                    h.start()
            _write_state(base, name, profile, ca.cert_path, hubs, edge, git_root, relay.pid, fwd)

        signal.signal(signal.SIGHUP, restart_dead)
        _write_state(base, name, profile, ca.cert_path, hubs, edge, git_root, relay.pid, fwd)
        while not stopping:
            time.sleep(1)
            if relay.poll() is not None:
                raise RuntimeError(f"the relay exited with {relay.returncode}")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for fn in reversed(stop):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - stop the rest regardless
                print(f"staging: stopping: {e}", file=sys.stderr)


def _write_state(
    base: Path, name: str, profile: Profile, ca: Path, hubs: list[Any], edge: Any,
    git_root: Path, relay_pid: int, fwd: Any,
) -> None:  # fmt: skip
    state = {
        "name": name,
        "profile": profile.name,
        "label": profile.label,
        "client_ns": namespaces(name)[0],
        "url": f"https://{HUB_HOST}",
        "git_url": f"https://{HUB_HOST}/git",
        "s3_url": f"https://{S3_HOST}",
        "ca": str(ca),
        "token": hubs[0].admin_token,
        "owner": "admin",
        "hub_pids": [h.proc.pid if h.proc else None for h in hubs],
        "edge_log": str(edge.access_log),
        "https_proxy": fwd.url,
        "proxy_log": str(fwd.log),
        "git_root": str(git_root),
        "relay_pid": relay_pid,
        "supervisor_pid": os.getpid(),
    }
    tmp = base / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.rename(base / "state.json")


# ------------------------------------------------------------------------- the commands
def read_state(name: str) -> dict[str, object] | None:
    try:
        state: dict[str, object] = json.loads((state_dir(name) / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state


def _alive(pid: object) -> bool:
    try:
        os.kill(int(pid), 0)  # type: ignore[call-overload]
        return True
    except (OSError, TypeError, ValueError):
        return False


def up(name: str, profile: Profile, timeout: float = 180) -> dict[str, object]:
    """Bring the site up (or report the one already running under this name)."""
    state = read_state(name)
    if state and _alive(state.get("supervisor_pid")) and state.get("profile") == profile.name:
        return state
    down(name)
    base = state_dir(name)
    base.mkdir(parents=True)
    make_network(name, profile)
    log = open(base / "site.log", "ab")
    sup = subprocess.Popen(
        ["ip", "netns", "exec", namespaces(name)[1], sys.executable, "-m", "staging.site",
         "_site", "--name", name, "--profile", profile.name],
        cwd=TESTS, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    (base / "supervisor.pid").write_text(str(sup.pid))
    deadline = time.monotonic() + timeout
    while (state := read_state(name)) is None:
        if sup.poll() is not None or time.monotonic() > deadline:
            tail = (base / "site.log").read_text(errors="replace")[-3000:]
            down(name)
            raise RuntimeError(f"the staging site did not come up:\n{tail}")
        time.sleep(0.2)
    return state


def down(name: str) -> list[str]:
    """Stop the supervisor (it stops its servers), then remove everything made for ``name``;
    returns the processes that had to be killed."""
    base = state_dir(name)
    pid_file = base / "supervisor.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while _alive(pid) and time.monotonic() < deadline:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.2)
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    killed = remove_network(name)
    pg = base / "pg-dir"
    if pg.exists():
        shutil.rmtree(pg.read_text().strip(), ignore_errors=True)
    shutil.rmtree(base, ignore_errors=True)
    return killed


def leftovers(name: str) -> list[str]:
    """What of ``name`` still exists (the CI test asserts this is empty after ``down``)."""
    out = [f"namespace {ns}" for ns in namespaces(name) if ns in existing_namespaces()]
    out += [f"path {p}" for p in (state_dir(name), *(Path("/etc/netns") / n for n in
            namespaces(name))) if p.exists()]  # fmt: skip
    ps = _run("ps", "-eo", "pid=,args=", check=False).stdout
    out += [f"process {line.strip()}" for line in ps.splitlines()
            if str(state_dir(name)) in line]  # fmt: skip
    return out


def namespace_processes(name: str) -> set[tuple[int, str]]:
    """(pid, start time) of every process in our namespaces: after ``down`` none of them may
    still run (a process keeps a deleted namespace alive, out of ``ip netns``'s sight)."""
    out = set()
    for ns in namespaces(name):
        for pid in _run("ip", "netns", "pids", ns, check=False).stdout.split():
            start = _start_time(int(pid))
            if start:
                out.add((int(pid), start))
    return out


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def still_running(procs: set[tuple[int, str]]) -> list[int]:
    return [pid for pid, start in procs if _start_time(pid) == start]


def in_client(name: str) -> list[str]:
    """The command prefix that runs a program as a client of the site."""
    return ["ip", "netns", "exec", namespaces(name)[0]]


def bench_command(state: dict[str, object], extra: list[str]) -> list[str]:
    """bench_wire.py against the site, git alternating over the same network."""
    return [
        *in_client(str(state["name"])),
        sys.executable, str(TESTS / "bench_wire.py"),
        "--url", str(state["url"]), "--token", str(state["token"]), "--ca", str(state["ca"]),
        "--compare", "git", "--git-http", str(state["git_url"]),
        "--git-root", str(state["git_root"]), "--edge-log", str(state["edge_log"]),
        "--network", str(state["label"]), *extra,
    ]  # fmt: skip


def preflight() -> str | None:
    """Why staging cannot run here (None when it can)."""
    if os.geteuid() != 0:
        return "staging needs root (network namespaces, tc)"
    if _run("ip", "netns", "list", check=False).returncode != 0:
        return "ip netns is not available"
    sys.path.insert(0, str(TESTS))
    from staging.edge import fcgiwrap_binary, nginx_binary

    for what, found in (("nginx", nginx_binary()), ("fcgiwrap", fcgiwrap_binary())):
        if found is None:
            return f"{what} is not installed (scripts/install.sh --with-postgres)"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="staging", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["up", "bench", "down", "env", "_site"])
    p.add_argument("--profile", choices=sorted(PROFILES), default="wan50")
    p.add_argument("--name", default="musestg", help="prefix of what is made (8 chars at most)")
    argv = sys.argv[1:] if argv is None else argv
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []  # bench: bench_wire options
    a = p.parse_args(argv[: len(argv) - len(rest) - (1 if "--" in argv else 0)])
    if len(a.name) > 8:
        p.error("--name: 8 characters at most (interface names are limited to 15)")
    profile = PROFILES[a.profile]
    if a.command == "_site":
        serve_site(a.name, profile)
        return 0
    why = preflight()
    if why and a.command != "down":
        print(f"staging: {why}", file=sys.stderr)
        return 2
    if a.command == "down":
        killed = down(a.name)
        left = leftovers(a.name)
        print(f"staging {a.name}: removed" + (f" (killed {', '.join(killed)})" if killed else ""))
        if left:
            print("staging: left behind: " + "; ".join(left), file=sys.stderr)
            return 1
        return 0
    try:
        state = up(a.name, profile)
    except RuntimeError as e:
        print(f"staging: {e}", file=sys.stderr)
        return 1
    if a.command == "up":
        client = " ".join(in_client(a.name))
        print(f"staging {a.name} up ({state['label']})")
        for k in ("url", "git_url", "s3_url", "ca", "token", "edge_log", "https_proxy"):
            print(f"  {k}: {state[k]}")
        print(f"  clients run as: {client} <command>  (MUSE_SSL_CA_INFO={state['ca']})")
        return 0
    if a.command == "env":
        print(json.dumps(state))
        return 0
    return subprocess.call(bench_command(state, rest), cwd=ROOT)


if __name__ == "__main__":
    raise SystemExit(main())
