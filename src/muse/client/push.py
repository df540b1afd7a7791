"""Push: send what the hub lacks as one pack, then ask it to move refs by compare-and-swap.

Path choice (docs/wire.md §3): at most ``stream_max_blobs`` blobs and ``stream_max_bytes``
of objects stream through the hub as the body of one request, generated while it is sent
(flat memory); anything larger is written once to a temporary pack file, PUT straight to
object storage through a presigned URL, and committed with a second small request.

Retries are safe because the hub's ref update is idempotent: an update whose ref already
holds the new id succeeds, so a push whose first attempt landed but whose answer was lost
reports success the second time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from muse.client.progress import Progress
from muse.client.session import RemoteRefs, Session
from muse.client.transport import CHUNK, ExpiredURL, WireError
from muse.core.graph import is_ancestor
from muse.core.objects import BLOB
from muse.core.record import Record
from muse.core.refnames import HEADS, TAGS
from muse.core.repo import Repository
from muse.errors import NotFound, Rejected, UsageError
from muse.wire.messages import update_json

if TYPE_CHECKING:
    from muse.client.hubfacts import HubFacts
    from muse.core.pack.splice import Span, SplicedPack

    #: A segment of a large push: objects to pack anew, or whole blocks of local packs.
    Segment = list[tuple[int, bytes]] | SplicedPack
    #: What an upload sends: a pack file (its path) or a spliced pack.
    Bundle = str | SplicedPack


class Update(Record):
    """One ref to move (or delete: ``new`` None)."""

    _fields = ("local", "ref", "old", "new", "force")

    def __init__(
        self, local: str | None, ref: str, old: bytes | None, new: bytes | None, force: bool
    ) -> None:
        self.local = local  # local branch or tag name (None: a deletion)
        self.ref = ref  # remote ref name (refs/heads/x, refs/tags/v1)
        self.old = old  # what the hub has now
        self.new = new
        self.force = force


class PushResult(Record):
    """What a push did."""

    _fields = (
        "objects",
        "bytes",
        "path",
        "wire_seconds",
        "updates",
        "up_to_date",
        "chunks_sent",
        "chunks_deduplicated",
        "negotiate_seconds",
    )

    def __init__(
        self,
        objects: int = 0,
        bytes: int = 0,
        path: str = "none",
        wire_seconds: float = 0.0,
        updates: list[Update] | None = None,
        up_to_date: list[str] | None = None,
    ) -> None:
        self.objects = objects
        self.bytes = bytes
        self.path = path
        self.wire_seconds = wire_seconds
        self.updates: list[Update] = updates if updates is not None else []
        self.up_to_date: list[str] = up_to_date if up_to_date is not None else []
        self.chunks_sent = 0  # chunks of large files sent ...
        self.chunks_deduplicated = 0  # ... and left out: the hub has them, or sent once
        self.negotiate_seconds = 0.0  # finding what to send (wire_seconds includes it)


def _pack_stream(
    repo: Repository, objs: list[tuple[int, bytes]], progress: Progress, counter: list[int]
) -> Iterator[bytes]:
    """The pack, produced piece by piece while the request body is being sent."""
    from muse.core.pack.stream import pack_chunks

    counter[0] = 0
    total = sum(_object_size(repo, oid) for _, oid in objs) if progress.enabled else 0
    progress.start("Sending objects", len(objs), total)  # (the pack is a little smaller)
    on_object = progress.add_objects if progress.enabled else None
    for data in pack_chunks(repo.store, objs, on_object, CHUNK):
        counter[0] += len(data)
        progress.add_bytes(len(data))
        yield data


def _write_temp_pack(
    repo: Repository, objs: list[tuple[int, bytes]], progress: Progress
) -> tuple[str, int, bytes]:
    """The pack as a file (for a presigned PUT that needs a Content-Length), its size and
    its SHA-256 (which the hub may bind the upload URL to)."""
    import tempfile

    from muse.core.pack.stream import write_pack_file

    tmpdir = os.path.join(repo.muse_dir, "tmp")
    os.makedirs(tmpdir, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=tmpdir, prefix="push-", suffix=".pack")
    progress.start("Packing objects", len(objs))
    on_object = progress.add_objects if progress.enabled else None
    try:
        with os.fdopen(fd, "wb", buffering=CHUNK) as f:
            size, sha256 = write_pack_file(f, repo.store, objs, on_object)
    except BaseException:
        os.unlink(path)
        raise
    progress.finish_line()
    return path, size, sha256


def _object_size(repo: Repository, oid: bytes) -> int:
    packs = repo.store.packs
    if packs is not None:
        n = packs.size(oid)
        if n is not None:
            return int(n)
    try:
        return os.stat(repo.store.loose_path(oid)).st_size
    except OSError:
        found = repo.store.get(oid)
        return len(found[1]) if found else 0


def choose_path(
    repo: Repository, objs: list[tuple[int, bytes]], max_blobs: int, max_bytes: int
) -> str:
    """stream when at most max_blobs blobs and max_bytes of objects, else presign."""
    blobs = [oid for kind, oid in objs if kind == BLOB]
    if len(blobs) > max_blobs:
        return "presign"
    total = 0
    for _kind, oid in objs:
        total += _object_size(repo, oid)
        if total > max_bytes:
            return "presign"
    return "stream"


def plan_updates(
    repo: Repository,
    branches: list[tuple[str, str]],
    remote_refs: dict[str, bytes],
    force: bool,
    tags: list[str] | None = None,
    delete: list[str] | None = None,
) -> tuple[list[Update], list[str]]:
    """Updates to send, refusing non-fast-forwards here already (the hub checks again).

    ``tags``: local tag names to push (a tag the hub has at another object is refused
    unless forced, git's rule); ``delete``: remote refs to delete (a full name, or a
    branch, else a tag, of that name on the hub).
    """
    updates: list[Update] = []
    same: list[str] = []
    for name in delete or []:
        ref = _remote_ref(name, remote_refs)
        old = remote_refs.get(ref)
        if old is None:
            raise NotFound(f"the hub has no {_ref_label(ref)} to delete")
        if any(u.ref == ref for u in updates):
            continue
        updates.append(Update(None, ref, old, None, force))
    for tag in tags or []:
        new = repo.refs.read(TAGS + tag)
        if new is None:
            raise NotFound(f"tag {tag!r} not found")
        ref = TAGS + tag
        old = remote_refs.get(ref)
        if old == new:
            same.append(tag)
            continue
        if old is not None and not force:
            raise Rejected(
                f"rejected: the hub already has tag {tag} at {old.hex()[:12]}, yours is at "
                f"{new.hex()[:12]} (a tag moves only with 'muse push --force')"
            )
        updates.append(Update(tag, ref, old, new, force))
    for local, remote_branch in branches:
        new = repo.refs.read(HEADS + local)
        if new is None:
            raise NotFound(f"branch {local!r} has no commits to push")
        ref = HEADS + remote_branch
        old = remote_refs.get(ref)
        if old == new:
            same.append(local)
            continue
        if old is not None and not force:
            if not repo.store.has(old) or not is_ancestor(repo.store, old, new):
                raise Rejected(
                    f"rejected: the hub's {remote_branch} has commits that your {local} does "
                    "not have (run 'muse pull' to merge them first, or 'muse push --force' to "
                    "overwrite them)",
                )
        updates.append(Update(local, ref, old, new, force))
    return updates, same


def _remote_ref(name: str, remote_refs: dict[str, bytes]) -> str:
    if name.startswith("refs/"):
        return name
    if HEADS + name not in remote_refs and TAGS + name in remote_refs:
        return TAGS + name
    return HEADS + name


def _ref_label(ref: str) -> str:
    if ref.startswith(HEADS):
        return f"branch {ref[len(HEADS) :]!r}"
    if ref.startswith(TAGS):
        return f"tag {ref[len(TAGS) :]!r}"
    return ref


class _Plan(Record):
    """What a push sends, planned against some view of the hub's refs."""

    _fields = ("updates", "objs", "reuse", "haves", "tracking")

    def __init__(
        self,
        updates: list[Update],
        objs: list[tuple[int, bytes]],
        reuse: str | None,
        haves: list[bytes],
        tracking: list[bytes],
    ) -> None:
        self.updates = updates
        self.objs = objs  # (kind, id) to send; a large push's chunks last
        self.reuse = reuse  # a local pack holding exactly objs, sent as it is
        self.haves = haves  # what the hub is taken to have
        self.tracking = tracking  # ... of which from the remote-tracking refs

    def update_docs(self) -> list[dict[str, Any]]:
        """The ref updates as the hub's push requests carry them."""
        return [update_json(u.ref, u.old, u.new, u.force) for u in self.updates]


