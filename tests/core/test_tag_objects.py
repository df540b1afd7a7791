"""Annotated tag objects: the docs/format.md 1.5 vector, and every non-canonical form refused."""

from __future__ import annotations

import os
import re

import pytest

from muse.core.objects import (
    BLOB,
    CHUNKS,
    COMMIT,
    KIND_CODES,
    TAG,
    ObjectFormatError,
    Signature,
    Tag,
    check_object,
    decode_tag,
    object_id,
    tag_refs,
)

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "format.md")


def vectors() -> dict[str, tuple[int, bytes, bytes]]:
    """The vectors of docs/format.md by name (as test_format_vectors reads them)."""
    out = {}
    text = open(DOC, encoding="utf-8").read()
    for block in re.findall(r"```vector\n(.*?)```", text, re.S):
        f = dict(ln.split(": ", 1) for ln in block.strip().splitlines() if ": " in ln)
        out[f["name"]] = (
            KIND_CODES[f["kind"]],
            bytes.fromhex(f["body-hex"]),
            bytes.fromhex(f["id"]),
        )
    return out


ROOT = bytes.fromhex("5d091a93c16fecb2d194cd75f88446fc1e08cd963449dde1e99abeacf52fde85")
ADA = Signature("Ada Lovelace", "ada@example.org", 1704153600, 60)


def test_vector_is_what_the_encoder_produces() -> None:
    kind, body, oid = vectors()["annotated tag"]
    tag = Tag(ROOT, COMMIT, "v1.0", ADA, "first release\n")
    assert kind == TAG
    assert tag.encode() == body and tag.id == oid == object_id(TAG, body)
    assert decode_tag(body) == tag
    assert tag_refs(body) == (ROOT, COMMIT)


def _body(**over: str) -> bytes:
    parts = {
        "object": f"object {ROOT.hex()}\n",
        "type": "type commit\n",
        "tag": "tag v1.0\n",
        "tagger": "tagger Ada Lovelace <ada@example.org> 1704153600 +0100\n",
        "sep": "\n",
        "message": "first release\n",
    }
    parts.update(over)
    return "".join(parts.values()).encode()


@pytest.mark.parametrize(
    "over",
    [
        {"object": "object 5d09\n"},  # a short id
        {"object": f"object {ROOT.hex().upper()}\n"},  # upper-case hex
        {"type": "type chunks\n"},  # a chunk list is never tagged
        {"type": "type widget\n"},
        {"tag": "tag bad..name\n"},  # not a ref name
        {"tag": "tag \n"},
        {"tagger": ""},  # no tagger
        {"tagger": "tagger Ada <ada@example.org> 01704153600 +0100\n"},  # non-canonical time
        {"sep": ""},  # no blank line
        {"type": "type commit\nextra header\n"},
    ],
)
def test_malformed_tags_are_refused(over: dict[str, str]) -> None:
    body = _body(**over)
    with pytest.raises(ObjectFormatError):
        decode_tag(body)
    with pytest.raises(ObjectFormatError):
        check_object(TAG, body)


def test_encoder_refuses_what_the_decoder_would() -> None:
    with pytest.raises(ValueError):
        Tag(ROOT, CHUNKS, "v1", ADA, "").encode()
    with pytest.raises(ValueError):
        Tag(ROOT, BLOB, "a b", ADA, "").encode()
    assert decode_tag(Tag(ROOT, BLOB, "blob-tag", ADA, "").encode()).target_kind == BLOB
