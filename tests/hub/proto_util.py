"""Helpers for the protocol tests: a plain HTTP client, in-memory histories, push/fetch calls.

Deliberately not the muse client: these tests speak the wire contract (docs/wire.md §4)
byte for byte with http.client, so they check the hub and nothing else.
"""

from __future__ import annotations

import http.client
import io
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from muse.core import objects as O
from muse.core.pack.codec import read_pack, write_pack

SIG = O.Signature("Test Author", "test@example.invalid", 1704067200)


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> str | None:
        try:
            return self.json().get("error")  # type: ignore[no-any-return]
        except ValueError:
            return None


def request(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> Resp:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        path = u.path + (f"?{u.query}" if u.query else "")
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def pack_bytes(objects: list[tuple[int, bytes]]) -> bytes:
    buf = io.BytesIO()
    write_pack(buf, objects)
    return buf.getvalue()


def unpack(data: bytes) -> dict[bytes, tuple[int, bytes]]:
    return {oid: (kind, body) for kind, oid, body in read_pack(io.BytesIO(data))}


def update(ref: str, old: bytes | None, new: bytes | None, force: bool = False) -> dict[str, Any]:
    return {
        "ref": ref,
        "old": old.hex() if old else None,
        "new": new.hex() if new else None,
        "force": force,
    }


def push_body(updates: list[dict[str, Any]], pack: bytes) -> bytes:
    head = json.dumps({"updates": updates}).encode()
    return len(head).to_bytes(4, "big") + head + pack


@dataclass
class History:
    """An in-memory history: every object by id, and a per-branch view of the files."""

    objects: dict[bytes, tuple[int, bytes]] = field(default_factory=dict)
    files: dict[bytes, dict[str, bytes]] = field(default_factory=dict)  # commit -> path -> blob
    tick: int = 0

    def add(self, kind: int, body: bytes) -> bytes:
        oid = O.object_id(kind, body)
        self.objects[oid] = (kind, body)
        return oid

    def _tree(self, paths: dict[str, bytes]) -> bytes:
        here: dict[str, tuple[int, bytes]] = {}
        subdirs: dict[str, dict[str, bytes]] = {}
        for path, blob in paths.items():
            head, sep, rest = path.partition("/")
            if sep:
                subdirs.setdefault(head, {})[rest] = blob
            else:
                here[head] = (O.MODE_FILE, blob)
        for name, sub in subdirs.items():
            here[name] = (O.MODE_TREE, self._tree(sub))
        return self.add(O.TREE, O.encode_tree([(n, m, i) for n, (m, i) in here.items()]))

    def commit(
        self, changes: dict[str, bytes | None], parent: bytes | None = None, message: str = "c"
    ) -> bytes:
        """A commit on top of ``parent`` applying {path: content or None (delete)}."""
        paths = dict(self.files.get(parent, {})) if parent else {}
        for path, data in changes.items():
            if data is None:
                paths.pop(path, None)
            else:
                paths[path] = self.add(O.BLOB, data)
        tree = self._tree(paths)
        self.tick += 1
        sig = O.Signature(SIG.name, SIG.email, SIG.time + self.tick)
        cid = self.add(
            O.COMMIT,
            O.Commit(tree, (parent,) if parent else (), sig, sig, message).encode(),
        )
        self.files[cid] = paths
        return cid

    def reachable(self, tip: bytes, stop: set[bytes] | None = None) -> set[bytes]:
        """Every object reachable from tip (not descending into ``stop`` commits' closure)."""
        out: set[bytes] = set()
        todo = [tip]
        while todo:
            oid = todo.pop()
            if oid in out or (stop and oid in stop):
                continue
            out.add(oid)
            kind, body = self.objects[oid]
            if kind == O.COMMIT:
                tree, parents = O.commit_refs(body)
                todo.append(tree)
                todo.extend(parents)
            elif kind == O.TREE:
                _, ids = O.tree_refs(body)
                todo.extend(ids[i : i + 32] for i in range(0, len(ids), 32))
        return out

    def pack_of(self, ids: set[bytes]) -> bytes:
        items = sorted(ids, key=lambda i: self.objects[i][0], reverse=True)
        return pack_bytes([self.objects[i] for i in items])


class HubClient:
    """The protocol endpoints of one repository, as raw HTTP calls."""

    def __init__(self, base_url: str, owner: str, slug: str, token: str | None) -> None:
        self.base = f"{base_url.rstrip('/')}/{owner}/{slug}"
        self.token = token

    def refs(self, token: str | None = ...) -> Resp:  # type: ignore[assignment]
        return request("GET", f"{self.base}/refs", headers=auth(self._tok(token)))

    def _tok(self, token: str | None) -> str | None:
        return self.token if token is ... else token  # type: ignore[comparison-overlap]

    def push_stream(
        self,
        updates: list[dict[str, Any]],
        pack: bytes,
        token: str | None = ...,  # type: ignore[assignment]
    ) -> Resp:
        return request(
            "POST",
            f"{self.base}/push/stream",
            body=push_body(updates, pack),
            headers={"Content-Type": "application/x-muse-push", **auth(self._tok(token))},
        )

    def post_json(self, verb: str, doc: Any, token: str | None = ...) -> Resp:  # type: ignore[assignment]
        return request(
            "POST",
            f"{self.base}/{verb}",
            body=json.dumps(doc).encode(),
            headers={"Content-Type": "application/json", **auth(self._tok(token))},
        )

    def push_presign(
        self,
        updates: list[dict[str, Any]],
        pack: bytes,
        token: str | None = ...,  # type: ignore[assignment]
    ) -> Resp:
        r = self.post_json("push/presign", {"size": len(pack), "objects": 0}, token)
        if r.status != 200:
            return r
        doc = r.json()
        put = request(doc["method"], doc["url"], body=pack, headers=doc["headers"])
        assert put.status in (200, 201, 204), (put.status, put.body[:300])
        return self.post_json(
            "push/commit", {"upload_id": doc["upload_id"], "updates": updates}, token
        )

    def fetch(
        self,
        wants: list[bytes],
        haves: list[bytes] = (),  # type: ignore[assignment]
        path: str = "auto",
        token: str | None = ...,  # type: ignore[assignment]
    ) -> tuple[Resp, dict[bytes, tuple[int, bytes]]]:
        """fetch/bundle, following presigned bundles; returns the answer and the objects."""
        r = self.post_json(
            "fetch/bundle",
            {"wants": [w.hex() for w in wants], "haves": [h.hex() for h in haves], "path": path},
            token,
        )
        objs: dict[bytes, tuple[int, bytes]] = {}
        if r.status != 200:
            return r, objs
        if r.headers.get("content-type", "").startswith("application/x-muse-pack"):
            objs = unpack(r.body)
        else:
            for b in r.json()["bundles"]:
                g = request("GET", b["url"])
                assert g.status == 200, (g.status, g.body[:200])
                assert len(g.body) == b["size"]
                objs.update(unpack(g.body))
        return r, objs