def _plan(
    repo: Repository,
    remote: str,
    remote_refs: dict[str, bytes],
    updates: list[Update],
    result: PushResult,
) -> _Plan:
    """The objects ``updates`` need, against the hub's refs and our remote-tracking refs."""
    from muse.client.closure import closure_pack_path
    from muse.client.remotes import tracking_refs
    from muse.wire.negotiate import objects_to_send

    store = repo.store
    remote_have = [oid for oid in remote_refs.values() if store.has(oid)]
    tracking = [oid for oid in tracking_refs(repo, remote).values() if store.has(oid)]
    haves = list(dict.fromkeys(remote_have + tracking))
    wants = [u.new for u in updates if u.new is not None]
    found = None if haves else closure_pack_path(repo, wants)
    if found is not None:  # the hub has nothing and one local pack is exactly the history
        return _Plan(updates, found[1], found[0], haves, tracking)
    stats: dict[str, int] = {}
    t_neg = time.monotonic()
    objs = objects_to_send(store, wants, haves, stats)
    result.negotiate_seconds = time.monotonic() - t_neg
    result.chunks_sent = stats.get("chunks_sent", 0)
    result.chunks_deduplicated = stats.get("chunks_deduplicated", 0)
    return _Plan(updates, objs, None, haves, tracking)


