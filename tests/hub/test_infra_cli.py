"""The `musehub` command as a subprocess: administration, errors, config files, serve."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from fixtures import free_port, hub_env, stop_process, wait_port


def musehub(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "musehub", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return hub_env(tmp_path / "data", free_port())


def test_admin_commands(env: dict[str, str]) -> None:
    r = musehub(env, "user", "add", "alice", "--admin", "--init")
    assert r.returncode == 0, r.stderr
    assert musehub(env, "user", "add", "bob").returncode == 0
    r = musehub(env, "user", "list")
    assert r.stdout.split("\n")[:2] == ["alice  (admin)", "bob"]

    r = musehub(env, "token", "create", "bob", "--scope", "read", "--expires-days", "3")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert token.startswith("mh_") and "\n" not in token
    # BENCH's spelling: a comma list, the highest counts
    r = musehub(env, "token", "create", "alice", "--scopes", "read,write,admin")
    assert r.returncode == 0 and r.stdout.strip().startswith("mh_")
    listing = musehub(env, "token", "list").stdout
    assert "bob\tread\tactive" in listing and "alice\tread,write,admin\tactive" in listing
    assert token not in listing

    r = musehub(env, "repo", "create", "alice/song", "--private", "--default-branch", "trunk")
    assert r.returncode == 0 and r.stdout.strip() == "alice/song"
    assert musehub(env, "repo", "create", "bob/demo").returncode == 0
    r = musehub(env, "repo", "list")
    assert r.stdout.splitlines() == ["alice/song\tprivate\ttrunk", "bob/demo\tpublic\tmain"]
    assert musehub(env, "repo", "list", "--owner", "bob").stdout.splitlines() == [
        "bob/demo\tpublic\tmain"
    ]

    r = musehub(env, "token", "revoke", token)
    assert r.returncode == 0
    assert "bob\tread\trevoked" in musehub(env, "token", "list", "bob").stdout
    r = musehub(env, "migrate")
    assert r.returncode == 0 and "revision" in r.stdout


@pytest.mark.parametrize(
    "args,code,needle",
    [
        (["user", "add", "bad/name"], 2, "invalid user name"),
        (["user", "add", "api"], 2, "reserved"),
        (["token", "create", "ghost"], 3, "no user 'ghost'"),
        (["token", "create", "carol", "--scope", "root"], 2, "unknown scope"),
        (["token", "create", "carol", "--expires-days", "0"], 2, "positive"),
        (["token", "revoke", "mh_nope"], 3, "no such token"),
        (["token", "revoke"], 2, "either"),
        (["repo", "create", "carol"], 2, "OWNER/SLUG"),
        (["repo", "create", "ghost/x"], 3, "no user"),
        (["repo", "create", "carol/../x"], 2, "OWNER/SLUG"),
        (["repo", "create", "carol/x", "--default-branch", "a..b"], 2, "invalid"),
    ],
)
def test_errors_are_one_line(env: dict[str, str], args: list[str], code: int, needle: str) -> None:
    assert musehub(env, "--init", "user", "add", "carol").returncode == 0
    r = musehub(env, *args)
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("musehub: error: "), r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr


def test_duplicates(env: dict[str, str]) -> None:
    assert musehub(env, "user", "add", "dan", "--init").returncode == 0
    r = musehub(env, "user", "add", "dan")
    assert r.returncode == 4 and "already exists" in r.stderr
    assert musehub(env, "repo", "create", "dan/x").returncode == 0
    r = musehub(env, "repo", "create", "dan/x")
    assert r.returncode == 4 and "exists" in r.stderr


def test_bad_configuration(env: dict[str, str], tmp_path: Path) -> None:
    cases = [
        ({"MUSEHUB_STORAGE": "floppy"}, "storage must be"),
        ({"MUSEHUB_PORT": "http"}, "port must be an integer"),
        ({"MUSEHUB_CONFIG": str(tmp_path / "missing.toml")}, "cannot read config file"),
        ({"MUSEHUB_DATABASE_URL": "nosuchdb://x"}, "musehub: error:"),
    ]
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("port = [")
    cases.append(({"MUSEHUB_CONFIG": str(bad_toml)}, "invalid TOML"))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    cases.append(({"MUSEHUB_CONFIG": str(unknown)}, "unknown setting 'colour'"))
    for extra, needle in cases:
        r = musehub({**env, **extra}, "repo", "list")
        assert r.returncode != 0, extra
        assert needle in r.stderr and "Traceback" not in r.stderr, (extra, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_usage_errors(env: dict[str, str]) -> None:
    r = musehub(env)
    assert r.returncode == 2 and "usage" in r.stderr
    r = musehub(env, "frobnicate")
    assert r.returncode == 2


def test_serve_with_config_file_and_workers(tmp_path: Path) -> None:
    """`musehub --config FILE serve --workers 2`: settings from TOML, requests answered."""
    port = free_port()
    data = tmp_path / "cfgdata"
    cfg = tmp_path / "hub.toml"
    cfg.write_text(
        f'data_dir = "{data}"\nhost = "127.0.0.1"\nport = {port}\n'
        "[limits]\nstream_max_blobs = 123\nrate_limit_per_minute = 0\n"
    )
    env = {k: v for k, v in hub_env(data, port).items() if not k.startswith("MUSEHUB_")}
    assert musehub(env, "--config", str(cfg), "--init", "user", "add", "eve").returncode == 0
    r = musehub(env, "--config", str(cfg), "repo", "create", "eve/tune")
    assert r.returncode == 0, r.stderr
    proc = subprocess.Popen(
        [sys.executable, "-m", "musehub", "serve", "--config", str(cfg), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_port(port, 60, proc)
        body = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/eve/tune/refs").read())
        assert body["limits"]["stream_max_blobs"] == 123
        for _ in range(4):  # both workers answer
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
    finally:
        stop_process(proc, grace=10)
    log = proc.stdout.read().decode() if proc.stdout else ""
    assert "GET /eve/tune/refs 200" in log  # the access log line
    assert (data / "secret_key").exists() and (data / "musehub.db").exists()
