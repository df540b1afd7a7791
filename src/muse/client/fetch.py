"""Fetch: bring a hub's objects into the local store as packs, then move remote-tracking refs.

Order is what keeps a repository consistent when anything fails half-way: every pack is
received and verified (``receive_pack`` re-hashes every object as it streams to disk and
renames the pack into place only when its checksum matched), the new tips are checked to be
connected, and only then do refs move. An interrupted fetch leaves at most an unreferenced
pack; a retry simply runs again.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from muse.client.progress import Progress
from muse.client.session import RemoteRefs, Session
from muse.client.transport import ExpiredURL, Response, WireError, network_error
from muse.core.record import Record
from muse.core.refnames import HEADS, REMOTES, TAGS
from muse.core.repo import Repository
from muse.errors import UsageError
from muse.wire.messages import JSON_TYPE

if TYPE_CHECKING:
    from collections.abc import Callable

    from muse.core.pack.codec import PackLimits
    from muse.core.pack.file import PackFile
    from muse.core.warm import WarmBlobs

#: What this client accepts in one pack it receives (fetch, pull, clone): the receiver's own
#: policy, whatever the hub announces (docs/client.md, "Limits"). Each can be changed with
#: ``MUSE_<NAME>`` in the environment (``MUSE_MAX_PACK_BYTES=20G``) or ``[fetch] <name>`` in
#: the global or the repository's config; the environment wins.
RECEIVE_LIMITS: dict[str, int] = {
    "max_pack_bytes": 10 << 30,  # 10 GiB of pack on the wire
    "max_object_bytes": 2 << 30,  # 2 GiB for one object
    "max_objects": 10_000_000,
    "max_decompressed_bytes": 40 << 30,  # 40 GiB after decompression (a zstd bomb stops)
    "max_expansion": 250,  # zstd output at most 250 x the pack bytes read (+ 64 MiB)
}
#: At most this many kept blobs are named to the hub on a resumed fetch (its request limit).
MAX_HAVE_OBJECTS = 100_000
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class Transfer(Record):
    """What moved over the wire, for the --json summary."""

    _fields = ("objects", "bytes", "path", "wire_seconds", "requests", "packs")

    def __init__(
        self,
        objects: int = 0,
        bytes: int = 0,
        path: str = "none",
        wire_seconds: float = 0.0,
        requests: int = 0,
        packs: list[PackFile] | None = None,
    ) -> None:
        self.objects = objects
        self.bytes = bytes
        self.path = path
        self.wire_seconds = wire_seconds
        self.requests = requests
        self.packs: list[PackFile] = [] if packs is None else packs  # the packs received
        #: pack path -> what its trees and commits reference, collected while it was
        #: received (check_connected then reads no pack again)
        self.references: dict[str, Any] = {}


class FetchResult(Record):
    _fields = ("transfer", "remote_refs", "updated", "tags_kept")

    def __init__(
        self,
        transfer: Transfer,
        remote_refs: RemoteRefs,
        updated: dict[str, tuple[bytes | None, bytes]] | None = None,
    ) -> None:
        self.transfer = transfer
        self.remote_refs = remote_refs
        #: remote-tracking refs and tags that moved or appeared: ref -> (old, new)
        self.updated: dict[str, tuple[bytes | None, bytes]] = {} if updated is None else updated
        #: tags the hub has at another object than here: kept as they are (git's rule)
        self.tags_kept: list[str] = []


def new_tags(repo: Repository, remote_refs: dict[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    """(the hub's tags this repository lacks: ref -> id, names of the tags both have at
    different objects). A local tag is never replaced by a fetch: it does not move by itself."""
    fresh: dict[str, bytes] = {}
    kept: list[str] = []
    for ref, oid in remote_refs.items():
        if not ref.startswith(TAGS):
            continue
        local = repo.refs.read(ref)
        if local is None:
            fresh[ref] = oid
        elif local != oid:
            kept.append(ref[len(TAGS) :])
    return fresh, kept


class _Counted:
    """The response body as a file for receive_pack, reporting bytes to the progress line."""

    def __init__(self, resp: Response, progress: Progress) -> None:
        self.resp = resp
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self.resp.read(n)
        if self.progress.enabled:
            self.progress.add_bytes(len(data))
        return data

    def readinto(self, b: Any) -> int:
        n = self.resp.readinto(b)
        if self.progress.enabled:
            self.progress.add_bytes(n)
        return n


def pack_limits(repo: Repository | None = None) -> PackLimits:
    """The limits every pack received into ``repo`` is held to: :data:`RECEIVE_LIMITS`, then
    ``[fetch]`` in the config (global, then the repository's; only the global one without a
    repository), then ``MUSE_MAX_*``. A bad value is a UsageError, never ignored.

    What the hub announces in its refs document is the hub's policy for what it *accepts*;
    it plays no part here, so a hub announcing ``null`` or huge limits lifts none of these.
    """
    from muse.core.pack.codec import PackLimits

    if repo is not None:
        config: Any = repo.effective_config().get("fetch")
    else:
        from muse.core import config as _config

        config = _config.load(_config.global_config_path()).get("fetch")
    values: dict[str, Any] = {}
    for name, default in RECEIVE_LIMITS.items():
        env = "MUSE_" + name.upper()
        raw = os.environ.get(env)
        if raw is not None and raw.strip():
            values[name] = _size(raw, env)
        elif isinstance(config, dict) and config.get(name) is not None:
            values[name] = _size(config[name], f"fetch.{name} in the config")
        else:
            values[name] = default
    return PackLimits(**values)


def _size(value: Any, where: str) -> int:
    """A positive count of bytes or objects: an integer, optionally with k, m, g or t (KiB...)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        text = str(value).strip().lower().removesuffix("ib").removesuffix("b")
        unit = _UNITS.get(text[-1:], 1)
        digits = text[:-1] if unit > 1 else text
        n = int(digits) if digits.isascii() and digits.isdigit() else 0
        n *= unit
    if n <= 0:
        raise UsageError(
            f"bad limit {value!r} in {where} (a positive number, optionally with k, m, g or t)"
        )
    return n