def _tracking_view(repo: Repository, remote: str) -> dict[str, bytes]:
    """The hub's branches as our remote-tracking refs last saw them."""
    from muse.client.remotes import tracking_ref, tracking_refs

    prefix = len(tracking_ref(remote, ""))
    return {HEADS + name[prefix:]: oid for name, oid in tracking_refs(repo, remote).items()}


def _plan_holds(plan: _Plan, repo: Repository, hub_refs: dict[str, bytes]) -> bool:
    """Whether a plan made on the remote-tracking refs stands against the hub's real refs:
    every ref to move is where we thought (the hub's compare-and-swap would refuse it
    otherwise) and the hub has nothing of ours that the plan did not count as had (the pack
    would carry what it already has)."""
    if any(hub_refs.get(u.ref) != u.old for u in plan.updates):
        return False
    had = set(plan.haves)
    return all(oid in had or not repo.store.has(oid) for oid in hub_refs.values())


def push(
    repo: Repository,
    remote: str,
    branches: list[tuple[str, str]],
    force: bool = False,
    path: str = "auto",
    progress: Progress | None = None,
    tags: list[str] | None = None,
    delete: list[str] | None = None,
    all_tags: bool = False,
) -> PushResult:
    """Push (local branch, remote branch) pairs, local ``tags`` (``all_tags``: every local
    tag the hub does not have as it is here; one it has at another object is refused unless
    forced) and deletions of remote refs, all in one transaction.

    A push of branches that goes presigned to a hub seen before (muse.client.hubfacts) is
    planned on the remote-tracking refs and asks for the hub's refs with its presign, one
    request fewer (git's count); a plan the hub's refs do not bear out is made again on them
    before anything is uploaded.
    """
    from muse.client import hubfacts
    from muse.client.remotes import get_url

    progress = progress or Progress(quiet=True)
    if path not in ("auto", "stream", "presign"):
        raise UsageError(f"--path must be stream or presign, not {path!r}")
    t0 = time.monotonic()
    with Session(get_url(repo, remote), write=True) as s:
        result = PushResult()
        rr: RemoteRefs | None = None
        plan: _Plan | None = None
        facts = None
        if path != "stream" and not (tags or delete or all_tags):
            facts = hubfacts.load(s.url.origin)
        if facts is not None:
            plan, rr, sent = _push_on_tracking(
                repo, remote, s, branches, force, path, facts, result, progress
            )
            if sent:  # the hub's refs bore the plan out
                return _pushed(repo, remote, result, t0)
        if rr is None:
            rr = s.refs()
        if plan is not None and not _plan_holds(plan, repo, rr.refs):
            plan = None
        if plan is None:
            tags = list(tags or [])
            if all_tags:
                for ref, oid in repo.refs.list(TAGS).items():
                    name = ref[len(TAGS) :]
                    if name not in tags and rr.refs.get(ref) != oid:
                        tags.append(name)
            updates, same = plan_updates(repo, branches, rr.refs, force, tags, delete)
            result = PushResult(updates=updates, up_to_date=same)
            if not updates:
                result.wire_seconds = time.monotonic() - t0
                return result
            plan = _plan(repo, remote, rr.refs, updates, result)
        chosen = _choose(repo, plan, path, rr)
        _send_planned(repo, s, plan, rr.refs, chosen, progress, result)
    return _pushed(repo, remote, result, t0)


