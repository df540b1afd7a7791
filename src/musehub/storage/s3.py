"""The ``s3`` backend: any S3-compatible store through boto3 (imported only here).

Presigned URLs are the store's own (signature v4), so clients PUT and GET bundles straight to
the store. Big files go up in parallel multipart uploads (boto3's transfer manager); reads
stream. The bucket is created on first use when it does not exist.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import tempfile
import threading
import time
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from musehub.storage import Multipart, NotFound, Storage, StorageUnavailable, check_key

MiB = 1 << 20
TRANSFER = TransferConfig(
    multipart_threshold=64 * MiB, multipart_chunksize=16 * MiB, max_concurrency=8
)
#: Tries of a download cut off mid-body (s3transfer's managed download makes 5).
DOWNLOAD_ATTEMPTS = 3
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
HEALTH_TIMEOUT_S = 2
#: Outside ``repos/`` (the sweep's domain): the key the checksum probe tries to write.
PROBE_PREFIX = "probe/"

log = logging.getLogger("musehub.storage")


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


class S3Storage(Storage):
    name = "s3"

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        create_bucket: bool = True,
        public_endpoint_url: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.region = region or "us-east-1"
        session = boto3.session.Session()

        def client(
            endpoint: str | None, attempts: int = 3, connect_s: float = 10, read_s: float = 120
        ) -> Any:
            return session.client(
                "s3",
                endpoint_url=endpoint,
                region_name=self.region,
                aws_access_key_id=access_key or None,
                aws_secret_access_key=secret_key or None,
                config=Config(
                    signature_version="s3v4",
                    s3={"addressing_style": "path"},
                    retries={"max_attempts": attempts, "mode": "standard"},
                    max_pool_connections=32,
                    connect_timeout=connect_s,
                    read_timeout=read_s,
                ),
            )

        self.client: Any = client(self.endpoint_url)
        #: For health checks: one attempt, short timeouts (a store down answers in seconds).
        self.probe: Any = client(self.endpoint_url, 1, HEALTH_TIMEOUT_S, HEALTH_TIMEOUT_S)
        #: Signs presigned URLs (no request is sent through it).
        self.signer: Any = client(public_endpoint_url) if public_endpoint_url else self.client
        self._origin: str | None = None  # of presigned URLs (presign_origin)
        self._binds: bool | None = None  # binds_checksums, once probed
        self._probe_lock = threading.Lock()
        self._create_bucket = create_bucket
        self._bucket_ready = False
        self._lock = threading.Lock()

    # -- helpers ---------------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        if self._bucket_ready or not self._create_bucket:
            return
        with self._lock:
            if self._bucket_ready:
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                if _code(e) not in _MISSING and _code(e) != "NoSuchBucket":
                    raise StorageUnavailable(f"bucket {self.bucket}: {e}") from None
                try:
                    kwargs: dict[str, Any] = {"Bucket": self.bucket}
                    if self.region != "us-east-1":
                        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
                    self.client.create_bucket(**kwargs)
                except ClientError as e2:
                    if _code(e2) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise StorageUnavailable(
                            f"cannot create bucket {self.bucket}: {e2}"
                        ) from None
            except BotoCoreError as e:
                raise StorageUnavailable(f"S3 endpoint unreachable: {e}") from None
            self._bucket_ready = True

    def _call(self, key: str, fn: Any, **kwargs: Any) -> Any:
        check_key(key)
        self._ensure_bucket()
        try:
            return fn(Bucket=self.bucket, Key=key, **kwargs)
        except ClientError as e:
            if _code(e) in _MISSING:
                raise NotFound(key) from None
            raise StorageUnavailable(f"S3 {fn.__name__} {key}: {e}") from None
        except BotoCoreError as e:
            raise StorageUnavailable(f"S3 {fn.__name__} {key}: {e}") from None

    # -- Storage ---------------------------------------------------------------------------

    def put_file(self, key: str, path: str) -> None:
        """One PutObject below the multipart threshold: boto3's managed upload starts a
        transfer manager and its threads for every call, about 2 ms more per small object
        on SeaweedFS here, which a push's two small PUTs (pack, index) paid each time."""
        check_key(key)
        self._ensure_bucket()
        try:
            if os.path.getsize(path) < TRANSFER.multipart_threshold:
                with open(path, "rb") as f:
                    self._call(key, self.client.put_object, Body=f)
                return
            self.client.upload_file(path, self.bucket, key, Config=TRANSFER)
        except (ClientError, BotoCoreError) as e:
            raise StorageUnavailable(f"S3 upload {key}: {e}") from None

    def put_bytes(self, key: str, data: bytes) -> None:
        self._call(key, self.client.put_object, Body=data)

    def open_read(self, key: str) -> BinaryIO:
        resp = self._call(key, self.client.get_object)
        return cast(BinaryIO, _Body(resp["Body"]))

    def download_to(self, key: str, path: str) -> None:
        check_key(key)
        self._ensure_bucket()
        d = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".download-")
        os.close(fd)
        try:
            for attempt in range(DOWNLOAD_ATTEMPTS):
                try:
                    self._download(key, tmp)
                    break
                except BotoCoreError as e:  # cut off mid-body, say: as s3transfer, again
                    if attempt + 1 == DOWNLOAD_ATTEMPTS:
                        raise StorageUnavailable(f"S3 download {key}: {e}") from None
            os.replace(tmp, path)
        except ClientError as e:
            os.unlink(tmp)
            if _code(e) in _MISSING:
                raise NotFound(key) from None
            raise StorageUnavailable(f"S3 download {key}: {e}") from None
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _download(self, key: str, tmp: str) -> None:
        """One GetObject streamed to ``tmp``; an object past the multipart threshold is left
        to boto3's managed download (parallel ranged GETs). The managed download alone would
        send a HEAD first and start its threads even for a pack index of a few KB."""
        resp = self.client.get_object(Bucket=self.bucket, Key=key)
        body = resp["Body"]
        try:
            if int(resp.get("ContentLength", 0)) >= TRANSFER.multipart_threshold:
                body.close()
                self.client.download_file(self.bucket, key, tmp, Config=TRANSFER)
                return
            with open(tmp, "wb") as f:
                for part in body.iter_chunks(1 << 20):
                    f.write(part)
        finally:
            body.close()

    def copy(self, src_key: str, dst_key: str) -> None:
        """Server-side copy (CopyObject; boto3's managed copy goes multipart past the
        threshold, so objects over 5 GB copy too): the bytes never pass through the hub."""
        check_key(src_key)
        check_key(dst_key)
        self._ensure_bucket()
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": src_key}, self.bucket, dst_key, Config=TRANSFER
            )
        except ClientError as e:
            if _code(e) in _MISSING:
                raise NotFound(src_key) from None
            raise StorageUnavailable(f"S3 copy {src_key} -> {dst_key}: {e}") from None
        except BotoCoreError as e:
            raise StorageUnavailable(f"S3 copy {src_key} -> {dst_key}: {e}") from None

    def start_multipart(self, key: str) -> Multipart:
        upload_id = self._call(key, self.client.create_multipart_upload)["UploadId"]
        return _S3Multipart(self, key, str(upload_id))

    def abort_stale_multiparts(self, prefix: str, older_than_s: float) -> int:
        self._ensure_bucket()
        now = time.time()
        n = 0
        try:
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for up in page.get("Uploads", []):
                    if now - up["Initiated"].timestamp() > older_than_s:
                        _S3Multipart(self, up["Key"], up["UploadId"]).abort()
                        n += 1
        except (ClientError, BotoCoreError) as e:
            raise StorageUnavailable(f"S3 list multipart uploads {prefix}: {e}") from None
        return n

    def delete(self, key: str) -> None:
        try:
            self._call(key, self.client.delete_object)
        except NotFound:
            pass

    def exists(self, key: str) -> bool:
        try:
            self._call(key, self.client.head_object)
        except NotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._call(key, self.client.head_object)["ContentLength"])

    def binds_checksums(self) -> bool:
        """Probed once: a PUT whose ``x-amz-checksum-sha256`` does not match its body must be
        refused (AWS, MinIO and SeaweedFS answer 400 BadDigest). A store that takes it would
        let a client replace an upload after the hub verified it, so then uploads are copied
        before they are verified, as without a checksum."""
        if self._binds is None:
            with self._probe_lock:
                if self._binds is None:
                    self._binds = self._probe_checksums()
                    log.info("S3 store checks upload checksums: %s", self._binds)
        return self._binds

    def _probe_checksums(self) -> bool:
        self._ensure_bucket()
        key = f"{PROBE_PREFIX}checksum-{secrets.token_hex(8)}"
        claimed = base64.b64encode(hashlib.sha256(b"claimed").digest()).decode()
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=b"another body", ChecksumSHA256=claimed
            )
        except ClientError as e:
            return _code(e) in ("BadDigest", "XAmzContentSHA256Mismatch", "InvalidRequest")
        except BotoCoreError:
            return False
        self.delete(key)  # taken: this store does not check
        return False

    def presign_put(
        self, key: str, expires_s: int, size: int | None = None, sha256: bytes | None = None
    ) -> tuple[str, dict[str, str]]:
        # With a size, Content-Length is one of the signed headers: the store refuses any
        # other body size (403 SignatureDoesNotMatch), as the local backend's URLs do. With
        # a checksum, x-amz-checksum-sha256 is signed too: the client must send it, and the
        # store refuses a body of another digest (400 BadDigest).
        check_key(key)
        self._ensure_bucket()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        headers: dict[str, str] = {}
        if size is not None:
            params["ContentLength"] = size
        if sha256 is not None:
            params["ChecksumSHA256"] = headers["x-amz-checksum-sha256"] = base64.b64encode(
                sha256
            ).decode()
        url = self.signer.generate_presigned_url(
            "put_object",
            Params=params,
            ExpiresIn=int(expires_s),
            HttpMethod="PUT",
        )
        return str(url), headers

    def presign_origin(self) -> str | None:
        if self._origin is None:  # signing is local: no request to the store
            url = self.signer.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": "origin"}, ExpiresIn=60
            )
            p = urlsplit(str(url))
            self._origin = f"{p.scheme}://{p.netloc}"
        return self._origin

    def presign_get(self, key: str, expires_s: int) -> str:
        check_key(key)
        self._ensure_bucket()
        url = self.signer.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=int(expires_s),
            HttpMethod="GET",
        )
        return str(url)

    def list(self, prefix: str = "") -> list[str]:
        self._ensure_bucket()
        keys: list[str] = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                keys.extend(obj["Key"] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as e:
            raise StorageUnavailable(f"S3 list {prefix}: {e}") from None
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            try:
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except (ClientError, BotoCoreError):
                for k in batch:  # stores without DeleteObjects: one by one
                    self.delete(k["Key"])
        return len(keys)

    def check(self) -> None:
        self._ensure_bucket()

    def health(self) -> None:
        """HEAD of the bucket, one attempt with a 2 s timeout."""
        try:
            self.probe.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as e:
            raise StorageUnavailable(f"S3 endpoint {self.endpoint_url}: {e}") from None


class _S3Multipart(Multipart):
    """CreateMultipartUpload's upload: UploadPart from any thread, then Complete or Abort."""

    def __init__(self, storage: S3Storage, key: str, upload_id: str) -> None:
        self._s = storage
        self.key = key
        self.upload_id = upload_id
        self._etags: dict[int, str] = {}
        self._lock = threading.Lock()

    def upload_part(self, number: int, data: bytes) -> None:
        resp = self._s._call(
            self.key,
            self._s.client.upload_part,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=data,
        )
        with self._lock:
            self._etags[number] = str(resp["ETag"])

    def complete(self) -> None:
        with self._lock:
            parts = [{"PartNumber": n, "ETag": e} for n, e in sorted(self._etags.items())]
        self._s._call(
            self.key,
            self._s.client.complete_multipart_upload,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": parts},
        )

    def abort(self) -> None:
        try:
            self._s._call(self.key, self._s.client.abort_multipart_upload, UploadId=self.upload_id)
        except Exception:  # noqa: BLE001 - the sweep aborts what is left (abort_stale_multiparts)
            log.warning("could not abort the multipart upload of %s", self.key)


class _Body:
    """A botocore StreamingBody as a minimal binary file object."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._body.read(None if n is None or n < 0 else n)
        except (BotoCoreError, OSError) as e:
            raise StorageUnavailable(f"S3 read: {e}") from None
        return bytes(data)

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._body.close()

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Any:
        while True:
            chunk = self.read(1 << 20)
            if not chunk:
                return
            yield chunk
