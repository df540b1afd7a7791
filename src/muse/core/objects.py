"""Muse objects (blobs, trees, commits, chunk lists, tags), their canonical encodings and ids.

An id is SHA-256 over a typed header (``b"<kind> <length>\\0"``) and the body, so a blob can
never be read as a tree and the same content always gets the same id. Every body has exactly
one valid encoding; decoders refuse anything else, so ids cannot be forged by re-encoding.
The byte layouts are specified in docs/format.md, with test vectors.
"""

from __future__ import annotations

import bisect
import hashlib
import operator
from typing import Any, NamedTuple

from muse.core.record import Frozen

BLOB = 1
TREE = 2
COMMIT = 3
CHUNKS = 4  # a large file: the list of its content-defined chunks (each a blob)
TAG = 5  # an annotated tag: a name, a tagger and a message for one object
KIND_NAMES = {BLOB: "blob", TREE: "tree", COMMIT: "commit", CHUNKS: "chunks", TAG: "tag"}
KIND_CODES = {name: code for code, name in KIND_NAMES.items()}
ID_LEN = 32
HEX_LEN = 64

# Tree entry modes: one byte each.
MODE_FILE = 1
MODE_EXEC = 2
MODE_LINK = 3
MODE_TREE = 4
MODE_CHUNKED = 5  # a regular file of CHUNKED_MIN bytes or more: the id names a CHUNKS object
MODE_CHUNKED_EXEC = 6  # the same, executable
MODES = frozenset({MODE_FILE, MODE_EXEC, MODE_LINK, MODE_TREE, MODE_CHUNKED, MODE_CHUNKED_EXEC})
MODE_NAMES = {
    MODE_FILE: "file",
    MODE_EXEC: "exec",
    MODE_LINK: "link",
    MODE_TREE: "tree",
    MODE_CHUNKED: "chunked",
    MODE_CHUNKED_EXEC: "chunked-exec",
}
CHUNKED_MODES = frozenset({MODE_CHUNKED, MODE_CHUNKED_EXEC})
EXEC_MODES = frozenset({MODE_EXEC, MODE_CHUNKED_EXEC})
#: The kind of object a tree entry of each mode names.
MODE_KIND = {
    MODE_FILE: BLOB,
    MODE_EXEC: BLOB,
    MODE_LINK: BLOB,
    MODE_TREE: TREE,
    MODE_CHUNKED: CHUNKS,
    MODE_CHUNKED_EXEC: CHUNKS,
}

#: Regular files of at least this many bytes are stored as chunk lists (docs/format.md 1.4).
CHUNKED_MIN = 1 << 20
#: No chunk is longer than this (the chunker's maximum).
CHUNK_MAX = 256 << 10


def file_mode(executable: bool, size: int) -> int:
    """The tree mode of a regular file: chunked from CHUNKED_MIN bytes on."""
    if size >= CHUNKED_MIN:
        return MODE_CHUNKED_EXEC if executable else MODE_CHUNKED
    return MODE_EXEC if executable else MODE_FILE


_HEX_CHARS = frozenset("0123456789abcdef")


def _is_hex64(text: str) -> bool:
    # str methods, not a regex: compiling one at import costs every command start-up.
    return len(text) == HEX_LEN and _HEX_CHARS.issuperset(text)


class ObjectFormatError(ValueError):
    """A body that is not the canonical encoding of an object of its kind."""


def header(kind: int, length: int) -> bytes:
    """The typed header hashed before the body."""
    try:
        name = KIND_NAMES[kind]
    except KeyError:
        raise ObjectFormatError(f"unknown object kind {kind}") from None
    return b"%s %d\0" % (name.encode(), length)


def object_id(kind: int, body: bytes | bytearray | memoryview) -> bytes:
    """The 32-byte id of an object."""
    h = hashlib.sha256(header(kind, len(body)))
    h.update(body)
    return h.digest()


def from_hex(text: str) -> bytes:
    """Parse a full 64-character lower-case hex id; raises ValueError with a clear message."""
    if not isinstance(text, str) or not _is_hex64(text):
        raise ValueError(f"not an object id (64 lower-case hex digits): {text!r}")
    return bytes.fromhex(text)