def _choose(repo: Repository, plan: _Plan, path: str, limits: RemoteRefs) -> str:
    if not plan.objs:
        return "stream"  # only refs move: one small request whatever was asked
    if path != "auto":
        return path
    return choose_path(
        repo,
        plan.objs,
        int(limits.limit("stream_max_blobs")),
        int(limits.limit("stream_max_bytes")),
    )


def _push_on_tracking(
    repo: Repository,
    remote: str,
    s: Session,
    branches: list[tuple[str, str]],
    force: bool,
    path: str,
    facts: HubFacts,
    result: PushResult,
    progress: Progress,
) -> tuple[_Plan | None, RemoteRefs | None, bool]:
    """Plan on the remote-tracking refs and, when that goes presigned, presign with the
    hub's refs asked for. Returns (plan, hub's refs, sent): sent when the refs bore the plan
    out; else the plan to check against the hub's refs (None: plan again on them), and the
    refs when the presign brought them (None: still to ask). A refusal or no change is left
    to be decided on the hub's refs, in its words."""
    view = _tracking_view(repo, remote)
    try:
        updates, same = plan_updates(repo, branches, view, force)
    except (Rejected, NotFound):
        return None, None, False
    if not updates:
        return None, None, False
    result.updates, result.up_to_date = updates, same
    plan = _plan(repo, remote, view, updates, result)
    chosen = _choose(repo, plan, path, RemoteRefs(view, None, facts.limits))
    if chosen != "presign" or result.chunks_sent:
        return plan, None, False  # the stream path and segmented pushes ask for refs first
    s.store_origin = facts.store_origin
    s.open_store()  # its handshakes overlap writing the pack and the presign
    pack_path, size, sha256, temp = _bundle(repo, s, plan.objs, plan.reuse, progress)
    try:
        ticket, rr = s.push_presign_with_refs(size, len(plan.objs), sha256)
        if rr is None:  # a hub that does not answer refs with a presign
            rr = s.refs()
        if not _plan_holds(plan, repo, rr.refs):
            return None, rr, False  # the ticket is left to expire; nothing was uploaded
        body = plan.update_docs()
        result.bytes += size
        result.path = "presign"
        result.objects = len(plan.objs)
        try:
            _presign_push(
                s, pack_path, size, sha256, len(plan.objs), body, progress, presigned=ticket
            )
        except WireError as e:
            _explain_refusal(e)
            if e.code != "missing_objects" or not plan.tracking:
                raise
            _resend(repo, s, plan, rr.refs, "presign", progress, result)
    finally:
        if temp:
            _unlink(pack_path)
    return plan, rr, True


