"""The receiver's checks beyond the pack codec: object structure and connectivity.

The codec (:mod:`muse.core.pack.codec`) proves every object hashes to its id. Before a hub (or a
client) lets new refs point at new objects it must also know that each tree and commit is a
canonical encoding (:func:`verify_structure`) and that everything reachable from the new tips
is present, in the new pack or already in the repository (:func:`check_connectivity`). Only
references *from the new objects* are followed: the existing objects were checked when they
arrived, so the cost is proportional to the push, not to the repository.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping

from muse.core import objects as O
from muse.core.idsection import common_ends, common_prefix, common_suffix
from muse.core.objects import BLOB, CHUNKS, COMMIT, MODE_TREE, TAG, TREE, ObjectFormatError
from muse.core.pack.codec import PackError
from muse.core.pack.file import PackFile
from muse.core.paths import MAX_NAME_BYTES, MAX_PATH_BYTES, names_section_problem
from muse.core.reader import ObjectReader

__all__ = [
    "Connectivity",
    "PathPolicy",
    "StructureChecker",
    "check_connectivity",
    "verify_structure",
]

_MODE_KIND = O.MODE_KIND
_PLAIN_MODES = bytes([O.MODE_FILE, O.MODE_EXEC, O.MODE_LINK])  # entries naming blobs
_VALID_MODES = bytes(sorted(O.MODES))


def verify_structure(kind: int, body: bytes | memoryview) -> None:
    """Refuse a tree or commit that is not canonically encoded (blobs are any bytes).

    Raises PackError("bad_pack"). The grammar is core's (:func:`muse.core.objects.check_object`:
    whole-buffer checks, verdicts exactly those of decode_tree / decode_commit).
    """
    try:
        O.check_object(kind, body)
    except ObjectFormatError as e:
        raise PackError("bad_pack", f"invalid {O.KIND_NAMES.get(kind, 'object')}: {e}") from None


class StructureChecker:
    """verify_structure for a stream of objects, each tree checked against the previous one.

    Consecutive trees of a pack are mostly versions of one directory: their names sections
    share a long prefix and suffix of whole names, which were checked with the previous tree.
    Only the names between them (and where they meet their neighbours) are split, compared and
    decoded; anything unusual takes the full check. Verdicts are exactly verify_structure's.
    """

    def __init__(self) -> None:
        self._prev: bytes | None = None  # names section of the last tree that passed
        #: For the tree just checked: (a, j), its names section's bytes before a and from j
        #: on are whole names it shares with the previous tree's (None: not compared).
        #: PathPolicy, fed the same trees in the same order, takes it instead of comparing
        #: the two sections again.
        self.window: tuple[int, int] | None = None

    def check(self, kind: int, body: bytes) -> None:
        if kind != TREE:
            verify_structure(kind, body)
            return
        self.window = None
        section = self._names_if_fast(body)
        if section is None:
            verify_structure(kind, body)
            n = int.from_bytes(body[:4], "big")
            section = body[4 + 33 * n :]
        self._prev = section

    def _names_if_fast(self, body: bytes) -> bytes | None:
        """The names section when the tree is proven valid against the previous one, else None."""
        prev = self._prev
        if prev is None or len(body) < 4:
            return None
        n = int.from_bytes(body[:4], "big")
        names_at = 4 + 33 * n
        if n == 0 or len(body) < names_at + 2 * n or body[4 : 4 + n].translate(None, _VALID_MODES):
            return None
        s = body[names_at:]
        if s.count(b"\0") != n or not s.endswith(b"\0") or s.startswith(b"\0"):
            return None
        k = min(len(s), len(prev))
        p = common_prefix(s, memoryview(prev), k, 1)
        a = s.rfind(b"\0", 0, p) + 1  # s[:a]: whole names shared with prev (a = 0: none)
        q = common_suffix(s, memoryview(prev), k - a, 1)
        # s[j:]: whole names shared with prev. The \0 before j must lie inside the shared
        # tail, so that it is a name boundary in prev as well.
        j = s.find(b"\0", len(s) - q) + 1 or len(s)
        self.window = (a, j)
        if a == 0 and j == len(s):
            return None  # nothing shared: the full check is as cheap
        mid = s[a:j]
        names = mid.split(b"\0")[:-1] if mid else []
        if mid:
            if not mid.endswith(b"\0") or b"\0\0" in mid or mid.startswith(b"\0"):
                return None
            if b"/" in mid or b"." in names or b".." in names:
                return None
            try:
                mid.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if a:
            names.insert(0, s[s.rfind(b"\0", 0, a - 1) + 1 : a - 1])
        if j < len(s):
            names.append(s[j : s.index(b"\0", j)])
        if any(map(operator.ge, names, names[1:])):
            return None
        return s


class PathPolicy:
    """The path policy (:mod:`muse.core.paths`) over a push: what a hub stores, a client can
    check out.

    Fed each tree and commit once they passed the structure check (:meth:`add`, in pack
    order); names are checked per tree, against the previous tree where they are mostly the
    same (only the names that changed are looked at, collisions kept in a set). Then
    :meth:`check` walks every new commit's tree for the paths (the path is what a
    refusal names, and path lengths need it), without recursion, descending only where the
    tree differs from its parents' at the same path: those were checked when they came. Cost
    follows the push, not the repository. Raises PackError("unsafe_path").
    """

    def __init__(self) -> None:
        #: new tree id -> its subtrees ((name, id), ...), made when first needed ...
        self.subtrees: dict[bytes, tuple[tuple[bytes, bytes], ...]] = {}
        #: ... from the bodies of the new trees that have subtrees (the others have none)
        self.bodies: dict[bytes, bytes] = {}
        self.new_trees: set[bytes] = set()
        self.problems: dict[bytes, tuple[str, str]] = {}  # tree id -> (name, why)
        self.commits: dict[bytes, tuple[bytes, list[bytes]]] = {}  # id -> (tree, parents)
        self._prev: bytes | None = None  # names section of the last tree
        self._keys: set[bytes] | None = None  # its lower-cased names (plain ASCII trees)

    def add(
        self,
        kind: int,
        oid: bytes,
        body: bytes,
        window: tuple[int, int] | None = None,
        refs: tuple[bytes, list[bytes]] | None = None,
    ) -> None:
        """One tree or commit, in pack order. ``window``: StructureChecker's for this tree
        (fed the same trees), ``refs``: the commit's (tree, parents), when known already."""
        if kind == COMMIT:
            self.commits[oid] = refs if refs is not None else O.commit_refs(body)
        elif kind == TREE:
            n = int.from_bytes(body[:4], "big")
            section = body[4 + 33 * n :]
            self.new_trees.add(oid)
            if body.find(MODE_TREE, 4, 4 + n) >= 0:
                self.bodies[oid] = body
            problem = self._names(section, n, window)
            if problem is not None:
                self.problems[oid] = problem

    def _names(
        self, s: bytes, n: int, window: tuple[int, int] | None = None
    ) -> tuple[str, str] | None:
        prev, keys = self._prev, self._keys
        self._prev = s
        if prev is not None and keys is not None and s.isascii():
            if window is not None:
                a, j = window
            else:
                k = min(len(s), len(prev))
                a = s.rfind(b"\0", 0, common_prefix(s, memoryview(prev), k, 1)) + 1
                q = common_suffix(s, memoryview(prev), k - a, 1)
                j = s.find(b"\0", len(s) - q) + 1 or len(s)
            mid, gone = s[a:j], prev[a : len(prev) - (len(s) - j)]
            if b".\0" not in mid and b" \0" not in mid:
                added = mid.lower().split(b"\0")
                added.pop()
                if not mid or names_section_problem(mid, len(added))[1] is None:
                    for key in gone.lower().split(b"\0")[:-1]:
                        keys.discard(key)
                    fresh = keys.isdisjoint(added)
                    keys.update(added)
                    if fresh:
                        return None
        problem = names_section_problem(s, n)[1]
        plain = problem is None and s.isascii() and b".\0" not in s and b" \0" not in s
        self._keys = set(s.lower().split(b"\0")) if plain else None
        return problem

    def check(self, reader: ObjectReader) -> None:
        """Walk every new commit's tree (see the class); ``reader`` has every object."""
        known = self.subtrees
        problems = dict(self.problems)
        done: dict[bytes, int] = {}  # tree id -> the longest prefix it was walked at
        new_trees, bodies = self.new_trees, self.bodies

        def read(oid: bytes) -> tuple[bytes, int, bytes]:
            body = bodies.get(oid)
            if body is None:
                found = reader.get(oid)
                if found is None or found[0] != TREE:
                    raise PackError("missing_objects", f"tree {oid.hex()} is missing")
                body = found[1]
            n = int.from_bytes(body[:4], "big")
            return body, n, body[4 + 33 * n :]

        def subtrees(oid: bytes) -> tuple[tuple[bytes, bytes], ...]:
            subs = known.get(oid)
            if subs is None:
                if oid in new_trees and oid not in bodies:
                    subs = ()  # a new tree without subtrees
                else:
                    subs = _subtrees(*read(oid))
                known[oid] = subs
            return subs

        for tree, parents in self.commits.values():
            olds = tuple(t for t in (self._tree_of(p, reader) for p in parents) if t)
            stack: list[tuple[bytes, tuple[bytes, ...], bytes]] = [(tree, olds, b"")]
            while stack:
                oid, olds, prefix = stack.pop()
                if oid in olds or done.get(oid, -1) >= len(prefix):
                    continue  # where the parent has it: checked when it came
                if oid not in problems and oid not in new_trees and oid not in done:
                    # an existing tree in a new place: checked as if it came now
                    _body, n, section = read(oid)
                    problem = names_section_problem(section, n)[1]
                    if problem is not None:
                        problems[oid] = problem
                done[oid] = len(prefix)
                problem = problems.get(oid)
                if problem is not None:
                    _refuse(prefix, problem[0], problem[1])
                if len(prefix) + MAX_NAME_BYTES > MAX_PATH_BYTES:
                    self._check_lengths(prefix, *read(oid))
                if oid in new_trees and oid not in bodies:
                    continue  # a new tree without subtrees: nothing below to walk
                if len(olds) == 1 and not (olds[0] in new_trees and olds[0] not in bodies):
                    window = _changed_subtrees(read(oid), read(olds[0]))
                    if window is not None:  # the same names as the parent's: compare ids
                        for name, sub, sub_olds in window:
                            stack.append((sub, sub_olds, prefix + name + b"/"))
                        continue
                subs = subtrees(oid)
                if not subs:
                    continue
                if olds:
                    # Only subtrees that differ from every parent's at the same name are
                    # walked (a set difference in C: most of a big tree is unchanged).
                    old_subs = [subtrees(o) for o in olds]
                    same = set().union(*old_subs)
                    subs = tuple(e for e in subs if e not in same)  # (in tree order)
                    if not subs:
                        continue
                    old_maps = [dict(o) for o in old_subs]
                else:
                    old_maps = []
                for name, sub in subs:
                    sub_olds = tuple(m[name] for m in old_maps if name in m)
                    stack.append((sub, sub_olds, prefix + name + b"/"))
        left = self.problems.keys() - done.keys()
        if left:  # new trees no new commit reaches: not stored either
            oid = min(left)
            bad, why = self.problems[oid]
            raise PackError("unsafe_path", f"tree {oid.hex()}: {bad!r} {why}")

    def _tree_of(self, commit: bytes, reader: ObjectReader) -> bytes | None:
        info = self.commits.get(commit)
        if info is not None:
            return info[0]
        found = reader.get(commit)
        if found is None or found[0] != COMMIT:
            return None
        return O.commit_refs(found[1])[0]

    @staticmethod
    def _check_lengths(prefix: bytes, body: bytes, n: int, section: bytes) -> None:
        for name in section.split(b"\0")[:-1]:
            size = len(prefix) + len(name)
            if size > MAX_PATH_BYTES:
                why = f"is a path of {size} bytes (file systems allow {MAX_PATH_BYTES})"
                _refuse(prefix, name.decode("utf-8", "surrogateescape"), why)


