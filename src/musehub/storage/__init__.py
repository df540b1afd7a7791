"""Object storage: where packs and bundles rest. One interface, two backends.

- ``local``: a directory (``<data_dir>/objects``); every write lands in a temp file that is
  renamed into place. Its presigned URLs point at the hub itself (``/_storage/{key}``,
  HMAC-signed, one method, one key, until an expiry; see ``musehub.storage.signing``).
- ``s3``: any S3-compatible store (SeaweedFS, MinIO, R2, AWS) through boto3; presigned URLs
  are the store's own, so the bytes never pass through the hub.

Keys are relative paths of ``[A-Za-z0-9._-]`` components separated by ``/`` (no ``..``, no
leading ``/``); :func:`check_key` enforces it. By convention a repository's objects live under
``repos/<repo id>/`` (deleting a repository deletes that prefix).

All methods are synchronous and may block on I/O: async routes call them through
``HubState.run`` (a thread pool). A missing key raises :class:`NotFound`; a store that cannot
be reached raises :class:`StorageUnavailable` (the app answers 503).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from musehub.config import Settings

_KEY_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*")
MAX_KEY_LEN = 512


class StorageError(Exception):
    """Any storage failure."""


class NotFound(StorageError, KeyError):
    """The key does not exist."""

    def __str__(self) -> str:
        return f"no such key: {self.args[0] if self.args else '?'}"


class StorageUnavailable(StorageError):
    """The store could not be reached or refused the operation."""


class InvalidKey(StorageError, ValueError):
    """A key that is not a safe relative path."""


def check_key(key: str) -> str:
    if (
        not isinstance(key, str)
        or len(key) > MAX_KEY_LEN
        or not _KEY_RE.fullmatch(key)
        or ".." in key.split("/")
    ):
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


class Multipart(ABC):
    """One multipart upload: parts numbered from 1 (each but the last at least 5 MiB on S3),
    which become the object only at :meth:`complete`. Parts may be sent from several threads."""

    @abstractmethod
    def upload_part(self, number: int, data: bytes) -> None: ...

    @abstractmethod
    def complete(self) -> None:
        """The parts sent, in number order, become the object at the key."""

    @abstractmethod
    def abort(self) -> None:
        """Drop the parts; the key is left as it was. Never raises."""


class Storage(ABC):
    """The operations the hub needs from object storage, and what the backend can do.

    Capabilities are declared, not probed: :attr:`local_files` says the objects are plain
    files on this machine (:meth:`local_path` answers, :meth:`put_immutable` is a hard link),
    which lets the hub verify a bundle in place and store a pack without copying it.
    """

    name: str
    #: The objects are files on this machine's file system, each replaced by a rename and
    #: never written in place: a key's file may be hard-linked, and storing is cheap.
    local_files: bool = False

    def local_path(self, key: str) -> str | None:
        """The file holding ``key`` when :attr:`local_files` (whether or not it exists);
        None for a backend reached over the network."""
        return None

    def put_immutable(self, key: str, path: str) -> None:
        """Store the finished file at ``path`` under ``key``; the caller never modifies
        ``path`` again, so a backend may keep the very file (a hard link) instead of a copy."""
        self.put_file(key, path)

    @abstractmethod
    def put_file(self, key: str, path: str) -> None:
        """Store the file at ``path`` under ``key`` (replacing it), atomically."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (small objects)."""

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A stream of the object's bytes (``.read(n)``, ``.close()``); raises NotFound."""

    @abstractmethod
    def download_to(self, key: str, path: str) -> None:
        """Copy the object into the file ``path`` (written to a temp file, then renamed)."""

    def copy(self, src_key: str, dst_key: str) -> None:
        """Store a copy of ``src_key`` under ``dst_key`` (replacing it); raises NotFound.

        The copy is independent of the source: writing ``src_key`` later (say, through a
        presigned PUT URL still valid) does not change ``dst_key``. Backends override this
        with a server-side copy; this fallback goes through a temp file.
        """
        import os
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix="musehub-copy-")
        os.close(fd)
        try:
            self.download_to(src_key, tmp)
            self.put_file(dst_key, tmp)
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass

    def start_multipart(self, key: str) -> Multipart | None:
        """A multipart upload to ``key`` (parts sent while the rest is still being read), or
        None where storing a finished file is as cheap (the local backend links it)."""
        return None

    def abort_stale_multiparts(self, prefix: str, older_than_s: float) -> int:
        """Abort multipart uploads under ``prefix`` begun more than ``older_than_s`` ago (a
        hub that died mid-push leaves their parts, which no key lists); returns how many."""
        return 0

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes; raises NotFound."""

    def binds_checksums(self) -> bool:
        """Whether :meth:`presign_put` with ``sha256`` makes a URL that can only ever PUT a
        body of that SHA-256 (the store checks the signed checksum header). Then the upload
        key holds the same bytes after verification as during it, whatever the client does
        with the URL, and the hub may keep the upload as the pack instead of copying it."""
        return False

    @abstractmethod
    def presign_put(
        self, key: str, expires_s: int, size: int | None = None, sha256: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        """A URL (and the headers to send with it) that lets anyone PUT this one key; with
        ``size``, a backend that can binds the URL to a body of exactly that many bytes, with
        ``sha256`` (a digest) when :meth:`binds_checksums`, to a body of that checksum."""

    @abstractmethod
    def presign_get(self, key: str, expires_s: int) -> str:
        """A URL that lets anyone GET this one key until it expires."""

    def presign_origin(self) -> str | None:
        """``scheme://host[:port]`` of the presigned URLs when they point away from the hub
        (told to clients so they open that connection while the hub prepares the bundle);
        None when presigned URLs are the hub's own."""
        return None

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix``, sorted."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix``; returns how many."""
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def check(self) -> None:  # noqa: B027 - optional hook, nothing to check by default
        """Raise StorageUnavailable if the store cannot be used (called at start-up)."""

    def health(self) -> None:
        """Raise StorageUnavailable if the store does not answer now; cheap and quick (one
        request with a short timeout), for ``/healthz``."""
        self.check()


def open_storage(settings: Settings) -> Storage:
    """The backend the settings name (boto3 is imported only for ``s3``)."""
    if settings.storage == "local":
        from musehub.storage.local import LocalStorage

        return LocalStorage(settings.storage_dir, settings.public_url, settings.secret_key)
    if settings.storage == "s3":
        from musehub.storage.s3 import S3Storage

        return S3Storage(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            public_endpoint_url=settings.s3_public_endpoint,
        )
    raise ValueError(f"unknown storage backend {settings.storage!r}")