def _bundle(
    repo: Repository,
    s: Session,
    objs: list[tuple[int, bytes]],
    reuse: str | None,
    progress: Progress,
) -> tuple[str, int, bytes | None, bool]:
    """The pack of ``objs`` as a file (``reuse``, a local pack holding exactly them, else a
    temporary one): (path, size, SHA-256 or None, whether it is temporary)."""
    if reuse is not None:
        digest = _file_sha256(reuse) if s.store_origin is not None else None
        return reuse, os.stat(reuse).st_size, digest, False
    pack_path, size, sha256 = _write_temp_pack(repo, objs, progress)
    return pack_path, size, sha256, True


def _send_planned(
    repo: Repository,
    s: Session,
    plan: _Plan,
    hub_refs: dict[str, bytes],
    chosen: str,
    progress: Progress,
    result: PushResult,
) -> None:
    """Send a plan made on the hub's refs (segments first, for large files)."""
    objs = plan.objs
    if plan.reuse is None and result.chunks_sent:
        objs = _send_segments(repo, s, objs, result, chosen, progress)
    body = plan.update_docs()
    try:
        pack_path = plan.reuse if plan.reuse is not None else reusable_pack(repo, objs)
        answer = _send(repo, s, objs, body, chosen, progress, result, pack_path)
    except WireError as e:
        _explain_refusal(e)
        if e.code != "missing_objects" or not plan.tracking:
            raise
        objs, answer = _resend(repo, s, plan, hub_refs, chosen, progress, result)
    result.path = chosen
    result.objects = len(objs)
    if isinstance(answer.get("objects"), int) and chosen == "stream":
        result.objects = int(answer["objects"])


def _resend(
    repo: Repository,
    s: Session,
    plan: _Plan,
    hub_refs: dict[str, bytes],
    chosen: str,
    progress: Progress,
    result: PushResult,
) -> tuple[list[tuple[int, bytes]], dict[str, Any]]:
    """Our remote-tracking refs named objects the hub no longer has: send more, counting only
    on what its refs hold."""
    from muse.wire.negotiate import objects_to_send

    remote_have = [oid for oid in hub_refs.values() if repo.store.has(oid)]
    wants = [u.new for u in plan.updates if u.new is not None]
    objs = objects_to_send(repo.store, wants, remote_have)
    body = plan.update_docs()
    answer = _send(repo, s, objs, body, chosen, progress, result, reusable_pack(repo, objs))
    result.objects = len(objs)
    return objs, answer


def _pushed(repo: Repository, remote: str, result: PushResult, t0: float) -> PushResult:
    """Move the remote-tracking refs of the branches pushed; the push's time."""
    from muse.client.remotes import tracking_ref

    result.wire_seconds = time.monotonic() - t0
    for u in result.updates:
        if u.ref.startswith(HEADS):  # tags have no remote-tracking refs (as in git)
            tref = tracking_ref(remote, u.ref[len(HEADS) :])
            if u.new is not None or repo.refs.read(tref) is not None:
                repo.refs.update(tref, u.new)
    return result


def _explain_refusal(e: WireError) -> None:
    """The hub's refusals of a ref update that are no race: say so, not 'pull first'."""
    if e.code == "tag_exists":
        raise Rejected(
            f"rejected: the hub already has that tag at another object ({e}); a tag moves "
            "only with 'muse push --force'"
        ) from None
    if e.code == "default_branch":
        raise Rejected(
            "rejected: the hub refuses to delete its default branch (make another branch "
            "the default on the hub first)"
        ) from None


#: A push whose large-file chunks exceed this goes in segments of about this size, each kept
#: by the hub as it arrives (push/stage), so a push cut off half way resumes where it stopped.
SEGMENT_BYTES = 64 << 20


