"""The web view against a real hub process, with history pushed by the real `muse` command.

``seed_site`` builds the site the browser test walks too: alice/song (public: a README with
hostile HTML, code, a short WAV, a chunked 1.5 MiB file, HTML and SVG that must never render,
two commits on main and a branch ``feature/x``) and alice/secret (private).
"""

from __future__ import annotations

import http.client
import math
import re
import struct
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures import MUSE, Hub, muse_env, start_hub

WAV_SECONDS = 1.5
WAV_RATE = 8000
BIG = 1_500_000  # chunked (>= 1 MiB): several chunks of at most 256 KiB

README = """# Song

A *short* song. <script>alert("readme")</script>

[bad link](javascript:alert(1)) and [good link](https://example.invalid/)
and [the code](src/main.py) ![a tone](./audio/tone.wav)

| a | b |
|---|---|
| 1 | 2 |
"""
MAIN_PY_1 = 'def hello():\n    return "<b>hi</b>"\n'
MAIN_PY_2 = 'def hello():\n    return "<b>hello</b>"\n\n\nprint(hello())\n'


def wav_bytes(seconds: float = WAV_SECONDS, rate: int = WAV_RATE) -> bytes:
    """A mono 16-bit sine tone, written by the standard library's wave module."""
    import io

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        frames = int(seconds * rate)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                for i in range(frames)
            )
        )
    return buf.getvalue()