def _changed_subtrees(
    new: tuple[bytes, int, bytes], old: tuple[bytes, int, bytes]
) -> list[tuple[bytes, bytes, tuple[bytes, ...]]] | None:
    """(name, subtree id, (the old id at that name,)) of the subtrees that changed, when the
    two trees have exactly the same names (the usual version-to-version case: a root whose
    directories' contents changed); None otherwise. The unchanged runs at both ends are found
    with memcmp (idsection.common_ends), so a 50-directory root costs a few comparisons."""
    body, n, section = new
    obody, on, osection = old
    if n != on or section != osection:
        return None
    modes, ids = body[4 : 4 + n], body[4 + n : 4 + 33 * n]
    omodes, oids = obody[4 : 4 + n], obody[4 + n : 4 + 33 * n]
    p, s = common_ends(ids, oids, modes, omodes)
    if p + s >= n or modes.find(MODE_TREE, p, n - s) < 0:
        return []
    names = section.split(b"\0")
    out: list[tuple[bytes, bytes, tuple[bytes, ...]]] = []
    for i in range(p, n - s):
        if modes[i] == MODE_TREE:
            was: tuple[bytes, ...] = (oids[32 * i : 32 * i + 32],) if omodes[i] == MODE_TREE else ()
            out.append((names[i], ids[32 * i : 32 * i + 32], was))
    return out


