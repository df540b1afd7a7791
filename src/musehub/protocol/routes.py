"""The MuseWire endpoints (docs/wire.md §4) as Starlette routes.

Routes only parse, authorize and hand over: the work (decoding, verification, negotiation,
storage) is blocking and runs in worker threads (receive.py, serve.py), so the event loop only
shuttles bytes. ``Muse-Protocol: 1`` is added to every answer by the app's middleware, and
HubError / StorageUnavailable become JSON errors there too (musehub.app).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from muse.core.objects import from_hex
from muse.wire.messages import (
    PACK_TYPE,
    PROTOCOL_HEADER,
    PUSH_TYPE,
    STORE_ORIGIN_HEADER,
    RefUpdate,
    check_protocol,
    encode_refs,
    parse_updates,
    read_push_header,
)
from musehub import quota
from musehub.auth import Principal, authenticate, refresh_last_used, resolve_repo
from musehub.db import Repo
from musehub.errors import HubError, field, read_json, require_content_type
from musehub.protocol import dbops
from musehub.protocol.body import AsyncBodyReader, BodyTooLarge, BodyTruncated
from musehub.protocol.receive import Receiver
from musehub.protocol.records import AWAITING_UPLOAD, DELETED, VERIFYING
from musehub.protocol.repostore import (
    WORK_TTL_S,
    RepoStore,
    bound_upload_key,
    is_bound_upload,
    iter_file,
    upload_key,
)
from musehub.protocol.serve import PresignAnswer, Server, StreamAnswer, stream_pack
from musehub.storage import NotFound

if TYPE_CHECKING:
    from musehub.state import HubState

log = logging.getLogger("musehub.protocol")

UPLOAD_TTL_S = 15 * 60
#: A PUT may start just before its URL expires and take a while (a 10 GB bundle on a slow
#: link): the upload may still be committed, and is swept, only this long after the URL expired.
COMMIT_GRACE_S = 3600
SWEEP_EVERY_S = 0.0  # one indexed query; the lock keeps sweeps from piling up


def _user_id(principal: Principal | None) -> int | None:
    return None if principal is None else principal.user_id


#: A stored pack up to this size that answers a fetch is sent from memory (one write).
SMALL_BODY = 4 << 20


class Protocol:
    """The endpoints of one hub process, sharing one RepoStore (and its pack cache)."""

    def __init__(self, state: HubState) -> None:
        self.settings = state.settings
        self.limits = state.settings.limits
        self.db = state.db
        self.storage = state.storage
        self.store = RepoStore(state.settings, state.db, state.storage)
        self.server = Server(self.store)
        self._last_sweep = 0.0
        # A stalled push is answered 400 after this (musehub.server closes other requests).
        self.idle_s = self.limits.body_idle_timeout_s or 86400.0
        self._sweep_lock = threading.Lock()

    # ------------------------------------------------------------------------ helpers
    def _repo(self, request: Request, need: str) -> tuple[Principal | None, Repo]:
        principal, repo, _ = self._repo_and_refs(request, need, False)
        return principal, repo

    def _repo_and_refs(
        self, request: Request, need: str, with_refs: bool
    ) -> tuple[Principal | None, Repo, dict[str, bytes] | None]:
        """The caller, the repository (and its refs): one read-only transaction, no write lock
        (a stale token's last_used is written after it, at most once a minute). A request that
        names another protocol version is refused before anything is read."""
        check_protocol(request.headers.get(PROTOCOL_HEADER))
        try:
            with self.db.session(readonly=True) as s:
                principal = authenticate(request, s)
                repo = resolve_repo(
                    s, principal, request.path_params["owner"], request.path_params["slug"], need
                )
                refs = dbops.read_refs(s, repo.id) if with_refs else None
                s.expunge(repo)
        finally:
            refresh_last_used(request)
        return principal, repo, refs

    def startup(self) -> None:
        """Housekeeping for the life of the process: the periodic sweep (protocol.sweep)."""
        from musehub.protocol.sweep import Sweeper

        self.sweeper = Sweeper(self.store)
        self.sweeper.start()

    def sweep(self, force: bool = False) -> None:
        """Delete what the ledger says is garbage now and then (at start-up and on presign)."""
        now = time.monotonic()
        if not force and now - self._last_sweep < SWEEP_EVERY_S:
            return
        if not self._sweep_lock.acquire(blocking=False):
            return
        try:
            self._last_sweep = now
            n = self.store.sweep()
            if n:
                log.info("swept %d deferred deletions", n)
        except Exception:  # noqa: BLE001 - never let housekeeping fail a request
            log.exception("sweep of deferred deletions failed")
        finally:
            self._sweep_lock.release()

    # ---------------------------------------------------------------------- endpoints
    async def refs(self, request: Request) -> Response:

        def read() -> tuple[Repo, dict[str, bytes]]:
            _, repo, refs = self._repo_and_refs(request, "read", True)
            assert refs is not None
            return repo, refs

        repo, refs = await run_in_threadpool(read)
        return self._with_store_origin(JSONResponse(self._refs_document(repo, refs)))

    def _refs_document(self, repo: Repo, refs: dict[str, bytes]) -> dict[str, Any]:
        """The refs answer's body (docs/wire.md §4): the refs, the default branch, the limits."""
        lim = self.limits
        limits = {
            "stream_max_blobs": lim.stream_max_blobs,
            "stream_max_bytes": lim.stream_max_bytes,
            "max_pack_bytes": lim.max_pack_bytes,
            "max_object_bytes": lim.max_object_bytes,
        }
        return encode_refs(refs, repo.default_branch, limits)

    def _with_store_origin(self, resp: Response) -> Response:
        store = self.storage.presign_origin()
        if store is not None:  # the client may open it while a bundle is prepared (wire.md)
            resp.headers[STORE_ORIGIN_HEADER] = store
        return resp

    async def push_stream(self, request: Request) -> Response:
        require_content_type(request, PUSH_TYPE)
        principal, repo = await run_in_threadpool(self._repo, request, "write")
        limit = self.limits.max_pack_bytes + (1 << 20) + 4
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    raise HubError(413, "payload_too_large", f"body larger than {limit} bytes")
            except ValueError:
                raise HubError(400, "bad_request", "invalid Content-Length") from None
        body = AsyncBodyReader(request.stream().__aiter__(), limit, idle_s=self.idle_s)
        receiver = Receiver(self.store, repo.id, _user_id(principal), repo.default_branch)

        def work() -> dict[str, Any]:
            try:
                updates = read_push_header(body)  # type: ignore[arg-type]
            except BodyTooLarge as e:
                raise HubError(413, "payload_too_large", str(e)) from None
            except BodyTruncated as e:
                raise HubError(400, "bad_request", f"body ended early: {e}") from None
            self._quota_body(body, repo.id, declared)
            return receiver.receive(body, updates)  # type: ignore[arg-type]

        try:
            result = await run_in_threadpool(work)
        finally:
            body.stop()
        return JSONResponse(result)

    async def push_stage(self, request: Request) -> Response:
        """A segment of a large push: a pack of blobs kept without moving a ref (docs/wire.md)."""
        require_content_type(request, PACK_TYPE)
        principal, repo = await run_in_threadpool(self._repo, request, "write")
        limit = self.limits.max_pack_bytes
        body = AsyncBodyReader(request.stream().__aiter__(), limit, idle_s=self.idle_s)
        receiver = Receiver(self.store, repo.id, _user_id(principal))
        receiver.stage = True
        declared = request.headers.get("content-length")

        def work() -> dict[str, Any]:
            self._quota_body(body, repo.id, declared)
            return receiver.receive(body, [])  # type: ignore[arg-type]

        try:
            result = await run_in_threadpool(work)
        finally:
            body.stop()
        return JSONResponse(result)

    def _quota_body(self, body: AsyncBodyReader, repo_id: int, declared: str | None) -> None:
        """Refuse a push over a storage quota as soon as its size shows: at once from its
        Content-Length, else once its bytes pass the room left (musehub.quota). The ref
        transaction checks the pack's exact size again."""
        with self.db.session(readonly=True) as s:
            q = quota.room(s, self.settings, repo_id)
        if q is None or q.room is None:
            return
        left = q.room
        room = left + quota.EMPTY_PACK_SLACK  # a pack of no objects always passes here
        if declared is not None and declared.isdigit():
            size = int(declared) - body.position
            if size > room:
                raise quota.exceeded(q, quota.format_size(size))
        body.limit_rest(room, lambda: quota.exceeded(q, f"more than {quota.format_size(left)}"))

    async def objects_missing(self, request: Request) -> Response:
        """Which of the given ids the repository lacks: what a resumed push still sends."""
        principal, repo = await run_in_threadpool(self._repo, request, "write")
        doc = await read_json(request, ID_LIST_JSON_BYTES)
        ids = _ids(field(doc, "ids", list), "ids")

        def work() -> list[str]:
            reader, _ = self.store.reader(repo.id)
            return [oid.hex() for oid in ids if not reader.has(oid)]

        return JSONResponse({"missing": await run_in_threadpool(work)})

    async def push_presign(self, request: Request) -> Response:
        principal, repo = await run_in_threadpool(self._repo, request, "write")
        doc = await read_json(request)
        size = field(doc, "size", int)
        field(doc, "objects", int, 0)
        sha256 = _digest(field(doc, "sha256", str, None))
        with_refs = field(doc, "refs", bool, False)
        max_pack = self.limits.max_pack_bytes
        if size < 0:
            raise HubError(400, "bad_request", "size must not be negative")
        if size > max_pack:
            raise HubError(413, "payload_too_large", f"pack larger than {max_pack} bytes")
        upload_id = secrets.token_hex(16)
        expires = time.time() + UPLOAD_TTL_S

        def work() -> tuple[str, dict[str, str], dict[str, bytes] | None]:
            refs = None
            with self.db.session(readonly=True) as s:
                quota.check(s, self.settings, repo.id, size)  # as the client says; again later
                if with_refs:  # a push planned against the client's tracking refs checks them
                    refs = dbops.read_refs(s, repo.id)
            self.sweep()
            key = upload_key(repo.id, upload_id)
            if sha256 is None or not self.storage.binds_checksums():
                sha = None
            else:  # the URL can only ever PUT these bytes: the upload becomes the pack
                sha, key = sha256, bound_upload_key(repo.id, sha256)
            with self.db.session() as s:
                dbops.defer_deletion(
                    s,
                    upload_id,
                    repo.id,
                    _user_id(principal),
                    key,
                    expires + COMMIT_GRACE_S,
                    AWAITING_UPLOAD,
                )
            url, headers = self.storage.presign_put(key, UPLOAD_TTL_S, size, sha)
            return url, dict(headers or {}), refs

        url, headers, refs = await run_in_threadpool(work)
        answer: dict[str, Any] = {
            "upload_id": upload_id,
            "url": url,
            "method": "PUT",
            "headers": headers,
            "expires_at": int(expires),
        }
        if refs is None:
            return JSONResponse(answer)
        answer["refs"] = self._refs_document(repo, refs)
        return self._with_store_origin(JSONResponse(answer))

    async def push_commit(self, request: Request) -> Response:
        principal, repo = await run_in_threadpool(self._repo, request, "write")
        doc = await read_json(request)
        upload_id = field(doc, "upload_id", str)
        stage = field(doc, "stage", bool, False)
        updates = [] if stage else parse_updates(doc)
        user_id = _user_id(principal)
        result = await run_in_threadpool(
            self._commit, repo.id, user_id, upload_id, updates, stage, repo.default_branch
        )
        return JSONResponse(result)

    def _commit(
        self,
        repo_id: int,
        user_id: int | None,
        upload_id: str,
        updates: list[RefUpdate],
        stage: bool = False,
        default_branch: str | None = None,
    ) -> dict[str, Any]:
        storage = self.storage
        with self.db.session(readonly=True) as s:
            row = dbops.get_deferred(s, upload_id)
        if (
            row is None
            or row[0] != repo_id
            or row[1] != user_id
            or row[4] not in (AWAITING_UPLOAD, DELETED)
        ):
            raise HubError(404, "upload_not_found", f"no upload {upload_id!r} to commit")
        _, _, key, delete_after, state = row
        if state == DELETED or delete_after < time.time():
            raise HubError(410, "upload_expired", "the upload expired; push again")
        with self.db.session() as s:
            claimed = dbops.claim_deferred(
                s, upload_id, AWAITING_UPLOAD, VERIFYING, time.time() + WORK_TTL_S
            )
        if not claimed:
            raise HubError(404, "upload_not_found", f"upload {upload_id!r} is already committed")
        ok = refused = False
        try:
            try:
                size = storage.size(key)
            except NotFound:
                raise HubError(400, "bad_pack", "nothing was uploaded") from None
            max_pack = self.limits.max_pack_bytes
            if size > max_pack:
                raise HubError(413, "payload_too_large", f"pack larger than {max_pack} bytes")
            with self.db.session(readonly=True) as s:
                quota.check(s, self.settings, repo_id, size)  # what was uploaded, unverified
            receiver = Receiver(self.store, repo_id, user_id, default_branch)
            receiver.stage = stage
            result = receiver.receive_upload(key, updates, upload_id)
            ok = True
            return result
        except HubError as e:
            refused = e.status < 500
            raise
        finally:
            if ok and is_bound_upload(repo_id, key):
                pass  # the upload is the pack now, or was dropped with its ledger row scheduled
            elif ok or refused:
                self._drop_upload(upload_id, key, ok)
            else:
                self._release_upload(upload_id, delete_after)

    def _drop_upload(self, upload_id: str, key: str, committed: bool) -> None:
        """The bundle has served its purpose: committed, or refused (a new push is needed)."""
        try:
            self.storage.delete(key)
            if not committed:
                with self.db.session() as s:
                    dbops.set_deferred_state(s, upload_id, DELETED)
        except Exception:  # noqa: BLE001 - the sweep deletes it later
            log.warning("could not delete upload %s", key)

    def _release_upload(self, upload_id: str, delete_after: float) -> None:
        """The hub failed (storage, database, disk), not the upload: give the claim back so
        the same commit can be retried, and the sweep still finds the key at its time. If even
        that fails, the row stays claimed until the sweep's time for work in progress."""
        try:
            with self.db.session() as s:
                dbops.claim_deferred(s, upload_id, VERIFYING, AWAITING_UPLOAD, delete_after)
        except Exception:  # noqa: BLE001 - the database is what failed: the sweep cleans up
            log.warning("could not release upload %s", upload_id)

    async def fetch_bundle(self, request: Request) -> Response:
        principal, repo = await run_in_threadpool(self._repo, request, "read")
        doc = await read_json(request, ID_LIST_JSON_BYTES)
        wants = _ids(field(doc, "wants", list), "wants")
        haves = _ids(field(doc, "haves", list, []), "haves")
        # blobs an interrupted fetch of this client already received (docs/wire.md §5)
        have_objects = _ids(field(doc, "have_objects", list, []), "have_objects")
        path = field(doc, "path", str, "auto")
        if path not in ("auto", "stream", "presign"):
            raise HubError(400, "bad_request", "path must be auto, stream or presign")
        user_id = _user_id(principal) or repo.owner_id

        def work() -> tuple[StreamAnswer | PresignAnswer, bytes | None, int | None]:
            answer = self.server.fetch(repo.id, user_id, wants, haves, path, have_objects)
            if isinstance(answer, PresignAnswer) or not answer.file:
                return answer, None, None
            # A stored pack that is exactly the answer: a small one is read here, in the same
            # worker hop, and sent as one body; a large one streams with its length declared.
            size = os.path.getsize(answer.file)
            if size <= SMALL_BODY:
                with open(answer.file, "rb") as f:
                    return answer, f.read(), size
            return answer, None, size

        answer, body, size = await run_in_threadpool(work)
        if isinstance(answer, PresignAnswer):
            return JSONResponse(answer.json())
        headers = {"Muse-Objects": str(answer.n)}
        if body is not None:
            return Response(body, media_type=PACK_TYPE, headers=headers)
        if size is not None:
            headers["Content-Length"] = str(size)
        return StreamingResponse(
            iter_file(answer.file) if answer.file else stream_pack(answer.reader, answer.objects),
            media_type=PACK_TYPE,
            headers=headers,
        )


#: Ids one request may list (objects/missing, fetch/bundle's have_objects: docs/wire.md).
MAX_IDS = 100_000
#: The JSON bodies that carry such lists: 100,000 ids of 64 hex digits with their quotes and
#: commas take 6.7 MB, past the API's 1 MiB (musehub.errors.MAX_JSON_BYTES).
ID_LIST_JSON_BYTES = 8 << 20


def _ids(values: list[Any], what: str) -> list[bytes]:
    if len(values) > MAX_IDS:
        raise HubError(400, "bad_request", f"too many {what} (at most {MAX_IDS:,})")
    out = []
    for v in values:
        try:
            out.append(from_hex(v))
        except ValueError:
            raise HubError(400, "invalid_id", f"{what}: not an object id: {v!r}") from None
    return out


def _digest(value: str | None) -> bytes | None:
    """The optional ``sha256`` of push/presign: 64 hex digits."""
    if value is None:
        return None
    try:
        return from_hex(value)
    except ValueError:
        raise HubError(400, "bad_request", "sha256 must be 64 hex digits") from None


def routes(state: HubState) -> list[Route]:
    """The protocol routes of one app; starts its periodic sweep."""
    proto = Protocol(state)
    proto.startup()
    base = "/{owner}/{slug}"
    return [
        Route(f"{base}/refs", proto.refs, methods=["GET"]),
        Route(f"{base}/push/stream", proto.push_stream, methods=["POST"]),
        Route(f"{base}/push/presign", proto.push_presign, methods=["POST"]),
        Route(f"{base}/push/commit", proto.push_commit, methods=["POST"]),
        Route(f"{base}/push/stage", proto.push_stage, methods=["POST"]),
        Route(f"{base}/objects/missing", proto.objects_missing, methods=["POST"]),
        Route(f"{base}/fetch/bundle", proto.fetch_bundle, methods=["POST"]),
    ]
