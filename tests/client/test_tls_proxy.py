"""The client on a real network: TLS verified against a throwaway CA behind a real nginx, a real
forward proxy (tinyproxy) for HTTPS_PROXY / HTTP_PROXY / NO_PROXY, and the proxy's body cap.

Every certificate problem is a one-line error with exit code 6 and nothing sent; there is no
way to turn verification off.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures import free_port, missing, start_hub
from fixtures.recovery import wait_until
from staging.edge import Edge, Site, nginx_binary
from staging.forward import ForwardProxy, tinyproxy_binary
from staging.pki import CA

from .conftest import Muse, tree_of, write_files

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def hub_https(tmp_path: Path) -> Iterator[tuple[Any, CA, Callable[..., tuple[Edge, str]]]]:
    """A hub on loopback and a maker of nginx edges in front of it: edge(cert options) ->
    (edge, https base URL). The hub's public URL is the first edge's."""
    if nginx_binary() is None:
        missing("nginx not installed (apt-get install nginx)")
    port = free_port()
    hub = start_hub(tmp_path, env={"MUSEHUB_PUBLIC_URL": f"https://localhost:{port}"})
    ca = CA(tmp_path / "pki")
    edges: list[Edge] = []

    def edge(
        names: tuple[str, ...] = ("localhost",), body_cap: str = "100m", **cert: bool
    ) -> tuple[Edge, str]:
        p = port if not edges else free_port()
        stem = f"edge{len(edges)}"
        crt, key = ca.issue(stem, list(names), **cert)
        e = Edge(
            tmp_path / stem,
            f"127.0.0.1:{p}",
            Site("localhost", crt, key, [f"127.0.0.1:{hub.port}"], body_cap),
        )
        edges.append(e)
        return e, f"https://localhost:{p}"

    try:
        yield hub, ca, edge
    finally:
        for e in edges:
            e.stop()
        hub.stop()


def _seed(muse: Muse, root: Path, files: dict[str, bytes | str | None] | None = None) -> None:
    muse.run("init", str(root))
    write_files(root, files or {f"d/f{i}.txt": f"file {i}\n" * (i + 1) for i in range(8)})
    muse.run("commit", "-m", "first", cwd=root)


def _error_line(cp: Any) -> str:
    assert "Traceback" not in cp.stderr, cp.stderr
    lines = [x for x in cp.stderr.splitlines() if x.startswith("muse: error:")]
    assert len(lines) == 1, cp.stderr  # one line
    return str(lines[0])


@pytest.mark.parametrize("path", ["stream", "presign"])
def test_four_verbs_over_verified_https(
    hub_https: Any, muse: Muse, tmp_path: Path, path: str
) -> None:
    hub, ca, edge = hub_https
    _, base = edge()
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    url = f"{base}/alice/song"
    env = {"MUSE_SSL_CA_INFO": str(ca.cert_path)}
    muse.run("auth", "login", base, "--token-stdin", input=token + "\n", env=env)
    src = tmp_path / "src"
    _seed(muse, src)
    muse.run("remote", "add", "origin", url, cwd=src)
    out = muse.json("push", "--path", path, "-u", "origin", "main", cwd=src, env=env)
    assert out["path"] == path and out["objects"] > 0
    # one connection per host for the whole verb; its set-up is TCP + one TLS 1.3 round trip
    hosts = 1  # the hub's presigned URLs (local storage) are on the hub's own origin
    assert out["connections"] == hosts
    assert out["round_trips"] == out["requests"] + 2 * out["connections"]
    dst = tmp_path / "dst"
    out = muse.json("clone", "--path", path, url, str(dst), env=env)
    assert out["connections"] == hosts and out["requests"] >= 2
    assert tree_of(dst) == tree_of(src)
    write_files(src, {"new.txt": "more\n"})
    muse.run("commit", "-m", "second", cwd=src)
    muse.run("push", "--path", path, cwd=src, env=env)
    out = muse.json("fetch", "--path", path, cwd=dst, env=env)
    assert out["objects"] > 0 and out["connections"] == 1
    out = muse.json("pull", "--path", path, cwd=dst, env=env)
    assert (dst / "new.txt").read_text() == "more\n"
    assert muse.run("fsck", cwd=dst).returncode == 0


def test_ca_from_muse_config_or_ssl_cert_file(hub_https: Any, muse: Muse, tmp_path: Path) -> None:
    hub, ca, edge = hub_https
    _, base = edge()
    hub.create_repo("admin", "pub")
    url = f"{base}/admin/pub"
    # the system store alone does not know the throwaway CA
    cp = muse.run("clone", url, str(tmp_path / "a"), check=False)
    assert cp.returncode == 6, cp.stderr
    assert "unable to get local issuer certificate" in _error_line(cp)
    assert not (tmp_path / "a").exists()  # nothing was written
    # git's http.sslCAInfo, as a muse setting
    muse.run("config", "--global", "http.sslCAInfo", str(ca.cert_path))
    muse.run("clone", url, str(tmp_path / "b"))
    muse.run("config", "--global", "--unset", "http.sslCAInfo")
    # OpenSSL's SSL_CERT_FILE for the default store
    muse.run("clone", url, str(tmp_path / "c"), env={"SSL_CERT_FILE": str(ca.cert_path)})
    # a CA file that does not exist is a usage error, not a fallback to anything else
    cp = muse.run(
        "clone", url, str(tmp_path / "d"), check=False, env={"MUSE_SSL_CA_INFO": "/nonexistent"}
    )
    assert cp.returncode == 2 and "/nonexistent" in _error_line(cp)


@pytest.mark.parametrize(
    ("cert", "names", "reason"),
    [
        ({"expired": True}, ("localhost",), "certificate has expired"),
        ({}, ("other.example",), "Hostname mismatch"),
        ({"self_signed": True}, ("localhost",), "self-signed certificate"),
    ],
)
def test_untrusted_certificates_are_refused_before_anything_is_sent(
    hub_https: Any,
    muse: Muse,
    tmp_path: Path,
    cert: dict[str, bool],
    names: tuple[str, ...],
    reason: str,
) -> None:
    hub, ca, edge = hub_https
    edge()  # the hub's own, good edge
    bad, base = edge(names, **cert)
    env = {"MUSE_SSL_CA_INFO": str(ca.cert_path)}
    cp = muse.run("clone", f"{base}/admin/x", str(tmp_path / "x"), check=False, env=env)
    assert cp.returncode == 6, cp.stderr
    line = _error_line(cp)
    assert line.startswith("muse: error: cannot trust ") and reason in line, line
    assert "http.sslCAInfo" in line
    assert bad.log_lines() == []  # no request reached the proxy


def test_https_proxy_connect_no_proxy_and_refusal(
    hub_https: Any, muse: Muse, tmp_path: Path
) -> None:
    if tinyproxy_binary() is None:
        missing("tinyproxy not installed (apt-get install tinyproxy)")
    hub, ca, edge = hub_https
    edge_proc, base = edge()
    port = int(base.rsplit(":", 1)[1])
    hub.create_repo("admin", "pub")
    src = tmp_path / "src"
    _seed(muse, src)
    token = hub.admin_token
    env = {"MUSE_SSL_CA_INFO": str(ca.cert_path)}
    muse.run("auth", "login", base, "--token-stdin", input=token + "\n", env=env)
    muse.run("remote", "add", "origin", f"{base}/admin/pub", cwd=src)
    fwd = ForwardProxy(tmp_path / "fwd", "127.0.0.1", free_port(), connect_ports=[port])
    try:
        penv = {**env, "HTTPS_PROXY": fwd.url, "NO_PROXY": ""}
        out = muse.json("push", "-u", "origin", "main", cwd=src, env=penv)
        assert fwd.connects() == [f"localhost:{port}"]  # one tunnel for the whole verb
        assert out["round_trips"] == out["requests"] + 3  # TCP, CONNECT, TLS 1.3
        lower = {**env, "https_proxy": fwd.url}
        muse.run("clone", f"{base}/admin/pub", str(tmp_path / "c1"), env=lower)
        assert len(fwd.connects()) == 2
        for no in ("localhost", ".localhost", f"localhost:{port}", "*", "example.org,localhost"):
            muse.run("fetch", cwd=tmp_path / "c1", env={**penv, "NO_PROXY": no})
        muse.run("fetch", cwd=tmp_path / "c1", env={**penv, "NO_PROXY": "127.0.0.0/8"})
        assert len(fwd.connects()) == 3  # a CIDR range matches addresses, not this host name
        # plain http through HTTP_PROXY: absolute-form requests, no tunnel
        hub.create_repo("admin", "plain")
        http_url = hub.repo_url("admin", "plain")
        cp = muse.run(
            "clone", http_url, str(tmp_path / "c2"), env={"HTTP_PROXY": fwd.url}, check=False
        )
        assert cp.returncode == 0, cp.stderr
        assert f"GET http://127.0.0.1:{hub.port}/admin/plain/refs" in fwd.log_text()
    finally:
        fwd.stop()
    # a proxy that refuses the tunnel (CONNECT only to other ports)
    fwd2 = ForwardProxy(tmp_path / "fwd2", "127.0.0.1", free_port(), connect_ports=[1])
    try:
        cp = muse.run("fetch", cwd=tmp_path / "c1", env={**env, "HTTPS_PROXY": fwd2.url},
                      check=False)  # fmt: skip
        assert cp.returncode == 6, cp.stderr
        line = _error_line(cp)
        assert f"refused to connect to localhost:{port} (403" in line and "HTTPS_PROXY" in line
    finally:
        fwd2.stop()
    assert edge_proc.log_lines()


def test_body_over_the_proxy_cap_says_use_presign(
    hub_https: Any, muse: Muse, tmp_path: Path
) -> None:
    hub, ca, edge = hub_https
    edge_proc, base = edge(body_cap="1m")
    hub.create_repo("admin", "big")
    env = {"MUSE_SSL_CA_INFO": str(ca.cert_path)}
    muse.run("auth", "login", base, "--token-stdin", input=hub.admin_token + "\n", env=env)
    src = tmp_path / "src"
    _seed(muse, src, {"big.bin": os.urandom(3 << 20)})
    muse.run("remote", "add", "origin", f"{base}/admin/big", cwd=src)
    cp = muse.run("push", "--path", "stream", "-u", "origin", "main", cwd=src, env=env,
                  check=False)  # fmt: skip
    assert cp.returncode == 7, cp.stderr
    line = _error_line(cp)
    assert "413" in line and "--path presign" in line, line
    # nginx writes the line when the connection is done, which may be just after muse exits
    wait_until(lambda: any(" 413 " in x for x in edge_proc.log_lines()), 30, "the edge's 413")
    assert muse.run("fsck", cwd=src).returncode == 0


def test_a_push_over_the_edge_cap_stops_sending_at_the_refusal(
    hub_https: Any, muse: Muse, tmp_path: Path
) -> None:
    """A stream push of a pack that is a file goes with its Content-Length: the edge refuses
    it on the headers (413), and muse stops sending when that answer arrives instead of
    uploading the rest into nginx's lingering close."""
    from fixtures.recovery import StallProxy

    hub, ca, edge = hub_https
    _edge, base = edge(body_cap="4m")  # over one 1 MiB chunk of a chunked body
    sent = [0]
    counter = StallProxy(
        int(base.rsplit(":", 1)[1]), on_request=lambda d: sent.__setitem__(0, sent[0] + len(d))
    )
    try:
        url = f"https://localhost:{counter.port}"
        hub.create_repo("admin", "big")
        env = {"MUSE_SSL_CA_INFO": str(ca.cert_path)}
        muse.run("auth", "login", url, "--token-stdin", input=hub.admin_token + "\n", env=env)
        src = tmp_path / "src"
        size = 24 << 20
        _seed(muse, src, {"big.bin": os.urandom(size)})
        muse.run("gc", cwd=src)  # one pack: it is sent as the file it is
        muse.run("remote", "add", "origin", f"{url}/admin/big", cwd=src)
        sent[0] = 0
        cp = muse.run("push", "--path", "stream", "origin", "main", cwd=src, env=env,
                      check=False)  # fmt: skip
        assert cp.returncode == 7, cp.stderr
        line = _error_line(cp)
        assert "413" in line and "--path presign" in line, line
        # refused on its headers: what was in flight (about one 1 MiB piece), not the 4 MB a
        # chunked body must fill before the cap shows, nor the 24 MiB pack
        assert sent[0] < 3 << 20, sent[0]
        refs = hub.request("GET", "/admin/big/refs", None, hub.admin_token)[1]["refs"]
        assert refs == {}, refs
        assert muse.run("fsck", cwd=src).returncode == 0
    finally:
        counter.close()