def _subtrees(body: bytes, n: int, section: bytes) -> tuple[tuple[bytes, bytes], ...]:
    """((name, id), ...) of a tree's subtree entries (most trees have none: no split)."""
    modes = body[4 : 4 + n]
    i = modes.find(MODE_TREE)
    if i < 0:
        return ()
    names = section.split(b"\0")
    if modes.count(MODE_TREE) == n:  # only directories (a root, say): no search per entry
        ids = body[4 + n : 4 + 33 * n]
        return tuple(zip(names[:n], [ids[j : j + 32] for j in range(0, 32 * n, 32)], strict=True))
    out = []
    while i >= 0:
        at = 4 + n + 32 * i
        out.append((names[i], body[at : at + 32]))
        i = modes.find(MODE_TREE, i + 1)
    return tuple(out)


def _refuse(prefix: bytes, name: str, why: str) -> None:
    path = prefix.decode("utf-8", "surrogateescape") + name
    shown = path if len(path) <= 200 else path[:100] + "..." + path[-60:]
    raise PackError("unsafe_path", f"{shown!r} {why}")


#: What a receiver checks: a pack just received, or a map of new ids to kinds whose bodies
#: the existing reader already holds.
NewObjects = PackFile | Mapping[bytes, int]


def _new_trees_and_commits(
    new_objects: NewObjects, existing: ObjectReader
) -> Iterator[tuple[int, bytes]]:
    """(kind, body) of the new trees and commits, from a PackFile or a kind map."""
    if isinstance(new_objects, PackFile):
        for kind, _oid, body in new_objects.iter_objects((TREE, COMMIT, CHUNKS, TAG)):
            yield kind, body
        return
    for oid, kind in new_objects.items():
        if kind not in (TREE, COMMIT, CHUNKS, TAG):
            continue
        found = existing.get(oid)
        if found is None:
            raise PackError("missing_objects", f"{O.KIND_NAMES[kind]} {oid.hex()} is missing")
        yield kind, found[1]


