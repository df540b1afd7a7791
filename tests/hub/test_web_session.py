"""Web view sign-in against a real hub process behind a (simulated) https proxy: the cookie's
Secure flag, revocation ending a session, sign-out's CSRF check, form bodies; and the pure
pieces (ranges, what a file is to a browser, Content-Disposition)."""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from fixtures import Hub, start_hub

from musehub.web.media import content_disposition, is_text, kind_of
from musehub.web.pages import parse_range

#: What a reverse proxy in front of the hub adds; the hub believes it from 127.0.0.1 only.
HTTPS = {"X-Forwarded-Proto": "https", "Accept": "text/html"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = start_hub(
        tmp_path_factory.mktemp("websession"), env={"MUSEHUB_TRUSTED_PROXIES": "127.0.0.1"}
    )
    yield h
    h.stop()
    assert not h.unhandled_errors()


def call(
    hub: Hub, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        r = conn.getresponse()
        cookies = "; ".join(v for k, v in r.getheaders() if k.lower() == "set-cookie")
        out = {k.lower(): v for k, v in r.getheaders()} | {"set-cookie": cookies}
        return r.status, out, r.read().decode(errors="replace")
    finally:
        conn.close()


def form(hub: Hub, path: str, fields: str, cookie: str) -> tuple[int, dict[str, str], str]:
    h = HTTPS | {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    return call(hub, "POST", path, h, fields.encode())


def sign_in(hub: Hub, token: str, next_path: str) -> tuple[str, str]:
    """(session cookie header, CSRF cookie value) after signing in through the form."""
    _, headers, page = call(hub, "GET", "/login", HTTPS)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert f"muse_csrf={csrf}" in headers["set-cookie"]
    assert "Secure" in headers["set-cookie"] and "SameSite=strict" in headers["set-cookie"]
    status, headers, _ = form(
        hub, "/login", f"csrf={csrf}&token={quote(token)}&next={next_path}", f"muse_csrf={csrf}"
    )
    assert status == 303 and headers["location"] == next_path
    return headers["set-cookie"], csrf


def test_https_session_cookie_is_secure_and_opaque(hub: Hub) -> None:
    token = hub.create_user("carol", scopes="read")
    hub.create_repo("carol", "hidden", private=True)
    assert call(hub, "GET", "/carol/hidden", HTTPS)[0] == 404
    cookie, _ = sign_in(hub, token, "/carol/hidden")
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert token not in cookie and token.removeprefix("mh_") not in cookie
    session = re.search(r"muse_session=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
    status, _, page = call(
        hub, "GET", "/carol/hidden", HTTPS | {"Cookie": f"muse_session={session}"}
    )
    assert status == 200 and "This repository is empty" in page


def test_revoking_the_token_ends_the_session(hub: Hub) -> None:
    token = hub.create_user("dave", scopes="read")
    hub.create_repo("dave", "hidden", private=True)
    cookie, _ = sign_in(hub, token, "/dave/hidden")
    session = "muse_session=" + re.search(r"muse_session=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
    assert call(hub, "GET", "/dave/hidden", HTTPS | {"Cookie": session})[0] == 200
    cp = subprocess.run(
        [sys.executable, "-m", "musehub", "token", "revoke", token],
        env=hub.env,
        capture_output=True,
        text=True,
    )
    assert cp.returncode == 0, cp.stderr
    assert call(hub, "GET", "/dave/hidden", HTTPS | {"Cookie": session})[0] == 404


def test_sign_out_needs_the_form_value(hub: Hub) -> None:
    token = hub.create_user("erin", scopes="read")
    cookie, csrf = sign_in(hub, token, "/")
    session = "muse_session=" + re.search(r"muse_session=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
    both = f"{session}; muse_csrf={csrf}"
    status, _, page = form(hub, "/logout", "csrf=forged", both)
    assert status == 403 and "csrf_failed" in page
    status, _, _ = form(hub, "/logout", f"csrf={csrf}", session)  # no CSRF cookie
    assert status == 403
    status, headers, _ = form(hub, "/logout", f"csrf={csrf}", both)
    assert status == 303 and 'muse_session=""' in headers["set-cookie"]


def test_form_bodies_are_checked(hub: Hub) -> None:
    h = HTTPS | {"Content-Type": "application/json"}
    assert call(hub, "POST", "/login", h, b"{}")[0] == 415
    assert form(hub, "/login", "token=" + "a" * 20000, "")[0] == 413
    assert form(hub, "/login", "csrf=%ff%fe&token=%00", "muse_csrf=x")[0] == 403
    assert form(hub, "/login", "&&&===", "")[0] in (400, 403)
    # an API client posting the form gets the JSON error
    status, headers, _ = call(hub, "POST", "/login", {"Content-Type": "text/plain"}, b"x")
    assert status == 415 and headers["content-type"] == "application/json"


def test_parse_range() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 10)
    assert parse_range("bytes=90-", 100) == (90, 100)
    assert parse_range("bytes=-5", 100) == (95, 100)
    assert parse_range("bytes=50-1000", 100) == (50, 100)
    assert parse_range("bytes=0-1,5-6", 100) == (0, 100)  # several: the whole file
    for bad in ("bytes=100-", "bytes=5-2", "bytes=-0", "bytes=-", "items=0-1", "bytes=a-b"):
        assert parse_range(bad, 100) is None, bad
    assert parse_range("bytes=-5", 0) is None


def test_what_a_file_is_to_the_browser() -> None:
    assert kind_of("a.svg", b"<svg>").content_type == "text/plain; charset=utf-8"
    assert kind_of("a.html", b"<html>").view == "text"
    assert kind_of("x.PNG", b"\x89PNG").content_type == "image/png"
    assert kind_of("t.flac", b"fLaC").view == "audio"
    b = kind_of("a.bin", b"\x00\x01")
    assert (b.view, b.content_type, b.inline) == ("binary", "application/octet-stream", False)
    assert is_text("é".encode()[:1]) and not is_text(b"\xff\xfe ok")
    cd = content_disposition('na"me\n\u00e9.txt', inline=False)
    assert cd == "attachment; filename=\"na_me__.txt\"; filename*=UTF-8''na%22me%0A%C3%A9.txt"
