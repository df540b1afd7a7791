"""A receiver's pack limits are its own policy: what the hub announces never lifts them.

Unit tests of ``pack_limits`` (defaults, config, environment, bad values), then real clones
and fetches from a real hub behind a proxy that rewrites the hub's refs document to announce
``null`` or huge limits: the client still refuses a pack beyond its own limits.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fixtures import QuietHandler

from muse.client.fetch import RECEIVE_LIMITS, pack_limits
from muse.core.repo import Repository
from muse.errors import UsageError

from .conftest import Muse, write_files

ENV = [f"MUSE_{name.upper()}" for name in RECEIVE_LIMITS]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))  # no global config


def _limits(repo: Repository | None = None) -> dict[str, Any]:
    lim = pack_limits(repo)
    return {name: getattr(lim, name) for name in RECEIVE_LIMITS}


def test_defaults_are_bounded(clean_env: None) -> None:
    got = _limits()
    assert got == RECEIVE_LIMITS
    assert all(isinstance(v, int) and v > 0 for v in got.values())
    assert got["max_object_bytes"] <= got["max_pack_bytes"] <= got["max_decompressed_bytes"]


def test_config_then_environment(
    clean_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Repository.init(str(tmp_path / "r"))
    glob = tmp_path / "xdg" / "muse" / "config.toml"
    glob.parent.mkdir(parents=True)
    glob.write_text('[fetch]\nmax_objects = 1000\nmax_pack_bytes = "1g"\n')
    assert _limits(repo) == RECEIVE_LIMITS | {"max_objects": 1000, "max_pack_bytes": 1 << 30}
    repo.config["fetch"] = {"max_objects": 50, "max_object_bytes": "64MiB"}
    repo.save_config()
    repo = Repository(repo.root)
    got = _limits(repo)
    assert (got["max_objects"], got["max_object_bytes"], got["max_pack_bytes"]) == (
        50,
        64 << 20,
        1 << 30,
    )
    monkeypatch.setenv("MUSE_MAX_OBJECTS", "7")
    monkeypatch.setenv("MUSE_MAX_DECOMPRESSED_BYTES", "3K")
    got = _limits(repo)
    assert (got["max_objects"], got["max_decompressed_bytes"]) == (7, 3 << 10)


@pytest.mark.parametrize("bad", ["0", "-1", "lots", "1.5g", "0x10", "", " "])
def test_bad_values_are_refused_not_ignored(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bad: str
) -> None:
    monkeypatch.setenv("MUSE_MAX_PACK_BYTES", bad)
    if not bad.strip():  # an empty variable is unset
        assert _limits()["max_pack_bytes"] == RECEIVE_LIMITS["max_pack_bytes"]
        return
    with pytest.raises(UsageError) as e:
        pack_limits()
    assert "MUSE_MAX_PACK_BYTES" in str(e.value)
    monkeypatch.delenv("MUSE_MAX_PACK_BYTES")
    repo = Repository.init(str(tmp_path / "r"))
    repo.config["fetch"] = {"max_pack_bytes": bad}
    with pytest.raises(UsageError) as e:
        pack_limits(repo)
    assert "fetch.max_pack_bytes" in str(e.value)


def test_pack_limits_takes_nothing_from_the_hub() -> None:
    import inspect

    assert list(inspect.signature(pack_limits).parameters) == ["repo"]


# ------------------------------------------------------------------- against a real hub
class _Rewriter(QuietHandler):
    """Forwards everything to the hub; the refs document's limits are replaced by ``limits``."""

    hub_port = 0
    limits: dict[str, Any] = {}
    refs_seen: list[dict[str, Any]] = []

    def _forward(self) -> None:
        body = self._body()
        skip = {"host", "content-length", "transfer-encoding", "connection"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
        c = http.client.HTTPConnection("127.0.0.1", type(self).hub_port, timeout=60)
        c.request(self.command, self.path, body=body or None, headers=headers)
        r = c.getresponse()
        data = r.read()
        if self.path.split("?")[0].endswith("/refs") and r.status == 200:
            doc = json.loads(data)
            doc["limits"] = {**doc.get("limits", {}), **type(self).limits}
            type(self).refs_seen.append(doc)
            data = json.dumps(doc).encode()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in skip:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        c.close()

    do_GET = do_POST = do_PUT = _forward


@pytest.fixture
def rewriting_hub(hub: Any) -> Iterator[tuple[Any, str]]:
    """(the hub, the URL of a proxy to it that rewrites the announced limits)."""
    _Rewriter.hub_port = hub.port
    _Rewriter.refs_seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Rewriter)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield hub, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _publish(muse: Muse, tmp_path: Path, hub: Any) -> None:
    """alice/song (public) on the hub: a 20 KB incompressible file and a few small ones."""
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    muse.login(hub.url, token)
    src = tmp_path / "src"
    muse.run("init", str(src))
    write_files(src, {"big.bin": os.urandom(20_000), **{f"s{i}.txt": f"{i}\n" for i in range(5)}})
    muse.run("commit", "-m", "first", cwd=src)
    muse.run("remote", "add", "origin", hub.repo_url("alice", "song"), cwd=src)
    muse.run("push", "-u", "origin", "main", cwd=src)