def _receive(
    repo: Repository,
    resp: Response,
    limits: PackLimits,
    progress: Progress,
    got: Transfer,
    warm: WarmBlobs | None = None,
) -> PackFile:
    """Receive one pack into the store; what its trees and commits reference is collected in
    the same decoding pass (into ``got.references``) for check_connected, and ``warm`` keeps
    the blobs of the checkout that follows (muse.core.warm)."""
    from muse.core.objects import BLOB, CHUNKS, COMMIT, TAG, TREE
    from muse.wire.verify import Connectivity

    length = resp.header("Content-Length")
    if length is not None and length.isdigit():
        progress.total_bytes += int(length)
    refs = Connectivity()
    kinds: tuple[int, ...] = (TREE, COMMIT, CHUNKS, TAG)
    inspect: Callable[[int, bytes, memoryview], None]
    if warm is None:

        def inspect(kind: int, oid: bytes, body: memoryview) -> None:
            refs.add(kind, bytes(body))

    else:
        kinds += (BLOB,)
        see = warm.see

        def inspect(kind: int, oid: bytes, body: memoryview) -> None:
            if kind != BLOB:
                refs.add(kind, bytes(body))
            see(kind, oid, body)

    try:
        pf = repo.store.receive_pack(
            _Counted(resp, progress),  # type: ignore[arg-type]
            limits,
            resumable=True,
            inspect=inspect,
            inspect_kinds=kinds,
        )
    finally:
        resp.close()
    got.references[pf.path] = refs
    got.packs.append(pf)
    return pf


def download(
    repo: Repository,
    session: Session,
    wants: list[bytes],
    haves: list[bytes],
    path: str,
    limits: PackLimits,
    progress: Progress,
    warm: WarmBlobs | None = None,
) -> Transfer:
    """Receive every object reachable from wants and not from haves into the local store.

    ``warm``: keeps the blobs a checkout of its tips will read, for ObjectStore.warm.

    Retries the whole exchange when the connection breaks mid-body or a presigned URL
    expired, under the transport's one retry budget (RetryPolicy: the requests inside spend
    it too); packs already stored are named by their checksum, so receiving the same bundle
    again replaces it with identical bytes.
    """
    from muse.core.pack.codec import PackError

    t0 = time.monotonic()
    tr = session.transport
    while True:
        got = Transfer(path=path)
        source = ("", False)  # whose body is being read: (url, presigned)
        try:
            source = (session._url("fetch/bundle"), False)
            # What an interrupted attempt (this one's retry, or a killed run) kept: not again.
            kept = repo.store.partial_blobs(limits)[:MAX_HAVE_OBJECTS]
            if path != "stream":  # the hub may answer with bundles in the store
                session.open_store()
            resp = session.fetch_bundle(wants, haves, path, kept)
            if resp.content_type == JSON_TYPE:
                answer = resp.json()
                bundles = answer.get("bundles") or []
                got.path = "presign"
                got.objects = int(answer.get("objects") or 0)
                progress.start("Receiving bundle", got.objects)
                for b in bundles:
                    url = session._resolve(str(b["url"]))
                    source = (url, True)
                    bresp = session.get_bundle(url)
                    _receive(repo, bresp, limits, progress, got, warm)
                    got.bytes += bresp.bytes_read
            else:
                got.path = "stream"
                got.objects = int(resp.header("Muse-Objects") or 0)
                progress.start("Receiving objects", got.objects)
                if got.objects == 0 and resp.header("Muse-Objects") is not None:
                    resp.read()
                    resp.close()
                else:
                    pf = _receive(repo, resp, limits, progress, got, warm)
                    got.objects = got.objects or int(getattr(pf, "count", 0))
                got.bytes = resp.bytes_read
            progress.finish_line()
            repo.store.clear_partial()
            if warm is not None:
                repo.store.warm(warm.kept)
            got.wire_seconds = time.monotonic() - t0
            got.requests = tr.requests
            return got
        except ExpiredURL as e:
            err: WireError = e  # ask the hub again: it hands out fresh URLs
            retry_after = None
        except PackError as e:
            if e.code == "too_large":
                raise WireError(
                    f"the hub sent more than this client accepts: {e} (if you trust the hub, "
                    "raise MUSE_MAX_PACK_BYTES, MUSE_MAX_OBJECT_BYTES, MUSE_MAX_OBJECTS or "
                    "MUSE_MAX_DECOMPRESSED_BYTES, or [fetch] in the config)",
                    "hub_refused",
                    e.code,
                ) from None
            err = WireError(
                f"the pack from {session.url.hub} was broken ({e}); try again",
                "network",
                "bad_pack",
                retryable=True,
            )
            retry_after = None
        except WireError as e:
            if not e.retryable:
                raise
            err, retry_after = e, e.retry_after  # the budget decides (requests spend it too)
        except OSError as e:  # the body broke mid-way
            err = network_error(e, source[0] or session.url.repo_url, tr.context, source[1])
            retry_after = None
            if not err.retryable:
                raise err from None
        finally:
            progress.finish_line()
        if not tr.retry.wait(retry_after):
            if isinstance(err, ExpiredURL):
                raise WireError(
                    f"storage kept refusing the download URLs from {session.url.hub} ({err}); "
                    "check the hub's storage settings and the clocks",
                    "hub_refused",
                    "download_failed",
                )
            raise err