# --------------------------------------------------------------------------------------- trees


class TreeEntry(NamedTuple):
    name: str
    mode: int
    id: bytes

    @property
    def is_tree(self) -> bool:
        return self.mode == MODE_TREE


def check_entry_name(name: str) -> None:
    """The rules every tree entry name obeys (path safety beyond this is the checkout's job)."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise ObjectFormatError(f"invalid tree entry name {name!r}")


def encode_tree(
    entries: list[TreeEntry] | list[tuple[str, int, bytes]], *, checked: bool = False
) -> bytes:
    """Encode entries (any order) canonically: sorted by UTF-8 name, ids in one section.

    Layout: n (u32 big-endian) | n mode bytes | n ids of 32 bytes | n names, each NUL-terminated.
    Keeping ids contiguous lets a receiver collect the references of a tree with one slice.

    ``checked=True`` is for entries whose names, modes and ids are already known valid and
    unique (a working-tree scan, a tree being edited): the same bytes without the checks.
    Python orders str by code point, which is UTF-8 byte order.
    """
    if checked:
        ents = sorted(entries)
        return b"".join(
            [
                len(ents).to_bytes(4, "big"),
                bytes([e[1] for e in ents]),
                b"".join([e[2] for e in ents]),
                b"".join([e[0].encode() + b"\0" for e in ents]),
            ]
        )
    items = sorted(((e[0].encode("utf-8"), e[1], e[2]) for e in entries), key=lambda t: t[0])
    n = len(items)
    prev = None
    for name_b, mode, oid in items:
        if name_b == prev:
            raise ObjectFormatError(f"duplicate tree entry name {name_b.decode()!r}")
        prev = name_b
        check_entry_name(name_b.decode("utf-8"))
        if mode not in MODES:
            raise ObjectFormatError(f"invalid mode {mode} for {name_b.decode()!r}")
        if len(oid) != ID_LEN:
            raise ObjectFormatError("tree entry id must be 32 bytes")
    parts = [
        n.to_bytes(4, "big"),
        bytes(mode for _, mode, _ in items),
        b"".join(oid for _, _, oid in items),
    ]
    parts.extend(name_b + b"\0" for name_b, _, _ in items)
    return b"".join(parts)


def tree_refs(body: bytes | memoryview) -> tuple[bytes, bytes]:
    """(modes, ids) of a tree without decoding names: the fast path for connectivity checks.

    ``ids[32*i:32*i+32]`` is the id of entry i, ``modes[i]`` its mode. Only the length of the
    fixed sections is checked here; use decode_tree for full validation.
    """
    if len(body) < 4:
        raise ObjectFormatError("tree too short")
    n = int.from_bytes(body[:4], "big")
    end = 4 + 33 * n
    if len(body) < end + 2 * n:
        raise ObjectFormatError("tree truncated")
    return bytes(body[4 : 4 + n]), bytes(body[4 + n : end])


def decode_tree(body: bytes | memoryview) -> list[TreeEntry]:
    """Decode and fully validate a tree body; refuses any non-canonical encoding."""
    body = bytes(body)
    modes, ids = tree_refs(body)
    n = len(modes)
    raw_names = body[4 + 33 * n :].split(b"\0")
    if len(raw_names) != n + 1 or raw_names[-1] != b"":
        raise ObjectFormatError("tree names section malformed")
    raw_names.pop()
    for i in range(1, n):
        if not raw_names[i - 1] < raw_names[i]:
            raise ObjectFormatError("tree entries not strictly sorted by name")
    entries = []
    for i, name_b in enumerate(raw_names):
        try:
            name = name_b.decode("utf-8")
        except UnicodeDecodeError:
            raise ObjectFormatError("tree entry name is not UTF-8") from None
        check_entry_name(name)
        mode = modes[i]
        if mode not in MODES:
            raise ObjectFormatError(f"invalid mode {mode} in tree")
        entries.append(TreeEntry(name, mode, ids[32 * i : 32 * i + 32]))
    return entries


EMPTY_TREE = encode_tree([])
EMPTY_TREE_ID = object_id(TREE, EMPTY_TREE)


# ------------------------------------------------------------------------------------- commits


class Signature(Frozen):
    """Who and when: name, e-mail, seconds since the epoch (UTC) and the zone offset in minutes."""

    __slots__ = ("name", "email", "time", "tz_minutes")
    __match_args__ = ("name", "email", "time", "tz_minutes")

    name: str
    email: str
    time: int
    tz_minutes: int

    def __init__(self, name: str, email: str, time: int, tz_minutes: int = 0) -> None:
        _set = object.__setattr__
        _set(self, "name", name)
        _set(self, "email", email)
        _set(self, "time", time)
        _set(self, "tz_minutes", tz_minutes)

    def encode(self) -> str:
        sign = "+" if self.tz_minutes >= 0 else "-"
        off = abs(self.tz_minutes)
        return f"{self.name} <{self.email}> {self.time} {sign}{off // 60:02d}{off % 60:02d}"

    @classmethod
    def parse(cls, text: str) -> Signature:
        m = _sig_re().fullmatch(text)
        if not m:
            raise ObjectFormatError(f"malformed signature {text!r}")
        name, email, when, sign, hh, mm = m.groups()
        tz = int(hh) * 60 + int(mm)
        sig = cls(name, email, int(when), -tz if sign == "-" else tz)
        if sig.encode() != text:
            raise ObjectFormatError(f"non-canonical signature {text!r}")
        return sig


_SIG_PATTERN = r"([^<>\n]*) <([^<>\n]*)> (0|-?[1-9][0-9]*) ([+-])([0-9]{2})([0-5][0-9])"
_sig_compiled: Any = None


def _sig_re() -> Any:
    """The signature pattern, compiled on first use (not at import: start-up time)."""
    global _sig_compiled
    if _sig_compiled is None:
        import re

        _sig_compiled = re.compile(_SIG_PATTERN)
    return _sig_compiled


def check_identity(name: str, email: str) -> None:
    for part in (name, email):
        if "<" in part or ">" in part or "\n" in part:
            raise ValueError(f"a name or e-mail may not contain '<', '>' or a newline: {part!r}")
    if name != name.strip():
        raise ValueError(f"a name may not start or end with spaces: {name!r}")


class Commit(Frozen):
    """A snapshot (the root tree), its parents in order, who made it and why."""

    __slots__ = ("tree", "parents", "author", "committer", "message")
    __match_args__ = ("tree", "parents", "author", "committer", "message")

    tree: bytes
    parents: tuple[bytes, ...]
    author: Signature
    committer: Signature
    message: str

    def __init__(
        self,
        tree: bytes,
        parents: tuple[bytes, ...],
        author: Signature,
        committer: Signature,
        message: str,
    ) -> None:
        _set = object.__setattr__
        _set(self, "tree", tree)
        _set(self, "parents", parents)
        _set(self, "author", author)
        _set(self, "committer", committer)
        _set(self, "message", message)

    def encode(self) -> bytes:
        check_identity(self.author.name, self.author.email)
        check_identity(self.committer.name, self.committer.email)
        lines = [f"tree {self.tree.hex()}"]
        lines.extend(f"parent {p.hex()}" for p in self.parents)
        lines.append(f"author {self.author.encode()}")
        lines.append(f"committer {self.committer.encode()}")
        return ("\n".join(lines) + "\n\n" + self.message).encode("utf-8")

    @property
    def id(self) -> bytes:
        return object_id(COMMIT, self.encode())


def decode_commit(body: bytes | memoryview) -> Commit:
    """Decode and validate a commit body; refuses any non-canonical encoding."""
    raw = bytes(body)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ObjectFormatError("commit is not UTF-8") from None
    head, sep, message = text.partition("\n\n")
    if not sep:
        raise ObjectFormatError("commit has no blank line before the message")
    lines = head.split("\n")
    if len(lines) < 3 or not lines[0].startswith("tree "):
        raise ObjectFormatError("commit must start with a tree line")
    try:
        tree = from_hex(lines[0][5:])
        parents = []
        i = 1
        while i < len(lines) and lines[i].startswith("parent "):
            parents.append(from_hex(lines[i][7:]))
            i += 1
    except ValueError as e:
        raise ObjectFormatError(str(e)) from None
    if len(lines) != i + 2:
        raise ObjectFormatError("commit must have exactly one author and one committer line")
    if not lines[i].startswith("author ") or not lines[i + 1].startswith("committer "):
        raise ObjectFormatError("commit author/committer lines malformed")
    commit = Commit(
        tree,
        tuple(parents),
        Signature.parse(lines[i][7:]),
        Signature.parse(lines[i + 1][10:]),
        message,
    )
    try:
        canonical = commit.encode()
    except ValueError as e:  # an identity encode() refuses (spaces around a name, ...)
        raise ObjectFormatError(f"invalid commit identity: {e}") from None
    if canonical != raw:
        raise ObjectFormatError("commit is not canonically encoded")
    return commit


def commit_refs(body: bytes | memoryview) -> tuple[bytes, list[bytes]]:
    """(tree, parents) of a commit body, parsed only as far as needed (fast path)."""
    raw = bytes(body)
    end = raw.find(b"\n\n")
    if end < 0 or not raw.startswith(b"tree "):
        raise ObjectFormatError("malformed commit")
    lines = raw[:end].split(b"\n")
    try:
        tree = bytes.fromhex(lines[0][5:].decode())
        parents = [bytes.fromhex(ln[7:].decode()) for ln in lines[1:] if ln.startswith(b"parent ")]
    except ValueError:
        raise ObjectFormatError("malformed commit ids") from None
    if len(tree) != ID_LEN or any(len(p) != ID_LEN for p in parents):
        raise ObjectFormatError("malformed commit ids")
    return tree, parents


# ------------------------------------------------------------------------- chunk lists
# size u64 | n u32 | n x 32-byte blob ids | n x u32 lengths (all big-endian), docs/format.md.


def encode_chunks(ids: list[bytes], lengths: list[int]) -> bytes:
    """The body of a CHUNKS object: a file as its chunks (blob ids) in order."""
    import struct

    body = b"".join(
        [
            struct.pack(">QI", sum(lengths), len(ids)),
            *ids,
            struct.pack(f">{len(lengths)}I", *lengths),
        ]
    )
    check_chunks(body)
    return body


def decode_chunks(body: bytes | memoryview) -> tuple[int, bytes, list[int]]:
    """(file size, ids section (n x 32 bytes), lengths) of a valid CHUNKS body."""
    import struct

    body = bytes(body)
    check_chunks(body)
    n = int.from_bytes(body[8:12], "big")
    ids = body[12 : 12 + 32 * n]
    lengths = list(struct.unpack_from(f">{n}I", body, 12 + 32 * n))
    return int.from_bytes(body[:8], "big"), ids, lengths


def chunks_refs(body: bytes | memoryview) -> bytes:
    """The ids section of a CHUNKS body (n x 32 bytes), structure checked as far as needed."""
    if len(body) < 12:
        raise ObjectFormatError("chunk list too short")
    n = int.from_bytes(body[8:12], "big")
    if len(body) != 12 + 36 * n:
        raise ObjectFormatError("chunk list length does not match its count")
    return bytes(body[12 : 12 + 32 * n])


def check_chunks(body: bytes | memoryview) -> None:
    """Refuse a CHUNKS body that is not canonical: n >= 1, every length in 1..CHUNK_MAX,
    the lengths summing to the size, the size at least CHUNKED_MIN."""
    import struct

    chunks_refs(body)
    n = int.from_bytes(body[8:12], "big")
    if n == 0:
        raise ObjectFormatError("chunk list without chunks")
    lengths = struct.unpack_from(f">{n}I", body, 12 + 32 * n)
    if min(lengths) < 1 or max(lengths) > CHUNK_MAX:
        raise ObjectFormatError(f"chunk length outside 1..{CHUNK_MAX}")
    size = int.from_bytes(body[:8], "big")
    if sum(lengths) != size:
        raise ObjectFormatError("chunk lengths do not add up to the file size")
    if size < CHUNKED_MIN:
        raise ObjectFormatError(f"a chunked file has at least {CHUNKED_MIN} bytes")


# ------------------------------------------------------------------------- annotated tags
#: What an annotated tag may name (a chunk list is part of a file, never tagged on its own).
TAG_TARGET_KINDS = frozenset({COMMIT, TREE, BLOB, TAG})


class Tag(Frozen):
    """An annotated tag: the object it names and that object's kind, its name, who made it
    and why. Kept as an object (not only a ref) so the message and tagger travel with it."""

    __slots__ = ("target", "target_kind", "name", "tagger", "message")
    __match_args__ = ("target", "target_kind", "name", "tagger", "message")

    target: bytes
    target_kind: int
    name: str
    tagger: Signature
    message: str

    def __init__(
        self, target: bytes, target_kind: int, name: str, tagger: Signature, message: str
    ) -> None:
        _set = object.__setattr__
        _set(self, "target", target)
        _set(self, "target_kind", target_kind)
        _set(self, "name", name)
        _set(self, "tagger", tagger)
        _set(self, "message", message)

    def encode(self) -> bytes:
        if len(self.target) != ID_LEN:
            raise ValueError("a tag names a 32-byte id")
        if self.target_kind not in TAG_TARGET_KINDS:
            raise ValueError(f"a tag cannot name a {KIND_NAMES.get(self.target_kind, '?')}")
        check_tag_name(self.name)
        check_identity(self.tagger.name, self.tagger.email)
        head = (
            f"object {self.target.hex()}\ntype {KIND_NAMES[self.target_kind]}\n"
            f"tag {self.name}\ntagger {self.tagger.encode()}\n\n"
        )
        return (head + self.message).encode("utf-8")

    @property
    def id(self) -> bytes:
        return object_id(TAG, self.encode())


def check_tag_name(name: str) -> None:
    """A tag's name is what follows refs/tags/ in a valid ref name."""
    from muse.core.refnames import TAGS, RefNameError, check_ref_name

    try:
        check_ref_name(TAGS + name)
    except RefNameError as e:
        raise ValueError(f"invalid tag name {name!r}: {e}") from None