def _kind_lookup(new_objects: NewObjects) -> Callable[[bytes], int | None]:
    if isinstance(new_objects, PackFile):
        return new_objects.kind
    return new_objects.get


def _kind_sets(new_objects: NewObjects) -> dict[int, set[bytes]] | None:
    """{kind: ids} of the new objects (None if one has an unknown kind)."""
    by_kind: dict[int, set[bytes]] = {
        BLOB: set(),
        TREE: set(),
        COMMIT: set(),
        CHUNKS: set(),
        TAG: set(),
    }
    items: Iterable[tuple[bytes, int]] = (
        new_objects.kinds() if isinstance(new_objects, PackFile) else new_objects.items()
    )
    for oid, kind in items:
        s = by_kind.get(kind)
        if s is None:
            return None
        s.add(oid)
    return by_kind


class Connectivity:
    """What new trees and commits reference, collected one object at a time.

    :func:`check_connectivity` feeds it from a pack at rest; a receiver may instead feed it
    each tree and commit while the pack is being decoded (after the object's id was
    re-hashed), so the pack is not read a second time, then call :meth:`check`.
    """

    def __init__(self) -> None:
        self.blob_refs: set[bytes] = set()
        self.tree_refs: set[bytes] = set()
        self.chunks_refs: set[bytes] = set()  # chunk lists named by chunked-file entries
        self.want: dict[bytes, int] = {}  # referenced by commits: id -> expected kind
        #: (tree, parents) of the commit added last, for PathPolicy beside it
        self.last_commit: tuple[bytes, list[bytes]] | None = None
        self._prev: tuple[bytes, bytes] | None = None

    def add(self, kind: int, body: bytes | memoryview) -> None:
        """Collect the references of one tree, commit, chunk list or tag (blobs are ignored).

        A tag is decoded in full (tags are few): its target must then exist with the kind
        the tag says."""
        try:
            if kind == TREE:
                self._add_tree(body)
            elif kind == CHUNKS:
                ids = O.chunks_refs(body)
                self.blob_refs.update(ids[i : i + 32] for i in range(0, len(ids), 32))
            elif kind == COMMIT:
                tree, parents = self.last_commit = O.commit_refs(body)
                want = self.want
                want[tree] = TREE
                for p in parents:
                    want[p] = COMMIT
            elif kind == TAG:
                tag = O.decode_tag(body)
                if self.want.setdefault(tag.target, tag.target_kind) != tag.target_kind:
                    raise ObjectFormatError(f"{tag.target.hex()} is referenced with two kinds")
        except ObjectFormatError as e:
            raise PackError("bad_pack", str(e)) from None

    def _add_tree(self, body: bytes | memoryview) -> None:
        modes, ids = O.tree_refs(body)
        lo, hi = 0, len(modes)
        prev = self._prev
        if prev is not None:
            # Entries equal to the previous tree's (usually the previous version of the same
            # directory) were collected with it: only the window is new.
            pre, suf = common_ends(ids, prev[1], modes, prev[0])
            lo, hi = pre, hi - suf
        self._prev = (modes, ids)
        if lo >= hi:
            return
        if not modes[lo:hi].translate(None, _PLAIN_MODES):  # only files and symlinks
            self.blob_refs.update(ids[32 * i : 32 * i + 32] for i in range(lo, hi))
            return
        by_kind = {BLOB: self.blob_refs, TREE: self.tree_refs, CHUNKS: self.chunks_refs}
        for i in range(lo, hi):
            m = modes[i]
            if m not in _MODE_KIND:
                raise ObjectFormatError(f"invalid mode {m} in tree")
            by_kind[_MODE_KIND[m]].add(ids[32 * i : 32 * i + 32])

    def check(self, new_objects: NewObjects, existing: ObjectReader, tips: Iterable[bytes]) -> None:
        """Refuse unless every tip and every collected reference is present with its kind.

        ``new_objects`` is what was collected from (a PackFile or a mapping {oid: kind}).
        """
        blob_refs, tree_refs, chunks_refs = self.blob_refs, self.tree_refs, self.chunks_refs
        want = dict(self.want)
        for tip in tips:
            want[tip] = COMMIT
        both = (blob_refs & tree_refs) | (chunks_refs & (blob_refs | tree_refs))
        if both:
            oid = next(iter(both))
            raise PackError("missing_objects", f"{oid.hex()} is referenced with two kinds")
        for refs, expect in ((tree_refs, TREE), (blob_refs, BLOB), (chunks_refs, CHUNKS)):
            for oid in refs.intersection(want):
                if want[oid] != expect:
                    raise PackError("missing_objects", f"{oid.hex()} is referenced with two kinds")
        sets = _kind_sets(new_objects)
        if sets is not None:
            # Set operations in C: only references the new objects do not satisfy are looked
            # at one by one (none at all for a first push).
            todo: list[tuple[Iterable[bytes], int]] = [
                (tree_refs - sets[TREE], TREE),
                (chunks_refs - sets[CHUNKS], CHUNKS),
                (blob_refs - sets[BLOB], BLOB),
                ([oid for oid, k in want.items() if oid not in sets[k]], 0),
            ]
        else:
            todo = [(tree_refs, TREE), (chunks_refs, CHUNKS), (blob_refs, BLOB), (list(want), 0)]
        kind_of = _kind_lookup(new_objects)
        existing_kind = getattr(existing, "kind", None)
        for pending, fixed in todo:
            for oid in pending:
                expect = fixed or want[oid]
                kind = kind_of(oid)
                if kind is None:
                    if not existing.has(oid):
                        raise PackError(
                            "missing_objects", f"{O.KIND_NAMES[expect]} {oid.hex()} is missing"
                        )
                    if existing_kind is not None:
                        kind = existing_kind(oid)
                if kind is not None and kind != expect:
                    raise PackError(
                        "missing_objects",
                        f"{oid.hex()} is a {O.KIND_NAMES.get(kind, '?')}, "
                        f"referenced as a {O.KIND_NAMES[expect]}",
                    )