def png_bytes(width: int = 24, height: int = 16) -> bytes:
    """A small RGB PNG (a gradient), written with zlib: no imaging library needed."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(
        b"\0" + b"".join(bytes((x * 10 % 256, y * 15 % 256, 128)) for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def big_bytes() -> bytes:
    import random

    return random.Random(7).randbytes(BIG)


@dataclass
class Site:
    hub: Hub
    token: str  # alice's
    main: str  # hex of main's tip
    first: str  # hex of main's first commit
    feature: str  # hex of feature/x's tip


def _muse(home: Path, token: str, *args: str, cwd: Path) -> str:
    cp = subprocess.run(
        [*MUSE, *args],
        cwd=cwd,
        env=muse_env(home, MUSE_TOKEN=token),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cp.returncode == 0, f"muse {' '.join(args)}: {cp.stdout}\n{cp.stderr}"
    return cp.stdout


def _write(root: Path, files: dict[str, bytes | str]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)


def _tip(home: Path, token: str, work: Path) -> str:
    return re.findall(r"[0-9a-f]{64}", _muse(home, token, "log", "-n", "1", cwd=work))[0]


def seed_site(hub: Hub, tmp: Path) -> Site:
    token = hub.create_user("alice")
    hub.create_repo("alice", "song")
    hub.create_repo("alice", "secret", private=True)
    home = tmp / "home"
    work = tmp / "song"
    work.mkdir(parents=True)
    m = lambda *a: _muse(home, token, *a, cwd=work)  # noqa: E731
    m("init")
    _write(
        work,
        {
            "README.md": README,
            "src/main.py": MAIN_PY_1,
            "audio/tone.wav": wav_bytes(),
            "art/cover.png": png_bytes(),
            "data/big.bin": big_bytes(),
            "web/evil.html": "<html><script>document.title='pwned'</script></html>\n",
            "web/evil.svg": '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>\n',
            "notes/a b#?.txt": "odd name\n",
        }
        | {f"many/f{i:04d}.txt": "same\n" for i in range(1003)},
    )
    m("commit", "-m", "first take")
    first = _tip(home, token, work)
    _write(work, {"src/main.py": MAIN_PY_2, "data/blob.dat": bytes(range(256)) * 4})
    m("commit", "-m", "louder hello\n\nThe body of the message.")
    main = _tip(home, token, work)
    m("remote", "add", "origin", hub.repo_url("alice", "song"))
    m("push", "-u", "origin", "main")
    m("checkout", "-b", "feature/x")
    _write(work, {"feature.txt": "new feature\n"})
    m("commit", "-m", "a feature")
    feature = _tip(home, token, work)
    m("push", "-u", "origin", "feature/x")
    # the private repository
    secret = tmp / "secret"
    secret.mkdir()
    s = lambda *a: _muse(home, token, *a, cwd=secret)  # noqa: E731
    s("init")
    _write(secret, {"hidden.txt": "classified\n"})
    s("commit", "-m", "secret stuff")
    s("remote", "add", "origin", hub.repo_url("alice", "secret"))
    s("push", "-u", "origin", "main")
    return Site(hub, token, main, first, feature)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("web")
    hub = start_hub(tmp)
    try:
        yield seed_site(hub, tmp)
    finally:
        hub.stop()
        crashes = hub.unhandled_errors()
        assert not crashes, crashes


def get(
    hub: Hub, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """A raw request (the path as given, unnormalised), HTML accepted unless told otherwise."""
    conn = http.client.HTTPConnection("127.0.0.1", hub.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        h = {"Accept": "text/html"} | (headers or {})
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def text_of(html: bytes) -> str:
    return re.sub(r"<[^>]+>", "", html.decode())


# --------------------------------------------------------------------------------- tests


def test_index_lists_public_repositories_only(site: Site) -> None:
    status, headers, body = get(site.hub, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b'href="/alice/song"' in body
    assert b"alice/secret" not in body
    assert "script-src" not in headers["content-security-policy"]  # default-src 'none'
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    # signed in with alice's token (the header), the private one is listed too
    _, _, body = get(site.hub, "/", {"Authorization": f"Bearer {site.token}"})
    assert b'href="/alice/secret"' in body


def test_repository_page(site: Site) -> None:
    status, _, body = get(site.hub, "/alice/song")
    assert status == 200
    page = body.decode()
    assert f"muse clone {site.hub.url}/alice/song" in page
    assert "feature/x" in page and 'href="/alice/song/tree/main/src"' in page
    # README rendered, its HTML shown as text, its javascript: link dropped
    assert "<em>short</em>" in page and "<table>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page
    assert 'href="https://example.invalid/"' in page
    # relative links lead to the file pages, relative images to the raw files
    assert 'href="/alice/song/blob/main/src/main.py"' in page
    assert 'src="/alice/song/raw/main/audio/tone.wav"' in page


def test_a_large_directory_lists_its_first_thousand(site: Site) -> None:
    status, _, body = get(site.hub, "/alice/song/tree/main/many")
    assert status == 200 and b"f0999.txt" in body and b"f1000.txt" not in body
    assert b"and 3 more entries" in body


def test_tree_blob_and_ref_with_a_slash(site: Site) -> None:
    status, _, body = get(site.hub, "/alice/song/tree/main/src")
    assert status == 200 and b'href="/alice/song/blob/main/src/main.py"' in body
    status, _, body = get(site.hub, "/alice/song/blob/main/src/main.py")
    assert status == 200
    page = body.decode()
    assert 'class="highlight"' in page and 'id="L-5"' in page  # numbered lines
    assert "&lt;b&gt;hello&lt;/b&gt;" in text_of(body) or "&lt;b&gt;" in page
    # a branch named feature/x, a path after it
    status, _, body = get(site.hub, "/alice/song/blob/feature/x/feature.txt")
    assert status == 200 and b"new feature" in body
    # a commit id as the ref
    status, _, body = get(site.hub, f"/alice/song/blob/{site.first}/src/main.py")
    assert status == 200 and b"print" not in body
    # a file asked as a tree (and the reverse) is redirected
    status, headers, _ = get(site.hub, "/alice/song/tree/main/src/main.py")
    assert status == 302 and headers["location"] == "/alice/song/blob/main/src/main.py"


def test_audio_image_and_binary_pages(site: Site) -> None:
    status, _, body = get(site.hub, "/alice/song/blob/main/art/cover.png")
    assert status == 200 and b'<img src="/alice/song/raw/main/art/cover.png"' in body
    status, headers, body = get(site.hub, "/alice/song/raw/main/art/cover.png")
    assert headers["content-type"] == "image/png" and body == png_bytes()
    status, _, body = get(site.hub, "/alice/song/blob/main/audio/tone.wav")
    assert status == 200
    page = body.decode()
    assert '<audio controls preload="metadata" id="audio">' in page
    assert 'src="/alice/song/raw/main/audio/tone.wav" type="audio/wav"' in page
    assert "Duration 1.5 s" in page and "23.5 KiB" in page
    _, _, body = get(site.hub, "/alice/song/blob/main/data/blob.dat")
    assert b'id="binary"' in body and b"1.0 KiB" in body
    _, _, body = get(site.hub, "/alice/song/blob/main/data/big.bin")
    assert b'id="binary"' in body and b"1.4 MiB" in body


def test_raw_download_streams_with_ranges(site: Site) -> None:
    big = big_bytes()
    status, headers, body = get(site.hub, "/alice/song/raw/main/data/big.bin")
    assert status == 200 and body == big
    assert headers["content-length"] == str(BIG) and headers["accept-ranges"] == "bytes"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"].startswith('attachment; filename="big.bin"')
    # a range across chunk boundaries, a suffix range, an open range
    status, headers, body = get(
        site.hub, "/alice/song/raw/main/data/big.bin", {"Range": "bytes=200000-700000"}
    )
    assert status == 206 and body == big[200000:700001]
    assert headers["content-range"] == f"bytes 200000-700000/{BIG}"
    status, _, body = get(site.hub, "/alice/song/raw/main/data/big.bin", {"Range": "bytes=-10"})
    assert status == 206 and body == big[-10:]
    status, _, body = get(
        site.hub, "/alice/song/raw/main/data/big.bin", {"Range": f"bytes={BIG - 3}-"}
    )
    assert status == 206 and body == big[-3:]
    status, headers, _ = get(
        site.hub, "/alice/song/raw/main/data/big.bin", {"Range": f"bytes={BIG}-"}
    )
    assert status == 416 and headers["content-range"] == f"bytes */{BIG}"
    status, _, _ = get(site.hub, "/alice/song/raw/main/data/big.bin", {"Range": "bytes=9-2"})
    assert status == 416
    # audio inline under its own type; a name that needs quoting
    status, headers, body = get(site.hub, "/alice/song/raw/main/audio/tone.wav")
    assert status == 200 and headers["content-type"] == "audio/wav" and body == wav_bytes()
    assert headers["content-disposition"].startswith("inline")
    status, headers, body = get(site.hub, "/alice/song/raw/main/notes/a%20b%23%3F.txt")
    assert status == 200 and body == b"odd name\n"
    assert "filename*=UTF-8''a%20b%23%3F.txt" in headers["content-disposition"]


def test_html_and_svg_never_render_as_the_hub(site: Site) -> None:
    for path in ("web/evil.html", "web/evil.svg"):
        status, headers, body = get(site.hub, f"/alice/song/raw/main/{path}")
        assert status == 200 and b"<script>" in body
        assert headers["content-type"] == "text/plain; charset=utf-8", path
        assert "sandbox" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        status, _, body = get(site.hub, f"/alice/song/blob/main/{path}")
        assert status == 200 and b"<script>" not in body


def test_commit_log_commit_and_compare(site: Site) -> None:
    status, _, body = get(site.hub, "/alice/song/commits/main")
    assert status == 200
    page = body.decode()
    assert page.index("louder hello") < page.index("first take")
    assert f"/alice/song/commit/{site.main}" in page
    status, _, _ = get(site.hub, "/alice/song/commits/main?page=2")
    assert status == 404
    status, _, _ = get(site.hub, "/alice/song/commits/main?page=x")
    assert status == 400
    status, _, body = get(site.hub, f"/alice/song/commit/{site.main}")
    assert status == 200
    page = body.decode()
    assert "src/main.py" in page and "data/blob.dat" in page
    assert "The body of the message." in page
    assert "Binary file 1.0 KiB" in page  # data/blob.dat, added
    status, _, body = get(site.hub, "/alice/song/compare/main...feature/x")
    assert status == 200
    page = body.decode()
    assert "a feature" in page and "feature.txt" in page and "louder hello" not in page
    status, _, body = get(site.hub, f"/alice/song/compare/{site.first}..main")
    assert status == 200 and b"louder hello" in body and b"first take" not in body


def test_commit_page_shows_unified_hunks(site: Site) -> None:
    """The lines come from muse.core.textdiff, the diff `muse diff` prints."""
    pytest.importorskip("muse.core.textdiff")
    status, _, body = get(site.hub, f"/alice/song/commit/{site.main}")
    assert status == 200
    page = body.decode()
    assert "@@ -1,2 +1,5 @@" in page
    rows = re.findall(
        r'<tr class="(\w+)"><td class="ln">(\d*)</td><td class="ln">(\d*)</td>'
        r'<td class="t">([^<]*)</td></tr>',
        page,
    )
    assert ("del", "2", "", "    return &#34;&lt;b&gt;hi&lt;/b&gt;&#34;") in rows
    assert ("add", "", "2", "    return &#34;&lt;b&gt;hello&lt;/b&gt;&#34;") in rows
    assert ("add", "", "5", "print(hello())") in rows
    assert ("ctx", "1", "1", "def hello():") in rows
    assert '<span class="add">+4</span> <span class="del">&minus;1</span>' in page


def test_private_repository_is_404_until_signed_in(site: Site) -> None:
    for path in (
        "/alice/secret",
        "/alice/secret/blob/main/hidden.txt",
        "/alice/secret/raw/main/hidden.txt",
        "/alice/nothing",
    ):
        status, headers, body = get(site.hub, path)
        assert status == 404 and headers["content-type"].startswith("text/html"), path
        assert b"repo_not_found" in body and b"classified" not in body
        # an API client gets the API's JSON answer, unchanged
        for accept in ("application/json", "*/*", ""):
            status, headers, body = get(site.hub, path, {"Accept": accept})
            assert status == 404 and headers["content-type"] == "application/json"
            assert b'"error":"repo_not_found"' in body
    status, _, body = get(
        site.hub, "/alice/secret/raw/main/hidden.txt", {"Authorization": f"Bearer {site.token}"}
    )
    assert status == 200 and body == b"classified\n"


def test_sign_in_gives_a_safe_session_cookie(site: Site) -> None:
    status, headers, body = get(site.hub, "/login")
    assert status == 200
    csrf_cookie = re.search(r"muse_csrf=([^;]+)", headers["set-cookie"]).group(1)  # type: ignore[union-attr]
    form_csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()  # type: ignore[union-attr]
    assert form_csrf == csrf_cookie

    def post(
        form: str, cookie: str, origin: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        h = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": cookie,
            "Content-Length": str(len(form)),
        }
        if origin:
            h["Origin"] = origin
        conn = http.client.HTTPConnection("127.0.0.1", site.hub.port, timeout=30)
        conn.request("POST", "/login", body=form, headers={"Accept": "text/html", **h})
        r = conn.getresponse()
        out = r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        conn.close()
        return out

    from urllib.parse import quote

    good = f"csrf={form_csrf}&next=/alice/secret&token={quote(site.token)}"
    # without the CSRF cookie, or from another site: refused
    assert post(good, "")[0] == 403
    assert post(good, f"muse_csrf={csrf_cookie}", "http://evil.invalid")[0] == 403
    # a wrong token: 401 and the form again
    status, _, body = post(f"csrf={form_csrf}&token=mh_wrong", f"muse_csrf={csrf_cookie}")
    assert status == 401 and b"invalid token" in body
    status, headers, _ = post(good, f"muse_csrf={csrf_cookie}", site.hub.url)
    assert status == 303 and headers["location"] == "/alice/secret"
    cookie = headers["set-cookie"]
    assert "muse_session=" in cookie and site.token not in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie  # plain http on loopback; set on https
    session = re.search(r"muse_session=([^;]+)", cookie).group(1)  # type: ignore[union-attr]
    status, _, body = get(site.hub, "/alice/secret", {"Cookie": f"muse_session={session}"})
    assert status == 200 and b"hidden.txt" in body and b"Signed in as" in body
    # a forged cookie is anonymous
    status, _, _ = get(site.hub, "/alice/secret", {"Cookie": f"muse_session={session[:-2]}xx"})
    assert status == 404


def test_hostile_page_paths_are_4xx(site: Site) -> None:
    """Path traversal, NUL, huge paths, bad refs and odd encodings: 4xx, never 500."""
    paths = [
        "/alice/song/blob/main/../../secret_key",
        "/alice/song/blob/main/%2e%2e/%2e%2e/etc/passwd",
        "/alice/song/raw/main/src/%00",
        "/alice/song/tree/%00/x",
        "/alice/song/tree/" + "a/" * 3000,
        "/alice/song/blob/main/" + "x" * 10000,
        "/alice/song/commits/nope",
        "/alice/song/commits/main/extra",
        "/alice/song/commit/" + "0" * 64,
        "/alice/song/commit/%ff%fe",
        "/alice/song/compare/main",
        "/alice/song/compare/...",
        "/alice/song/compare/main...nope",
        "/alice/song/raw/main/src",
        "/alice/song/blob/main/",
        "/alice/song/blob/main/src/main.py/x",
        "/%00/song",
        "/alice/%ed%a0%80",
        "/alice/song/tree/%ed%a0%80",
        "/alice/song/commits/main?page=99999999999",
        "/alice/song/commits/main?page=-1",
        "/login?next=//evil.invalid",
    ]
    for path in paths:
        for accept in ("text/html", "application/json"):
            status, _, _ = get(site.hub, path, {"Accept": accept})
            assert 200 <= status < 500, (path, status)
            if "login" not in path:
                assert status >= 400, (path, status)
    _, _, body = get(site.hub, "/login?next=//evil.invalid")
    assert b'value="//evil' not in body
    assert not site.hub.unhandled_errors()


def test_static_stylesheet(site: Site) -> None:
    status, headers, body = get(site.hub, "/")
    css = re.search(rb'href="(/static/web\.css\?v=[0-9a-f]+)"', body).group(1).decode()  # type: ignore[union-attr]
    status, headers, body = get(site.hub, css)
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert b".highlight" in body and b"header.top" in body


def test_pages_on_postgres_and_s3(s3_hub: Hub, tmp_path: Path) -> None:
    """The same pages from PostgreSQL and an S3 store (SeaweedFS): packs are fetched into the
    cache on first use, chunked files stream from there."""
    s = seed_site(s3_hub, tmp_path)
    assert b'href="/alice/secret"' not in get(s3_hub, "/")[2]
    assert get(s3_hub, "/alice/secret")[0] == 404
    status, _, body = get(s3_hub, "/alice/song/blob/feature/x/src/main.py")
    assert status == 200 and b"print" in body
    status, _, body = get(s3_hub, "/alice/song/raw/main/data/big.bin", {"Range": "bytes=5-300004"})
    assert status == 206 and body == big_bytes()[5:300005]
    status, _, body = get(s3_hub, "/alice/song/commits/main")
    assert status == 200 and body.index(b"louder hello") < body.index(b"first take")
    status, _, body = get(s3_hub, f"/alice/song/commit/{s.main}")
    assert status == 200 and b"Binary file" in body