def _send_segments(
    repo: Repository,
    s: Session,
    objs: list[tuple[int, bytes]],
    result: PushResult,
    path: str,
    progress: Progress,
) -> list[tuple[int, bytes]]:
    """Send the chunks of a large push ahead in segments; returns what is left to push.

    The chunks are the last ``result.chunks_sent`` entries of ``objs`` (negotiate puts them
    there). The hub is asked which it lacks first: what an interrupted earlier run staged is
    not sent again. Whole blocks of local packs go as they lie (pack.splice: no re-encoding,
    no temporary file); the chunks that share a block with chunks the hub has are packed
    anew. The last, partial segment travels with the final push.
    """
    from muse.core.pack.splice import SplicedPack, whole_blocks

    n = result.chunks_sent
    head, chunks = objs[: len(objs) - n], objs[len(objs) - n :]
    if sum(_object_size(repo, oid) for _, oid in chunks) <= SEGMENT_BYTES:
        return objs
    missing = s.objects_missing([oid for _, oid in chunks])
    kept = len(chunks) - len(missing)
    result.chunks_sent -= kept
    result.chunks_deduplicated += kept
    wanted = [item for item in chunks if item[1] in missing]
    spans, rest = whole_blocks(repo.store.packs, wanted)
    segments: list[Segment] = []
    group: list[Span] = []
    size = 0
    for span in spans:
        group.append(span)
        size += span.length
        if size >= SEGMENT_BYTES:
            segments.append(SplicedPack(group))
            group, size = [], 0
    rest = [item for span in group for item in span.objects] + rest  # short of a segment
    segment: list[tuple[int, bytes]] = []
    size = 0
    for item in rest:
        segment.append(item)
        size += _object_size(repo, item[1])
        if size >= SEGMENT_BYTES:
            segments.append(segment)
            segment, size = [], 0
    if path == "stream":
        for full in segments:
            _stage_stream(repo, s, full, progress, result)
    elif segments:
        _stage_presigned(repo, s, segments, progress, result)
    return head + segment


def _stage_stream(
    repo: Repository,
    s: Session,
    segment: Segment,
    progress: Progress,
    result: PushResult,
) -> None:
    """One segment: a pack of chunks the hub keeps without moving a ref."""
    counter = [0]

    def spliced(pack: SplicedPack) -> Iterator[bytes]:
        counter[0] = 0
        progress.start("Sending objects", pack.count, pack.size)
        for data in pack.chunks():
            counter[0] += len(data)
            progress.add_bytes(len(data))
            yield data

    try:
        if isinstance(segment, list):
            s.push_stage(lambda: _pack_stream(repo, segment, progress, counter))
        else:
            s.push_stage(lambda: spliced(segment))
    finally:
        progress.finish_line()
    result.bytes += counter[0]


def _segment_bundle(
    repo: Repository, segment: Segment, need_sha: bool, progress: Progress
) -> tuple[Bundle, int, bytes | None]:
    """What one segment's upload sends: (the spliced pack, or a temporary pack file written
    now; its size; its SHA-256, computed only where the hub's store binds uploads to it)."""
    if isinstance(segment, list):
        return _write_temp_pack(repo, segment, progress)
    return segment, segment.size, segment.digest() if need_sha else None


def _stage_presigned(
    repo: Repository,
    s: Session,
    segments: list[Segment],
    progress: Progress,
    result: PushResult,
) -> None:
    """The segments as presigned bundles, in a pipeline of three: segment k+1's bundle is
    made ready while segment k is uploaded and segment k-1 committed (the hub's checks, on a
    second connection). Writing a pack (or hashing a spliced one) is reads, SHA-256 and file
    writes, which release the GIL, and the other two wait on the network: on two cores they
    overlap (measured here, a 512 MiB push to a local hub, p50 of 4: 3.2 s one after the
    other, 2.46 s with the pack written ahead; see docs/benchmarks.md "Big files" for the
    commit on its own connection). At most three temporary packs exist at once; a failure
    anywhere stops all three and leaves none."""
    from concurrent.futures import Future, ThreadPoolExecutor

    s.open_store()
    need_sha = s.store_origin is not None
    quiet = Progress(quiet=True)  # one line per upload; packing and commits run behind it
    committer = _SegmentCommitter(s)
    with ThreadPoolExecutor(1, thread_name_prefix="segment") as pool:
        ahead: Future[tuple[Bundle, int, bytes | None]] | None = pool.submit(
            _segment_bundle, repo, segments[0], need_sha, quiet
        )
        try:
            for i, segment in enumerate(segments):
                assert ahead is not None
                bundle, size, sha256 = ahead.result()
                ahead = None
                if i + 1 < len(segments):
                    ahead = pool.submit(_segment_bundle, repo, segments[i + 1], need_sha, quiet)
                count = len(segment) if isinstance(segment, list) else segment.count
                try:
                    committer.raise_failure()  # the commit before failed: stop now
                    ticket = _presign_push(
                        s, bundle, size, sha256, count, [], progress, commit=False
                    )
                except BaseException:
                    _discard(bundle)
                    raise
                committer.add(ticket, bundle, size, sha256, count)
                result.bytes += size
            committer.finish()
        finally:
            committer.close()
            if ahead is not None:  # stopped early: the pack written ahead goes too
                try:
                    _discard(ahead.result()[0])
                except Exception:  # noqa: BLE001 - its writer failed: nothing was left
                    pass


