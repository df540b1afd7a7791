"""Fuzzing http11's response parser through a real socket pair.

Well-formed answers (any status, headers, framing by Content-Length, chunked encoding or the
connection's end, 1xx answers first, read in arbitrary pieces) must parse to exactly what was
sent; mutated ones (truncated, bytes flipped or inserted, framing fields replaced by arbitrary
text) and arbitrary bytes must either parse or raise the parser's own errors, ``BadResponse``
or ``RemoteDisconnected`` (both ``ConnectionError``): never IndexError, ValueError,
UnicodeDecodeError, nor a hang (the socket's timeout would turn one into TimeoutError, which
fails the test).
"""

from __future__ import annotations

import os
import socket
import tempfile
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from muse.client.http11 import CHUNK, BadResponse, Connection, RemoteDisconnected

# Hypothesis keeps caches (and patches for failing examples) in ./.hypothesis: not in the tree.
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "muse-hypothesis"))
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,  # nothing written into the working tree
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ALLOWED = (BadResponse, RemoteDisconnected)


def _exchange(data: bytes, method: str, sizes: list[int]) -> tuple[Any, bytes]:
    """Send ``data`` as the server's whole answer (then EOF), make one request on a Connection
    over the other end of a socket pair, read the body in pieces of ``sizes`` (cycled; 0 means
    readinto of 7 bytes, -1 means read() to the end). Returns (response, body)."""
    a, b = socket.socketpair()
    try:
        a.settimeout(5)
        b.sendall(data)
        b.shutdown(socket.SHUT_WR)
        conn = Connection("127.0.0.1", 9)
        conn.sock = a
        conn._fp = a.makefile("rb", buffering=CHUNK)
        try:
            resp = conn.request(method, "/x", {"X-Test": "1"}, None)
            parts: list[bytes] = []
            i = 0
            while True:
                n = sizes[i % len(sizes)] if sizes else -1
                i += 1
                if n == 0:
                    buf = bytearray(7)
                    got = resp.readinto(buf)
                    piece = bytes(buf[:got])
                else:
                    piece = resp.read(n)
                if not piece:
                    if n == -1 or resp.isclosed() or conn.sock is None:
                        break
                    if i > len(data) + 10:  # read(n>0) returned b"" yet not at the end
                        raise AssertionError("read() returned b'' before the body ended")
                    continue
                parts.append(piece)
            assert resp.read(10) == b""  # the end stays the end
            return resp, b"".join(parts)
        finally:
            conn.close()
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------------------- well-formed
_TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`|~"
_token = st.text(_TOKEN_CHARS, min_size=1, max_size=12)
_value = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=30
).map(str.strip)
_FRAMING = {"content-length", "transfer-encoding", "connection"}


@st.composite
def answers(draw: Any) -> tuple[bytes, dict[str, Any]]:
    """A well-formed answer and what parsing it must give."""
    status = draw(st.integers(200, 599).filter(lambda s: s not in (204, 304)))
    reason = draw(st.text("abcdefghij XYZ", max_size=20))
    names = draw(st.lists(_token.map(str.lower), max_size=6, unique=True))
    headers = {n: draw(_value) for n in names if n not in _FRAMING}
    body = draw(st.binary(max_size=3000))
    framing = draw(st.sampled_from(["length", "chunked", "close", "length-close"]))
    out = b""
    for _ in range(draw(st.integers(0, 2))):  # interim answers, skipped by the parser
        out += b"HTTP/1.1 100 Continue\r\nX-Interim: " + draw(_token).encode() + b"\r\n\r\n"
    version = b"HTTP/1.0" if framing == "close" and draw(st.booleans()) else b"HTTP/1.1"
    head = [b"%s %d %s" % (version, status, reason.encode())]
    head += [f"{_mixcase(draw, k)}: {v}".encode("latin-1") for k, v in headers.items()]
    if framing in ("length", "length-close"):
        head.append(b"Content-Length: %d" % len(body))
        if framing == "length-close":
            head.append(b"Connection: close")
        payload = body
    elif framing == "chunked":
        head.append(b"Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=8)))
        payload, prev = b"", 0
        for c in [*cuts, len(body)]:
            piece = body[prev:c]
            prev = c
            if not piece:
                continue
            size = (b"%x" if draw(st.booleans()) else b"%X") % len(piece)
            ext = draw(st.sampled_from([b"", b";a=b", b" ;x"]))
            payload += size + ext + b"\r\n" + piece + b"\r\n"
        payload += b"0\r\n"
        for t in draw(st.lists(_token, max_size=2)):
            payload += t.encode() + b": t\r\n"
        payload += b"\r\n"
    else:
        if version == b"HTTP/1.1":
            head.append(b"Connection: close")
        payload = body
    out += b"\r\n".join(head) + b"\r\n\r\n" + payload
    want = {"status": status, "reason": reason, "headers": headers, "body": body}
    want["will_close"] = framing in ("close", "length-close")
    return out, want


def _mixcase(draw: Any, name: str) -> str:
    return name.upper() if draw(st.booleans()) else name


_sizes = st.lists(st.sampled_from([-1, 0, 1, 2, 3, 5, 64, 1000, 1 << 20]), max_size=6)


@FUZZ
@given(answers(), _sizes)
def test_well_formed_answers_parse_exactly(
    answer: tuple[bytes, dict[str, Any]], sizes: list[int]
) -> None:
    data, want = answer
    resp, body = _exchange(data, "GET", sizes)
    assert resp.status == want["status"]
    assert resp.reason == want["reason"]
    for k, v in want["headers"].items():
        assert resp.getheader(k) == v and resp.getheader(k.upper()) == v
    assert body == want["body"]
    assert resp.will_close == want["will_close"]


# ---------------------------------------------------------------------------- mutated
_junk = st.one_of(
    st.binary(max_size=12),
    st.sampled_from(
        [b"-1", b"+5", b"0x10", b"1_0", b" 7 ", b"\xff\xfe", b"\r\n", b"\n", b":", b";",
         b"99999999999999999999999999", b"ffffffffffffffffffff", b"-ff", b"1e3", b"\x00"]
    ),
)  # fmt: skip


@st.composite
def mutated(draw: Any) -> bytes:
    data, _ = draw(answers())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "field"]))
        i = draw(st.integers(0, max(0, len(data))))
        if kind == "truncate":
            data = data[:i]
        elif kind == "flip" and data:
            i = min(i, len(data) - 1)
            data = data[:i] + bytes([draw(st.integers(0, 255))]) + data[i + 1 :]
        elif kind == "insert":
            data = data[:i] + draw(_junk) + data[i:]
        elif kind == "delete":
            data = data[:i] + data[i + draw(st.integers(1, 20)) :]
        else:  # replace the value of a framing field or the status code with junk
            for marker in (b"Content-Length: ", b"HTTP/1.1 ", b"\r\n\r\n", b"\r\n"):
                at = data.find(marker)
                if at >= 0 and draw(st.booleans()):
                    start = at + len(marker)
                    end = data.find(b"\r\n", start)
                    end = len(data) if end < 0 else end
                    data = data[:start] + draw(_junk) + data[end:]
                    break
    return data


def _must_parse_or_refuse(data: bytes, method: str, sizes: list[int]) -> None:
    try:
        _exchange(data, method, sizes)
    except ALLOWED:
        pass


@FUZZ
@given(mutated(), st.sampled_from(["GET", "HEAD", "POST"]), _sizes)
def test_mutated_answers_parse_or_raise_bad_response(
    data: bytes, method: str, sizes: list[int]
) -> None:
    _must_parse_or_refuse(data, method, sizes)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=400),
        st.builds(lambda tail: b"HTTP/1.1 " + tail, st.binary(max_size=300)),
        st.builds(
            lambda h, b: b"HTTP/1.1 200 OK\r\n" + h + b"\r\n\r\n" + b,
            st.binary(max_size=200),
            st.binary(max_size=200),
        ),
        st.builds(
            lambda c: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + c,
            st.binary(max_size=300),
        ),
    ),
    _sizes,
)
def test_arbitrary_bytes_parse_or_raise_bad_response(data: bytes, sizes: list[int]) -> None:
    _must_parse_or_refuse(data, "GET", sizes)


# ----------------------------------------------------------- framing fields, with an oracle
_numberish = st.one_of(
    st.text("0123456789", min_size=1, max_size=4),
    st.builds(  # what int() accepts and HTTP does not: signs, 0x, _, inner spaces
        "".join,
        st.tuples(
            st.sampled_from(["", "+", "-", " ", "0x", "0X", "\t"]),
            st.text("0123456789", min_size=1, max_size=3),
            st.sampled_from(["", "_0", " 1", ",5", "x", "\xb2", "L"]),
        ),
    ),
    st.text("0123456789abcdefABCDEF+-_ x,\t;=", max_size=8),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), max_size=6),
)


@FUZZ
@given(_numberish, st.binary(max_size=40), _sizes)
def test_content_length_is_plain_digits(cl: str, body: bytes, sizes: list[int]) -> None:
    """Content-Length is honoured only as ASCII digits; anything else is refused."""
    data = b"HTTP/1.1 200 OK\r\nContent-Length: " + cl.encode("latin-1") + b"\r\n\r\n" + body
    text = cl.strip(" \t")
    valid = text.isascii() and text.isdigit()
    if valid and int(text) <= len(body):
        assert _exchange(data, "GET", sizes)[1] == body[: int(text)]
        return
    try:
        _exchange(data, "GET", sizes)
    except BadResponse:
        return
    raise AssertionError(f"Content-Length {cl!r} over {len(body)} bytes was accepted")


@FUZZ
@given(_numberish, st.binary(max_size=40), _sizes)
def test_chunk_size_is_plain_hex(size: str, body: bytes, sizes: list[int]) -> None:
    """A chunk size is honoured only as hex digits (an extension after ';' is ignored)."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    data = head + size.encode("latin-1") + b"\r\n" + body + b"\r\n0\r\n\r\n"
    text = size.split(";", 1)[0].strip(" \t")
    valid = bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)
    if valid and int(text, 16) == len(body) > 0:
        assert _exchange(data, "GET", sizes)[1] == body
        return
    try:
        got = _exchange(data, "GET", sizes)[1]
    except BadResponse:
        return
    # a valid size that does not match the body can still frame a different, well-formed answer
    assert valid, f"chunk size {size!r} was accepted"
    assert len(got) == int(text, 16)


@FUZZ
@given(_numberish)
def test_status_is_three_digits(code: str) -> None:
    data = b"HTTP/1.1 " + code.encode("latin-1") + b" Why\r\nContent-Length: 0\r\n\r\n"
    first = code.split(" ", 1)[0]  # the rest is the reason
    valid = len(first) == 3 and first.isascii() and first.isdigit() and first[0] != "0"
    try:
        resp, _ = _exchange(data, "GET", [-1])
    except BadResponse:
        assert not valid
        return
    except RemoteDisconnected:
        assert valid and first[0] == "1"  # a 1xx answer is followed by nothing here
        return
    assert valid and resp.status == int(first)


def test_known_ambiguities_are_refused() -> None:
    """What int() would have accepted: signs, 0x, underscores, spaces inside, huge values."""
    for cl in (b"-1", b"+5", b"1_0", b"0x5", b"5, 5", b"\xb2", b"1" * 30):
        data = b"HTTP/1.1 200 OK\r\nContent-Length: " + cl + b"\r\n\r\nhello"
        _refused(data)
    for size in (b"-5", b"0x5", b"1_0", b"+5", b"", b"f" * 17):
        chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        _refused(chunked + size + b"\r\nhello\r\n0\r\n\r\n")
    for status in (b"2000", b"20", b"-20", b"+20", b"099", b"2_0"):
        _refused(b"HTTP/1.1 " + status + b" OK\r\nContent-Length: 0\r\n\r\n")
    _refused(b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
    _refused(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 70000 + b"\r\n")
    _refused(b"HTTP/1.x 200 OK\r\nContent-Length: 0\r\n\r\n")
    _refused(b"HTTP/1.\xb2 200 OK\r\nContent-Length: 0\r\n\r\n")  # a digit to str.isdigit


def _refused(data: bytes) -> None:
    try:
        _exchange(data, "GET", [-1])
    except BadResponse:
        return
    raise AssertionError(f"parsed {data[:80]!r}")
