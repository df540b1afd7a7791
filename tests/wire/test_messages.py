"""wire/messages: what both sides build and parse, round trips and refusals with codes."""

from __future__ import annotations

import io

import pytest

from muse.wire import messages as M


def test_push_header_round_trip_and_refusals() -> None:
    ups = [M.update_json("refs/heads/main", None, b"\1" * 32, False)]
    body = M.encode_push_header(ups) + b"PACK"
    stream = io.BytesIO(body)
    assert M.read_push_header(stream) == [M.RefUpdate("refs/heads/main", None, b"\1" * 32)]
    assert stream.read() == b"PACK"
    for raw, code in [
        (b"\0\0", "bad_request"),
        (b"\0\0\0\x09{}", "bad_request"),
        ((M.MAX_HEADER_BYTES + 1).to_bytes(4, "big"), "bad_request"),
        (b"\0\0\0\x01\xff", "invalid_json"),
    ]:
        with pytest.raises(M.MessageError) as info:
            M.read_push_header(io.BytesIO(raw))
        assert info.value.code == code


@pytest.mark.parametrize(
    "doc,code",
    [
        ({}, "bad_request"),
        ({"updates": []}, "bad_request"),
        ({"updates": [{"ref": "main", "new": "00" * 32}]}, "invalid_ref_name"),
        ({"updates": [{"ref": "refs/heads/x", "new": "zz"}]}, "invalid_id"),
        ({"updates": [{"ref": "refs/heads/x"}]}, "bad_request"),
        ({"updates": [{"ref": "refs/heads/x", "new": "00" * 32, "force": 1}]}, "bad_request"),
        ({"updates": [{"ref": "refs/heads/x", "new": "00" * 32}] * 2}, "bad_request"),
        (
            {"updates": [{"ref": f"refs/heads/b{i}", "new": "00" * 32} for i in range(1001)]},
            "bad_request",
        ),
    ],
)
def test_bad_updates_name_their_code(doc: object, code: str) -> None:
    with pytest.raises(M.MessageError) as info:
        M.parse_updates(doc)
    assert info.value.code == code


def test_refs_document_round_trip_and_version() -> None:
    refs = {"refs/heads/main": b"\2" * 32}
    doc = M.encode_refs(refs, "main", {"stream_max_blobs": 7})
    got = M.decode_refs(doc)
    assert got.refs == refs and got.default_branch == "main"
    assert got.limits["stream_max_blobs"] == 7
    assert got.limits["stream_max_bytes"] == M.DEFAULT_LIMITS["stream_max_bytes"]
    with pytest.raises(M.MessageError) as info:
        M.decode_refs({**doc, "protocol": 2})
    assert info.value.code == "unsupported_protocol"
    for bad in ([], {"refs": []}, {"refs": {"refs/heads/x": "nothex"}}):
        with pytest.raises(M.MessageError) as info:
            M.decode_refs(bad)
        assert info.value.code == "bad_response"


def test_protocol_header_check() -> None:
    M.check_protocol(None)
    M.check_protocol("1")
    M.check_protocol(" 1 ")
    for bad in ("2", "", "1.0", "x" * 100):
        with pytest.raises(M.MessageError) as info:
            M.check_protocol(bad)
        assert info.value.code == "unsupported_protocol"


def test_hostile_json_is_invalid_json_not_a_crash() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    body = len(deep).to_bytes(4, "big") + deep
    with pytest.raises(M.MessageError) as info:
        M.read_push_header(io.BytesIO(body))
    assert info.value.code == "invalid_json"
    # a lone surrogate in a ref name (valid JSON, not a valid name)
    with pytest.raises(M.MessageError) as info:
        M.parse_updates({"updates": [{"ref": "refs/heads/\ud800", "new": "00" * 32}]})
    assert info.value.code == "invalid_ref_name"