ANNOUNCED = {
    "null": {"max_pack_bytes": None, "max_object_bytes": None},
    "huge": {"max_pack_bytes": 10**18, "max_object_bytes": 10**18, "max_objects": 10**12},
}


@pytest.mark.parametrize("path", ["stream", "presign"])
@pytest.mark.parametrize("announced", ["null", "huge"])
def test_a_hub_announcing_no_limits_does_not_lift_the_clients(
    new_muse: Any, tmp_path: Path, rewriting_hub: tuple[Any, str], announced: str, path: str
) -> None:
    hub, proxy = rewriting_hub
    _publish(new_muse("alice"), tmp_path, hub)
    _Rewriter.limits = ANNOUNCED[announced]
    bob = new_muse("bob")  # anonymous: no token goes through the proxy
    url = f"{proxy}/alice/song"

    # the client's own limit (environment): the clone is refused, and leaves nothing behind
    for env in ({"MUSE_MAX_OBJECT_BYTES": "8k"}, {"MUSE_MAX_PACK_BYTES": "4k"}):
        dst = tmp_path / f"refused-{len(env)}-{next(iter(env))}"
        cp = bob.run("clone", "--path", path, url, str(dst), check=False, env=env)
        assert cp.returncode == 7, cp.stderr
        assert "more than this client accepts" in cp.stderr, cp.stderr
        assert not dst.exists()
    assert _Rewriter.refs_seen and all(
        d["limits"]["max_pack_bytes"] == ANNOUNCED[announced]["max_pack_bytes"]
        for d in _Rewriter.refs_seen
    )

    # the same limit from the config
    cfg = bob.home / ".config" / "muse" / "config.toml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("[fetch]\nmax_object_bytes = 8192\n")
    cp = bob.run("clone", "--path", path, url, str(tmp_path / "by-config"), check=False)
    assert cp.returncode == 7 and "more than this client accepts" in cp.stderr, cp.stderr
    cfg.unlink()

    # within the client's limits the same hub clones fine; a later fetch is held to them too
    dst = tmp_path / "ok"
    bob.run("clone", "--path", path, url, str(dst))
    assert (dst / "big.bin").stat().st_size == 20_000
    alice = new_muse("alice")
    src = tmp_path / "src"
    write_files(src, {"big2.bin": os.urandom(20_000)})
    alice.run("commit", "-m", "second", cwd=src)
    alice.run("push", cwd=src)
    cp = bob.run("fetch", "--path", path, cwd=dst, check=False, env={"MUSE_MAX_OBJECT_BYTES": "8k"})
    assert cp.returncode == 7 and "more than this client accepts" in cp.stderr, cp.stderr
    bob.run("fetch", "--path", path, cwd=dst)


def test_a_bad_setting_stops_clone_before_the_network(muse: Muse, tmp_path: Path) -> None:
    dst = tmp_path / "never"
    cp = muse.run(
        "clone", "http://127.0.0.1:9/alice/song", str(dst), check=False,
        env={"MUSE_MAX_OBJECT_BYTES": "lots"},
    )  # fmt: skip
    assert cp.returncode == 2 and "MUSE_MAX_OBJECT_BYTES" in cp.stderr, cp.stderr
    assert "cannot reach" not in cp.stderr and not dst.exists()