class _SegmentCommitter:
    """Commits uploaded segments, one at a time in order, on a thread with its own session
    (connection) to the hub, so the next segment's upload need not wait for the hub's
    checks of this one. Owns each segment's temporary pack from :meth:`add` on (a commit
    whose upload was lost uploads it again) and removes it when done; the first failure is
    kept and raised by :meth:`raise_failure` / :meth:`finish`."""

    def __init__(self, s: Session) -> None:
        import queue
        import threading

        self._s = s
        self._session: Session | None = None
        self._queue: queue.Queue[tuple[dict[str, Any], Bundle, int, bytes | None, int] | None]
        self._queue = queue.Queue(maxsize=1)  # one waiting beside the one being committed
        self._failure: BaseException | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="segment-commit", daemon=True)
        self._thread.start()

    def add(
        self, ticket: dict[str, Any], bundle: Bundle, size: int, sha: bytes | None, n: int
    ) -> None:
        self._queue.put((ticket, bundle, size, sha, n))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            ticket, bundle, size, sha256, count = item
            try:
                if self._failure is None and not self._stopping:
                    if self._session is None:
                        s = self._s
                        self._session = Session(
                            s.url.repo_url,
                            write=True,
                            token=s.token,
                            connection=s.transport.connection,
                        )
                        self._session.store_origin = s.store_origin
                    _presign_push(
                        self._session,
                        bundle,
                        size,
                        sha256,
                        count,
                        [],
                        Progress(quiet=True),
                        stage=True,
                        uploaded=ticket,
                    )
            except BaseException as e:  # noqa: BLE001 - raised on the pushing thread
                self._failure = e
            finally:
                _discard(bundle)

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def finish(self) -> None:
        """Wait for every commit; raise the first failure."""
        self._queue.put(None)
        self._thread.join()
        self.raise_failure()

    def close(self) -> None:
        """Stop (what is queued is dropped, its pack removed) and close the session."""
        self._stopping = True
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._session is not None:
            self._session.close()


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _discard(bundle: Bundle) -> None:
    """A segment's bundle is done with: a temporary pack file goes (a spliced one is only
    the local pack's blocks)."""
    if isinstance(bundle, str):
        _unlink(bundle)


def reusable_pack(repo: Repository, objs: list[tuple[int, bytes]]) -> str | None:
    """A local pack holding exactly the objects to send: its file is sent as it is.

    Packs at rest are byte for byte wire packs, so pushing a history that arrived (or was
    written) as one pack costs no re-encoding at all.
    """
    packs = repo.store.packs
    if packs is None or not objs:
        return None
    for pf in packs.packs:
        if pf.count == len(objs) and all(pf.has(oid) for _, oid in objs):
            return str(pf.path)
    return None