def decode_tag(body: bytes | memoryview) -> Tag:
    """Decode and validate a tag body; refuses any non-canonical encoding."""
    raw = bytes(body)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ObjectFormatError("tag is not UTF-8") from None
    head, sep, message = text.partition("\n\n")
    lines = head.split("\n")
    keys = ("object ", "type ", "tag ", "tagger ")
    if not sep or len(lines) != 4 or not all(map(str.startswith, lines, keys)):
        raise ObjectFormatError("tag must have object, type, tag and tagger lines, a blank line")
    try:
        target = from_hex(lines[0][7:])
    except ValueError as e:
        raise ObjectFormatError(str(e)) from None
    kind = KIND_CODES.get(lines[1][5:])
    if kind not in TAG_TARGET_KINDS:
        raise ObjectFormatError(f"a tag cannot name an object of type {lines[1][5:]!r}")
    tag = Tag(target, kind, lines[2][4:], Signature.parse(lines[3][7:]), message)
    try:
        canonical = tag.encode()
    except ValueError as e:  # a name or an identity encode() refuses
        raise ObjectFormatError(f"invalid tag: {e}") from None
    if canonical != raw:
        raise ObjectFormatError("tag is not canonically encoded")
    return tag


def tag_refs(body: bytes | memoryview) -> tuple[bytes, int]:
    """(target id, target kind) of a tag body, parsed only as far as needed (fast path)."""
    raw = bytes(body[:200])
    lines = raw.split(b"\n", 2)
    if len(lines) < 3 or not lines[0].startswith(b"object ") or not lines[1].startswith(b"type "):
        raise ObjectFormatError("malformed tag")
    try:
        target = from_hex(lines[0][7:].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise ObjectFormatError("malformed tag target") from None
    kind = KIND_CODES.get(lines[1][5:].decode("ascii", "replace"))
    if kind not in TAG_TARGET_KINDS:
        raise ObjectFormatError("malformed tag type")
    return target, kind


def validate(kind: int, body: bytes | memoryview) -> None:
    """Check that body is a canonical object of kind (blobs are any bytes)."""
    if kind == BLOB:
        return
    if kind == TREE:
        decode_tree(body)
    elif kind == COMMIT:
        decode_commit(body)
    elif kind == CHUNKS:
        check_chunks(body)
    elif kind == TAG:
        decode_tag(body)
    else:
        raise ObjectFormatError(f"unknown object kind {kind}")


# ------------------------------------------------------------------------ fast validation
_MODE_BYTES = bytes(sorted(MODES))


def check_tree(body: bytes | memoryview) -> None:
    """Validate a tree body with whole-buffer operations; raises ObjectFormatError exactly
    when :func:`decode_tree` (the reference, entry by entry) would. What receivers and fsck
    use: a push at XL carries 1.5 million tree entries."""
    body = bytes(body)
    modes, _ids = tree_refs(body)
    n = len(modes)
    names_at = 4 + 33 * n
    if modes.translate(None, _MODE_BYTES):
        raise ObjectFormatError("invalid mode in tree")
    section = body[names_at:]
    names = section.split(b"\0")
    if len(names) != n + 1 or names[-1] != b"":
        raise ObjectFormatError("tree names section malformed")
    names.pop()
    if n == 0:
        return
    if b"/" in section:
        raise ObjectFormatError("tree entry name contains '/'")
    if section.startswith(b"\0") or b"\0\0" in section:
        raise ObjectFormatError("empty tree entry name")
    if any(map(operator.ge, names, names[1:])):
        raise ObjectFormatError("tree entries not strictly sorted by name")
    i = bisect.bisect_left(names, b".")
    if b"." in names[i : i + 2] or b".." in names[i : i + 2]:
        raise ObjectFormatError("invalid tree entry name '.' or '..'")
    try:
        section.decode("utf-8")
    except UnicodeDecodeError:
        raise ObjectFormatError("tree entry name is not UTF-8") from None


_SIG = rb"([^<>\n]*) <[^<>\n]*> (?:0|-?[1-9][0-9]*) (?:\+|-(?!0000))[0-9]{2}[0-5][0-9]\n"
_commit_re: Any = None


def canonical_commit(body: bytes) -> bool:
    """True only for a commit objects.decode_commit accepts (one regex instead of decoding,
    re-encoding and comparing: 5,000 commits at XL). False means "not proven": the caller
    then asks decode_commit, so verdicts are exactly decode_commit's."""
    global _commit_re
    if _commit_re is None:
        import re  # compiled on first use, not at every start-up

        _commit_re = re.compile(
            rb"tree [0-9a-f]{64}\n(?:parent [0-9a-f]{64}\n)*author " + _SIG + b"committer " + _SIG
        )
    m = _commit_re.match(body)
    if m is None or body[m.end() : m.end() + 1] != b"\n":
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    for name in m.group(1, 2):
        text = name.decode("utf-8")  # bounded by ASCII: whole characters
        if text != text.strip():
            return False
    return True


def commit_info(body: bytes) -> tuple[bytes, list[bytes], int]:
    """(tree, parents, committer time) of a commit body, parsed only as far as needed."""
    tree, parents = commit_refs(body)
    end = body.find(b"\n\n")
    i = body.rfind(b"\ncommitter ", 0, end)
    try:
        line = body[i + 11 : body.index(b"\n", i + 1)] if i >= 0 else b""
        when = int(line.rsplit(b" ", 2)[-2]) if line else 0
    except (ValueError, IndexError):
        when = 0
    return tree, parents, when


def check_object(kind: int, body: bytes | memoryview) -> None:
    """:func:`validate` with the fast paths: the same verdicts, whole-buffer speed."""
    if kind == TREE:
        check_tree(body)
    elif kind == COMMIT:
        raw = bytes(body)
        if not canonical_commit(raw):
            decode_commit(raw)  # refuses it (or, in doubt, gives the exact verdict)
    elif kind == CHUNKS:
        check_chunks(body)
    elif kind == TAG:
        decode_tag(body)
    elif kind != BLOB:
        raise ObjectFormatError(f"unknown object kind {kind}")