def check_connectivity(
    new_objects: NewObjects, existing: ObjectReader, tips: Iterable[bytes]
) -> None:
    """Refuse unless every tip and everything the new trees and commits name is present.

    ``new_objects`` is a PackFile (just received) or a mapping {oid: kind}; ``existing`` is
    what the repository already had. Referenced ids must be in one of them, with the kind the
    reference implies (a subtree entry names a tree, a commit's parents are commits) where the
    kind is known cheaply. Raises PackError("missing_objects") naming one missing id.
    """
    c = Connectivity()
    for kind, body in _new_trees_and_commits(new_objects, existing):
        c.add(kind, body)
    c.check(new_objects, existing, tips)


def closure_pack(pack: PackFile, wants: list[bytes]) -> bool:
    """Whether ``pack`` (a PackFile) holds exactly the objects reachable from ``wants``.

    What a first push to an empty repository sends is that closure; when one local pack is
    exactly it (a history written by HistoryWriter, or cloned), the pack can be sent as it is
    without walking the history. Proven from the pack alone in one pass in pack order, each
    tree compared with the previous one (only changed entries are looked at):

    * nothing missing: the wants are commits of the pack and every id referenced by its
      trees and commits is in the pack with the kind the reference implies;
    * nothing more: every object of the pack other than a want is referenced by an object of
      the pack. References form a DAG, so following referrers upwards from any object ends
      at an unreferenced object, a want: everything is reachable from the wants.

    Never sends anything the user did not push (no objects of other branches). False on
    any doubt (a malformed object included): the caller then walks as usual.
    """
    sets = pack.ids_by_kind()
    commits = sets.get(COMMIT, set())
    if not wants or not all(w in commits for w in wants) or set(sets) - set(O.KIND_NAMES):
        return False
    if sets.get(TAG):
        return False  # tags are pushed by name, never as part of a closure
    conn = Connectivity()
    try:
        for kind, _oid, body in pack.iter_objects((TREE, COMMIT, CHUNKS)):
            conn.add(kind, body)
    except PackError:
        return False
    tree_refs = set(conn.tree_refs)
    parents = set(wants)
    for oid, kind in conn.want.items():
        (tree_refs if kind == TREE else parents).add(oid)
    return (
        conn.blob_refs == sets.get(BLOB, set())
        and conn.chunks_refs == sets.get(CHUNKS, set())
        and tree_refs == sets.get(TREE, set())
        and parents == commits
    )