def check_connected(repo: Repository, transfer: Transfer, tips: list[bytes]) -> None:
    """Every tip is present with everything it references (before any ref may move to it).

    Work is proportional to what arrived: what the new trees and commits reference was
    collected while they were received (``transfer.references``), and is looked up in the
    new packs or the store.
    """
    from muse.core.pack.codec import PackError

    try:
        for pf in transfer.packs:
            transfer.references[pf.path].check(pf, repo.store, [])
    except PackError as e:
        raise WireError(
            f"the hub sent an incomplete history ({e}); nothing was changed (try again; if it "
            "persists the hub repository is damaged)",
            "hub_refused",
            "missing_objects",
        ) from None
    missing = [t for t in tips if not repo.store.has(t)]
    if missing:
        raise WireError(
            f"the hub did not send {missing[0].hex()[:12]} (try again; if it persists the hub "
            "repository is damaged)",
            "hub_refused",
            "missing_objects",
        )


def local_haves(repo: Repository) -> list[bytes]:
    """Tips of every local branch, tag and remote-tracking ref: the hub sends nothing below."""
    seen: dict[bytes, None] = {}
    for prefix in (HEADS, REMOTES, TAGS):
        for oid in repo.refs.list(prefix).values():
            seen[oid] = None
    return list(seen)


def fetch(
    repo: Repository,
    remote: str,
    branches: list[str] | None = None,
    path: str = "auto",
    progress: Progress | None = None,
    session: Session | None = None,
    tags: bool = True,
    warm: bool = False,
) -> FetchResult:
    """Fetch a remote's branches (all, or the ones named) and update refs/remotes/<remote>/.

    With ``tags`` (the default), the hub's tags this repository lacks come too, with what
    they name (docs/client.md, "Tags"). ``warm``: a checkout of the branches' tips follows
    (a pull), so the store keeps their blobs as they arrive (muse.core.warm)."""
    from muse.client.remotes import get_url, tracking_ref

    progress = progress or Progress(quiet=True)
    own = session is None
    s = session or Session(get_url(repo, remote))
    try:
        t0 = time.monotonic()
        rr = s.refs()
        heads = {r[len(HEADS) :]: oid for r, oid in rr.refs.items() if r.startswith(HEADS)}
        if branches is not None:
            for b in branches:
                if b not in heads:
                    raise WireError(
                        f"the hub has no branch {b!r} in {s.url.name}"
                        + (
                            f" (branches: {', '.join(sorted(heads))})"
                            if heads
                            else " (it is empty)"
                        ),
                        "not_found",
                        "not_found",
                    )
            heads = {b: heads[b] for b in branches}
        store = repo.store
        fresh, kept = new_tags(repo, rr.refs) if tags else ({}, [])
        tips = [*heads.values(), *fresh.values()]
        wants = list(dict.fromkeys(oid for oid in tips if not store.has(oid)))
        transfer = Transfer()
        if wants:
            limits = pack_limits(repo)  # the client's own, not what the hub announced
            keep = None
            if warm:
                from muse.core.warm import WarmBlobs

                keep = WarmBlobs(heads.values())
            transfer = download(repo, s, wants, local_haves(repo), path, limits, progress, keep)
            check_connected(repo, transfer, wants)
        transfer.wire_seconds = time.monotonic() - t0
        transfer.requests = s.transport.requests
        updated: dict[str, tuple[bytes | None, bytes]] = {}
        for b, oid in heads.items():
            ref = tracking_ref(remote, b)
            old = repo.refs.read(ref)
            if old != oid:
                repo.refs.update(ref, oid)
                updated[ref] = (old, oid)
        for ref, oid in fresh.items():
            repo.refs.update(ref, oid, None)
            updated[ref] = (None, oid)
        result = FetchResult(transfer, rr, updated)
        result.tags_kept = kept
        return result
    finally:
        if own:
            s.close()
