"""The rate limits cannot be escaped by respelling a token, inventing X-Forwarded-For or
forging tokens (issue 11, "Rate limiting"), against real hub processes.

Requests come from two loopback addresses (127.0.0.1 and 127.0.0.2) to tell clients apart.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from fixtures import Hub

from musehub.config import ConfigError, load_settings


def call(
    hub: Hub,
    path: str,
    headers: dict[str, str] | None = None,
    source: str = "127.0.0.1",
) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30, source_address=(source, 0))
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        raw = r.read()
    finally:
        conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, json.loads(raw) if raw else None


def test_one_token_in_any_spelling_is_one_caller(tmp_path: Any, start_hub: Any) -> None:
    hub = start_hub(tmp_path, env={"MUSEHUB_RATE_LIMIT_PER_MINUTE": "6"})
    token = hub.create_user("alice")
    spellings = [
        f"Bearer {token}",
        f"bearer {token}",
        f"BEARER {token}",
        f"Bearer   {token}",
        f"bEaReR {token}   ",
        f"Bearer {token}\t",
    ]
    for value in spellings:
        status, _, body = call(hub, "/api/user", {"Authorization": value})
        assert status == 200 and body["username"] == "alice", (value, body)
    status, headers, body = call(hub, "/api/user", {"Authorization": f"beARER  {token}"})
    assert (status, body["error"]) == (429, "rate_limited")
    assert int(headers["retry-after"]) >= 1
    # another token is another caller
    other = hub.create_token("alice")
    assert call(hub, "/api/user", {"Authorization": f"Bearer {other}"})[0] == 200


def test_x_forwarded_for_is_ignored_without_trusted_proxies(tmp_path: Any, start_hub: Any) -> None:
    hub = start_hub(tmp_path, env={"MUSEHUB_RATE_LIMIT_PER_MINUTE": "5"})
    got = [call(hub, "/api/repos", {"X-Forwarded-For": f"10.9.8.{i}"})[0] for i in range(8)]
    assert got == [200] * 5 + [429] * 3


def test_trusted_proxy_forwards_the_client_address(tmp_path: Any, start_hub: Any) -> None:
    env = {"MUSEHUB_RATE_LIMIT_PER_MINUTE": "3", "MUSEHUB_TRUSTED_PROXIES": "127.0.0.1/32"}
    hub = start_hub(tmp_path, env=env)
    # Through the trusted proxy (127.0.0.1): each forwarded client has its own count.
    for i in range(6):
        assert call(hub, "/api/repos", {"X-Forwarded-For": f"10.9.8.{i}"})[0] == 200
    same = [call(hub, "/api/repos", {"X-Forwarded-For": "10.1.1.1"})[0] for _ in range(5)]
    assert same == [200] * 3 + [429] * 2
    # From an address that is not a trusted proxy the header means nothing.
    untrusted = [
        call(hub, "/api/repos", {"X-Forwarded-For": f"10.7.7.{i}"}, source="127.0.0.2")[0]
        for i in range(5)
    ]
    assert untrusted == [200] * 3 + [429] * 2


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_failed_authentications_are_limited_per_address(
    tmp_path: Any, start_hub: Any, request: pytest.FixtureRequest, backend: str
) -> None:
    env = {"MUSEHUB_AUTH_FAILURES_PER_MINUTE": "5"}
    if backend == "sqlite":
        hub = start_hub(tmp_path, env=env)
    else:
        pg = request.getfixturevalue("postgres")
        hub = start_hub(tmp_path, database=pg.new_database(), env=env)
    good = hub.create_user("alice")
    hub.create_repo("alice", "pub")
    forged = [f"Bearer mh_{i:043d}" for i in range(4)] + ["Basic YWxpY2U6cHc="]
    for value in forged:
        status, _, body = call(hub, "/api/user", {"Authorization": value})
        assert (status, body["error"]) == (401, "unauthorized"), body
    # The sixth is refused before its token is looked up, whatever it is.
    for value in (f"Bearer mh_{'9' * 43}", f"Bearer {good}"):
        status, headers, body = call(hub, "/alice/pub/refs", {"Authorization": value})
        assert (status, body["error"]) == (429, "rate_limited"), body
        assert 1 <= int(headers["retry-after"]) <= 60
    # Without a token nothing is looked up: anonymous reads go on.
    assert call(hub, "/alice/pub/refs")[0] == 200
    # Another address has its own count.
    assert call(hub, "/api/user", {"Authorization": f"Bearer {good}"}, source="127.0.0.2")[0] == 200
    status, _, _ = call(hub, "/api/user", {"Authorization": forged[0]}, source="127.0.0.2")
    assert status == 401


def test_trusted_proxies_setting_is_checked() -> None:
    env = {"MUSEHUB_DATA_DIR": "/nonexistent/x", "MUSEHUB_SECRET_KEY": "k"}
    s = load_settings(env={**env, "MUSEHUB_TRUSTED_PROXIES": " 10.0.0.1, 192.168.0.0/16 ,::1"})
    assert s.trusted_proxies == "10.0.0.1,192.168.0.0/16,::1"
    assert load_settings(env=env).trusted_proxies == ""
    for bad in ("*", "proxy.example", "10.0.0.300"):
        with pytest.raises(ConfigError, match="trusted_proxies"):
            load_settings(env={**env, "MUSEHUB_TRUSTED_PROXIES": bad})


def test_the_limiter_forgets_the_longest_idle_callers_first() -> None:
    """A flood of forged tokens (each a new caller) cannot grow the limiter without bound,
    and the callers it keeps counting are the recent ones."""
    from musehub.ratelimit import RateLimiter

    rl = RateLimiter(2, max_keys=10)
    assert rl.hit("steady", 0.0) == 0 and rl.hit("steady", 0.1) == 0
    for i in range(1000):
        rl.hit(f"forged-{i}", 1.0 + i / 1000)
        if i % 5 == 0:
            assert rl.hit("steady", 1.0 + i / 1000) > 0  # still counted: recently seen
    assert len(rl._hits) <= 10
    assert rl.hit("steady", 61.0) == 0  # its window passed
