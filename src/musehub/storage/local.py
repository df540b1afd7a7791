"""The ``local`` backend: objects are files under one directory, written atomically and
durably: a key's bytes and its directory entry reach the disk (fsync) before a write returns,
so a ref transaction committed after a push never names a pack a power cut could lose (an S3
PUT is durable when it returns; this is the same promise).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from typing import BinaryIO

from muse.core.lockfile import fsync_dir, fsync_file
from musehub.files import DIR_MODE, private_file
from musehub.storage import NotFound, Storage, StorageUnavailable, check_key
from musehub.storage.signing import sign_url

CHUNK = 1 << 20
#: How often (seconds, at most) the claims of expired PUT URLs are removed.
CLAIM_SWEEP_S = 60.0


class LocalStorage(Storage):
    name = "local"
    local_files = True

    def __init__(self, root: str, public_url: str, secret_key: str) -> None:
        self.root = os.path.abspath(root)
        self.public_url = public_url.rstrip("/")
        self.secret_key = secret_key
        os.makedirs(self.root, mode=DIR_MODE, exist_ok=True)
        self._tmp = os.path.join(self.root, ".tmp")
        os.makedirs(self._tmp, mode=DIR_MODE, exist_ok=True)
        self._claims = os.path.join(self.root, ".claims")  # no key starts with a dot
        self._claims_swept = 0.0

    def path(self, key: str) -> str:
        return os.path.join(self.root, *check_key(key).split("/"))

    def local_path(self, key: str) -> str:
        return self.path(key)

    def temp_file(self) -> tuple[BinaryIO, str]:
        """An open temp file on the same file system (for :meth:`commit_temp`)."""
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="put-")
        return os.fdopen(fd, "wb"), tmp

    def commit_temp(self, tmp: str, key: str) -> None:
        """Move a finished temp file into place as ``key`` (atomic rename), durably: the
        file's data, then its name in the directory (and any directory created for it).
        Readable by the hub's user alone (a linked pack's 0444 becomes 0400)."""
        dest = self.path(key)
        private_file(tmp)
        fsync_file(tmp)
        made = _makedirs(os.path.dirname(dest), self.root)
        os.replace(tmp, dest)
        for d in [os.path.dirname(dest), *made]:  # the new entry, then the new directories'
            fsync_dir(d)

    def put_file(self, key: str, path: str) -> None:
        self.path(key)
        f, tmp = self.temp_file()
        try:
            with f, open(path, "rb") as src:
                shutil.copyfileobj(src, f, CHUNK)
            self.commit_temp(tmp, key)
        except BaseException:
            _unlink(tmp)
            raise

    def put_immutable(self, key: str, path: str) -> None:
        """A hard link when ``path`` is on our file system (a 1 GB pack is not copied once
        more: quarantine, cache and storage may share one inode), else :meth:`put_file`."""
        self.path(key)
        f, tmp = self.temp_file()
        f.close()
        try:
            os.unlink(tmp)
            os.link(path, tmp)
        except OSError:
            _unlink(tmp)
            self.put_file(key, path)
            return
        try:
            self.commit_temp(tmp, key)
        except BaseException:
            _unlink(tmp)
            raise

    def put_bytes(self, key: str, data: bytes) -> None:
        self.path(key)
        f, tmp = self.temp_file()
        try:
            with f:
                f.write(data)
            self.commit_temp(tmp, key)
        except BaseException:
            _unlink(tmp)
            raise

    def open_read(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise NotFound(key) from None

    def download_to(self, key: str, path: str) -> None:
        src = self.open_read(key)
        d = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".download-")
        try:
            with src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            os.replace(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise

    def copy(self, src_key: str, dst_key: str) -> None:
        """A hard link (a copy across file systems): every write here replaces a key's file
        by renaming a new one into place, never in place, so the link keeps the old bytes."""
        src = self.path(src_key)
        self.path(dst_key)
        f, tmp = self.temp_file()
        f.close()
        try:
            os.unlink(tmp)
            try:
                os.link(src, tmp)
            except FileNotFoundError:
                raise NotFound(src_key) from None
            except OSError:
                try:
                    shutil.copyfile(src, tmp)
                except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    raise NotFound(src_key) from None
            self.commit_temp(tmp, dst_key)
        except BaseException:
            _unlink(tmp)
            raise

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            pass

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def size(self, key: str) -> int:
        try:
            st = os.stat(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(key) from None
        return st.st_size

    def presign_put(
        self, key: str, expires_s: int, size: int | None = None, sha256: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        # sha256 is not bound: uploads are linked and verified in place (never copied), so
        # nothing would be saved by it (binds_checksums is False).
        check_key(key)
        return sign_url(self.public_url, self.secret_key, "PUT", key, expires_s, size), {}

    # A presigned PUT URL is good for one upload: the PUT claims it first (a file named by
    # its expiry and signature, created exclusively, so two processes sharing the data
    # directory agree), gives the claim back if the upload fails, and keeps it if the
    # upload landed. Claims go once their URL has expired (it is refused then anyway).
    def claim(self, sig: str, exp: int) -> bool:
        """Take the one use of the PUT URL signed ``sig``; False if it is taken."""
        self._sweep_claims()
        os.makedirs(self._claims, mode=DIR_MODE, exist_ok=True)
        try:
            os.close(os.open(self._claim_path(sig, exp), os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            return False
        return True

    def release(self, sig: str, exp: int) -> None:
        """Give a claim back (its upload failed: the URL may be used again)."""
        _unlink(self._claim_path(sig, exp))

    def _claim_path(self, sig: str, exp: int) -> str:
        return os.path.join(self._claims, f"{int(exp)}-{sig.lower()}")

    def _sweep_claims(self, force: bool = False) -> int:
        """Remove the claims of expired PUT URLs (no longer usable anyway); how many went."""
        now = time.time()
        if not force:  # (the PUT path, at most every CLAIM_SWEEP_S; the periodic sweep forces)
            if now - self._claims_swept < CLAIM_SWEEP_S:
                return 0
            self._claims_swept = now
        try:
            names = os.listdir(self._claims)
        except FileNotFoundError:
            return 0
        removed = 0
        for name in names:
            exp = name.partition("-")[0]
            if exp.isdigit() and int(exp) < now:
                _unlink(os.path.join(self._claims, name))
                removed += 1
        return removed

    def presign_get(self, key: str, expires_s: int) -> str:
        check_key(key)
        return sign_url(self.public_url, self.secret_key, "GET", key, expires_s)

    def list(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            if dirpath == self.root:
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # .tmp, .claims
            rel = os.path.relpath(dirpath, self.root)
            for name in filenames:
                key = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def sweep_temp(self, max_age_s: float) -> int:
        """Remove temp files (``.tmp/put-*``: a presigned PUT or a write cut off by a crash)
        unchanged for ``max_age_s``, and the claims of expired PUT URLs; returns how many."""
        cutoff = time.time() - max_age_s
        removed = self._sweep_claims(force=True)
        for name in os.listdir(self._tmp):
            p = os.path.join(self._tmp, name)
            try:
                if os.stat(p).st_mtime < cutoff:
                    os.unlink(p)
                    removed += 1
            except OSError:
                pass
        return removed

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StorageUnavailable(f"storage directory {self.root} is not writable")


def _makedirs(path: str, root: str) -> list[str]:
    """Create ``path`` and missing parents under ``root``; returns the parents of the
    directories it created (whose entries must be synced), deepest first."""
    made: list[str] = []
    d = path
    while d != root and not os.path.isdir(d):
        made.append(os.path.dirname(d))
        d = os.path.dirname(d)
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    return made


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