def _send(
    repo: Repository,
    s: Session,
    objs: list[tuple[int, bytes]],
    updates: list[dict[str, Any]],
    path: str,
    progress: Progress,
    result: PushResult,
    reuse: str | None,
) -> dict[str, Any]:
    if path == "stream":
        if reuse is not None:
            size = os.stat(reuse).st_size
            progress.start("Sending objects", 0, size)
            on_bytes = progress.add_bytes if progress.enabled else None
            try:
                answer = s.push_stream_file(updates, reuse, size, on_bytes)
            finally:
                progress.finish_line()
            result.bytes += size
            return answer
        counter = [0]
        try:
            answer = s.push_stream(updates, lambda: _pack_stream(repo, objs, progress, counter))
        finally:
            progress.finish_line()
        result.bytes += counter[0]
        return answer
    s.open_store()  # its handshakes overlap writing the pack and the presign request
    pack_path, size, sha256, temp = _bundle(repo, s, objs, reuse, progress)
    try:
        result.bytes += size
        return _presign_push(s, pack_path, size, sha256, len(objs), updates, progress)
    finally:
        if temp:
            _unlink(pack_path)


def _file_sha256(path: str) -> bytes:
    """A pack already on disk (no writer computed its digest): read it once more, which only
    a hub on object storage asks for (a local one links the upload in place)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def _presign_push(
    s: Session,
    bundle: Bundle,
    size: int,
    sha256: bytes | None,
    count: int,
    updates: list[dict[str, Any]],
    progress: Progress,
    stage: bool = False,
    commit: bool = True,
    uploaded: dict[str, Any] | None = None,
    presigned: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Presign, PUT the bundle, commit (``stage``: a segment, no refs); under the transport's
    one retry budget. ``sha256``: the bundle's digest, which a hub on object storage binds the
    URL to (the store then refuses any other body), so it keeps the upload without a copy.
    ``commit=False``: stop after the PUT and return its ticket; ``uploaded``: such a ticket,
    to commit (the pipelined segments of :class:`_SegmentCommitter`); ``presigned``: a
    ticket whose upload is still to do (the presign that brought the hub's refs).

    A commit that failed on the hub's side (a 5xx) is retried with the same upload id (the
    hub releases its claim when its work fails, the bundle is still there); an upload the hub
    no longer knows (``upload_not_found``, ``upload_expired``) or a refused URL gets a new
    presign. A failure that retrying cannot fix (507 insufficient storage, a refused pack)
    ends the push at once with the hub's reason, never after more uploads.
    """
    tr = s.transport
    ticket = uploaded if uploaded is not None else presigned
    put = uploaded is None  # the bundle is still to upload
    while True:
        err: WireError | None = None
        if ticket is None:
            ticket = s.push_presign(size, count, sha256)
        if put:
            progress.start("Uploading bundle", count, size)
            on_bytes = progress.add_bytes if progress.enabled else None
            try:
                s.put_bundle(
                    str(ticket["url"]),
                    dict(ticket.get("headers") or {}),
                    bundle,
                    size,
                    on_bytes,
                )
            except ExpiredURL as e:
                err = e  # ask for a fresh URL
            except WireError as e:
                if not e.retryable:
                    raise
                err = e
            finally:
                progress.finish_line()
        if err is None and not commit:
            return ticket
        if err is None:
            try:
                return s.push_commit(str(ticket["upload_id"]), updates, stage)
            except WireError as e:
                if e.code == "upload_not_found" and _landed(s, updates):
                    return {"updated": updates}  # an earlier commit landed; its answer was lost
                if e.code not in ("upload_not_found", "upload_expired"):
                    raise  # retried by the transport already (5xx), or not worth retrying
                err = e  # the hub lost the upload: a new presign and upload
        ticket, put = None, True
        if not tr.retry.wait(err.retry_after, upload=True):
            if isinstance(err, ExpiredURL):
                raise WireError(
                    f"storage kept refusing the upload URLs from {s.url.hub} ({err}); check the "
                    "hub's storage settings and the clocks",
                    "hub_refused",
                    "upload_failed",
                )
            raise err


def _landed(s: Session, updates: list[dict[str, Any]]) -> bool:
    now = s.refs().refs
    for u in updates:
        cur = now.get(u["ref"])
        if (cur.hex() if cur is not None else None) != u["new"]:
            return False
    return True
