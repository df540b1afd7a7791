"""Answering fetch/bundle: negotiation, path choice, and packs streamed or presigned.

Fetch, pull and clone are one request: the hub walks from the wants back to the haves
(``objects_to_send``, work proportional to what changed) and sends the result either as the
response body (stream path, flat memory) or as presigned bundles (presign path).

Nothing is rebuilt that is already stored. Pushes arrive as packs of exactly what the hub
lacked, so the answer to a clone is usually the union of the stored packs, and the answer to
a pull of the latest pushes the union of the newest ones: when the answer is exactly a few
stored packs (checked against their indexes, one set lookup per stored object), those packs
are the bundles, or, for the stream path, the one pack's file is sent byte for byte.
Otherwise (history rewritten by a forced push, a pull from the middle of a push) a pack is
built: streamed on the fly, or written once as a bundle.

A clone's answer depends only on its set of wants (objects are immutable), so it is also
remembered in storage under a hash of the sorted wants (``repos/<id>/bundles/clone-<hash>
.json`` naming the bundles): a later clone of the same tips skips even the walk.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from muse.core.objects import BLOB
from muse.core.pack.stream import pack_chunks, write_pack_of
from muse.wire.negotiate import objects_to_send
from musehub.errors import HubError
from musehub.protocol import dbops
from musehub.protocol.records import SCHEDULED, PackInfo
from musehub.protocol.repostore import (
    BIG_PACK,
    REPACK_GRACE_S,
    PackReader,
    RepoStore,
    bundle_key,
    pack_key,
)

MAX_DIRECT_PACKS = 8  # at most this many small stored packs are handed out as separate bundles
# Stored packs of BIG_PACK or more (a segment of a large push is at least 64 MiB) are handed
# out as they are whatever their number: one more GET costs a round trip, while building one
# bundle of them re-encodes and rewrites every byte (a clone of a 1 GiB file: 17 packs).
MAX_DIRECT_BUNDLES = 256  # and never more bundles than this in one answer
BUNDLE_URL_TTL_S = 3600
CLONE_BUNDLE_TTL_S = 24 * 3600  # a built clone bundle is reused this long, then swept
CHUNK = 256 * 1024


@dataclass
class StreamAnswer:
    """Send the pack as the response body."""

    reader: PackReader
    objects: list[tuple[int, bytes]]
    file: Path | None = None  # a stored pack that is exactly the answer
    count: int | None = None  # objects in ``file`` when ``objects`` was not computed

    @property
    def n(self) -> int:
        return self.count if self.count is not None else len(self.objects)


@dataclass
class PresignAnswer:
    """Tell the client where to GET the pack(s)."""

    objects: int
    bundles: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        return {"path": "presign", "objects": self.objects, "bundles": self.bundles}


def stream_pack(reader: PackReader, objects: list[tuple[int, bytes]]) -> Iterator[bytes]:
    """The pack of ``objects``, chunk by chunk, holding about one chunk in memory."""
    return pack_chunks(reader, objects, chunk=CHUNK)


def write_pack_to(path: str, reader: PackReader, objects: list[tuple[int, bytes]]) -> int:
    with open(path, "wb") as f:
        return write_pack_of(f, reader, objects)


def wants_hash(wants: list[bytes]) -> str:
    h = hashlib.sha256()
    for w in sorted(set(wants)):
        h.update(w)
    return h.hexdigest()


class Server:
    """fetch/bundle for one hub: path choice, clone caching, temporary bundles."""

    def __init__(self, store: RepoStore) -> None:
        self.store = store
        lim = store.settings.limits
        self.stream_max_blobs = lim.stream_max_blobs
        self.stream_max_bytes = lim.stream_max_bytes

    def fetch(
        self,
        repo_id: int,
        user_id: int,
        wants: list[bytes],
        haves: list[bytes],
        path: str,
        have_objects: list[bytes] | None = None,
    ) -> StreamAnswer | PresignAnswer:
        """What a fetch receives; ``have_objects`` (blobs a cut-off attempt of the client
        kept) are left out, so a resumed clone moves only the rest."""
        reader, infos = self.store.reader(repo_id)
        for w in wants:
            if not reader.has(w):
                raise HubError(400, "unknown_want", f"the repository has no object {w.hex()}")
        clone = not haves and not have_objects and bool(wants)
        manifest_key = bundle_key(repo_id, f"clone-{wants_hash(wants)}", ".json")
        if clone:
            cached = self._read_manifest(manifest_key)
            if cached is not None:
                if path == "presign" or (path == "auto" and not self._small_manifest(cached)):
                    return self._presigned(cached)
                single = self._single_stored_pack(repo_id, infos, cached)
                if single is not None:
                    return StreamAnswer(reader, [], single, cached["objects"])
        objects = objects_to_send(reader, wants, haves)
        if have_objects:
            kept = set(have_objects)
            objects = [o for o in objects if o[0] != BLOB or o[1] not in kept]
        stream = path == "stream" or (path == "auto" and self._small(reader, objects))
        direct = self._direct_packs(reader, infos, objects)
        if stream:
            if direct is not None and len(direct) == 1:
                # One stored pack is exactly the answer: send its bytes as they are.
                return StreamAnswer(reader, objects, self.store.cached_path(direct[0].name))
            return StreamAnswer(reader, objects)
        if clone or direct is not None:
            manifest = self._manifest(repo_id, user_id, reader, direct, objects)
            if clone:  # remembered per tips set (cheap for stored packs, else built once)
                with self.store.db.session() as s:
                    dbops.defer_deletion(
                        s,
                        secrets.token_hex(16),
                        repo_id,
                        user_id,
                        manifest_key,
                        manifest["expires"],
                        SCHEDULED,
                    )
                self.save_manifest(manifest_key, manifest)
            return self._presigned(manifest)
        return self._temporary_bundle(repo_id, user_id, reader, objects)

    @staticmethod
    def _direct_packs(
        reader: PackReader, infos: list[PackInfo], objects: list[tuple[int, bytes]]
    ) -> list[PackInfo] | None:
        """The stored packs whose union is exactly ``objects``, if there are such (few).

        Pushes arrive as packs of what the hub lacked, so a clone is usually the union of all
        stored packs and a pull of the last pushes the union of the newest ones: those packs
        are then handed out as they are, with nothing built. Costs one set lookup per stored
        object, from the indexes alone.
        """
        need = {oid for _, oid in objects}
        chosen: list[PackInfo] = []
        covered = small = 0
        for info, pf in zip(reversed(infos), reader.packs, strict=True):
            if info.objects > len(need) - covered:
                continue
            if all(oid in need for oid in pf.ids()):
                chosen.append(info)
                covered += info.objects
                small += info.bytes < BIG_PACK
                if small > MAX_DIRECT_PACKS or len(chosen) > MAX_DIRECT_BUNDLES:
                    return None
        if not chosen or covered != len(need):
            return None
        if len(chosen) > 1:  # packs may overlap: count the union, not the sizes
            union: set[bytes] = set()
            for info, pf in zip(reversed(infos), reader.packs, strict=True):
                if info in chosen:
                    union.update(pf.ids())
            if len(union) != len(need):
                return None
        chosen.reverse()  # push order
        return chosen

    def _single_stored_pack(
        self, repo_id: int, infos: list[PackInfo], manifest: dict[str, Any]
    ) -> Path | None:
        if len(manifest["bundles"]) != 1:
            return None
        key = manifest["bundles"][0]["key"]
        for i in infos:
            if pack_key(repo_id, i.name) == key:
                return self.store.cached_path(i.name)
        return None

    # -------------------------------------------------------------------- path choice
    def _small(self, reader: PackReader, objects: list[tuple[int, bytes]]) -> bool:
        """At most stream_max_blobs blobs and (bodies summed from the indexes) stream_max_bytes."""
        blobs = sum(1 for kind, _ in objects if kind == BLOB)
        if blobs > self.stream_max_blobs:
            return False
        size = 0
        for _, oid in objects:
            size += reader.size(oid) or 0
            if size > self.stream_max_bytes:
                return False
        return True

    def _small_manifest(self, m: dict[str, Any]) -> bool:
        return bool(m["blobs"] <= self.stream_max_blobs and m["bytes"] <= self.stream_max_bytes)

    # ---------------------------------------------------------------------- bundles
    def _read_manifest(self, key: str) -> dict[str, Any] | None:
        storage = self.store.storage
        try:
            if not storage.exists(key):
                return None
            with storage.open_read(key) as f:
                doc = json.loads(f.read())
            if doc.get("expires", 0) < time.time() + BUNDLE_URL_TTL_S:
                return None  # would be swept while a URL we hand out is still valid
            for b in doc["bundles"]:
                if not storage.exists(b["key"]):
                    return None
            return doc  # type: ignore[no-any-return]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _manifest(
        self,
        repo_id: int,
        user_id: int,
        reader: PackReader,
        direct: list[PackInfo] | None,
        objects: list[tuple[int, bytes]],
    ) -> dict[str, Any]:
        """Where the answer's bundles are: the stored packs themselves, or one built bundle."""
        blobs = sum(1 for kind, _ in objects if kind == BLOB)
        if direct is not None:
            bundles = [{"key": pack_key(repo_id, i.name), "size": i.bytes} for i in direct]
            total = sum(i.bytes for i in direct)
            expires = time.time() + REPACK_GRACE_S
        else:
            name = f"clone-{secrets.token_hex(16)}"
            key = bundle_key(repo_id, name)
            expires = time.time() + CLONE_BUNDLE_TTL_S
            with self.store.db.session() as s:
                dbops.defer_deletion(s, name, repo_id, user_id, key, expires, SCHEDULED)
            total = self._store_pack(key, reader, objects)
            bundles = [{"key": key, "size": total}]
        return {
            "objects": len(objects),
            "blobs": blobs,
            "bytes": total,
            "bundles": bundles,
            "expires": expires,
        }

    def _presigned(self, manifest: dict[str, Any]) -> PresignAnswer:
        storage = self.store.storage
        return PresignAnswer(
            manifest["objects"],
            [
                {"url": storage.presign_get(b["key"], BUNDLE_URL_TTL_S), "size": b["size"]}
                for b in manifest["bundles"]
            ],
        )

    def _temporary_bundle(
        self,
        repo_id: int,
        user_id: int,
        reader: PackReader,
        objects: list[tuple[int, bytes]],
    ) -> PresignAnswer:
        """A fetch's own bundle; its ledger row lets the sweep delete it once the URL expired."""
        token = secrets.token_hex(16)
        key = bundle_key(repo_id, f"tmp-{token}")
        with self.store.db.session() as s:
            dbops.defer_deletion(
                s, token, repo_id, user_id, key, time.time() + BUNDLE_URL_TTL_S + 300, SCHEDULED
            )
        size = self._store_pack(key, reader, objects)
        return PresignAnswer(
            len(objects),
            [{"url": self.store.storage.presign_get(key, BUNDLE_URL_TTL_S), "size": size}],
        )

    def _store_pack(self, key: str, reader: PackReader, objects: list[tuple[int, bytes]]) -> int:
        """Write the pack of ``objects`` to a temporary file and store it under ``key``."""
        tmp = tempfile.NamedTemporaryFile(dir=self.store.tmp_dir, suffix=".pack", delete=False)
        tmp.close()
        try:
            size = write_pack_to(tmp.name, reader, objects)
            self.store.put_immutable(key, Path(tmp.name))
        finally:
            os.unlink(tmp.name)
        return size

    def save_manifest(self, key: str, manifest: dict[str, Any]) -> None:
        self.store.storage.put_bytes(key, json.dumps(manifest).encode())
