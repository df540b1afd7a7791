"""What a file is for the browser: how a page shows it and how its raw bytes are served.

Repository content is hostile: a raw download must never render as a page of the hub's
origin. Only types a browser cannot run script in are served inline under their own type
(images but not SVG, audio, video, plain text); text of every other kind (HTML, SVG, XML,
JavaScript, ...) goes out as ``text/plain``, and anything else as an attachment of type
``application/octet-stream``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from musehub.web.objects import RepoReader

#: Images a page shows with <img> (SVG is left out: it is a document that can hold script).
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".ico": "image/x-icon",
}
#: Audio a page plays in an <audio> element.
AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
}
VIDEO_TYPES = {".mp4": "video/mp4", ".webm": "video/webm"}
#: How much of a file is looked at to decide whether it is text (git looks at 8000 bytes).
SNIFF_BYTES = 8000


@dataclass(frozen=True)
class Kind:
    """How a file is shown (``view``: text, image, audio, video, binary) and served."""

    view: str
    content_type: str
    inline: bool


def is_text(head: bytes) -> bool:
    """Git's rule: a NUL in the first bytes makes a file binary; else it must be UTF-8
    (a sequence cut at the end of the sample is allowed)."""
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3 and e.reason == "unexpected end of data"
    return True


def kind_of(name: str, head: bytes) -> Kind:
    """The view and the served type of a file called ``name`` starting with ``head``."""
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext in IMAGE_TYPES:
        return Kind("image", IMAGE_TYPES[ext], True)
    if ext in AUDIO_TYPES:
        return Kind("audio", AUDIO_TYPES[ext], True)
    if ext in VIDEO_TYPES:
        return Kind("video", VIDEO_TYPES[ext], True)
    if is_text(head):
        return Kind("text", "text/plain; charset=utf-8", True)
    return Kind("binary", "application/octet-stream", False)


def content_disposition(name: str, inline: bool) -> str:
    """RFC 6266: an ASCII fallback name and the exact one as RFC 5987 ``filename*``."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    how = "inline" if inline else "attachment"
    return f"{how}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


class FileStream(io.RawIOBase):
    """A seekable, read-only file over a stored file's chunks (for the audio tag readers),
    reading only the pieces asked for."""

    def __init__(self, reader: RepoReader, mode: int, oid: bytes, size: int) -> None:
        self.reader, self.mode, self.oid, self.size = reader, mode, oid, size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        end = min(self.size, self.pos + len(buffer))
        if end <= self.pos:
            return 0
        data = b"".join(self.reader.read_range(self.mode, self.oid, self.pos, end))
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def audio_duration(reader: RepoReader, mode: int, oid: bytes, size: int) -> float | None:
    """The length in seconds of a WAV, FLAC, MP3 or Ogg file, read from its headers
    (mutagen), or None when they cannot be read."""
    import mutagen

    try:
        audio = mutagen.File(io.BufferedReader(FileStream(reader, mode, oid, size), 65536))
    except Exception:  # noqa: BLE001 - a damaged or hostile file: no duration shown
        return None
    length = getattr(getattr(audio, "info", None), "length", None)
    return float(length) if isinstance(length, int | float) and length >= 0 else None
