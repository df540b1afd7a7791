"""Tags: names for one object that, unlike branches, never move by themselves.

A lightweight tag is only a ref (``refs/tags/<name>``) naming a commit; an annotated tag is
also an object (kind ``tag``, docs/format.md 1.5) holding the name, a tagger and a message,
and its ref names that object. Both are replaced only when forced, as in git.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from muse.core.objects import COMMIT, KIND_NAMES, TAG, TAG_TARGET_KINDS, Signature, Tag
from muse.core.refnames import TAGS, RefNameError, check_ref_name
from muse.core.refs import RefConflict
from muse.core.repo import Repository
from muse.errors import MuseError, NotFound, Rejected


class TagExists(Rejected):
    """A tag of that name exists (and the caller did not force)."""

    hint = "use -f to replace it"


def tag_ref(name: str) -> str:
    """refs/tags/<name>, or a RefNameError saying why the name is not allowed."""
    if not name or name.startswith("-"):
        raise RefNameError(f"invalid tag name {name!r}")
    return check_ref_name(TAGS + name)


def list_tags(repo: Repository, pattern: str | None = None) -> dict[str, bytes]:
    """Tag name -> the id its ref holds, sorted by name; ``pattern`` is a shell glob."""
    out = {}
    for ref, oid in repo.refs.list(TAGS).items():
        name = ref[len(TAGS) :]
        if pattern is None or fnmatchcase(name, pattern):
            out[name] = oid
    return out


def create_tag(
    repo: Repository,
    name: str,
    target: bytes,
    *,
    message: str | None = None,
    tagger: Signature | None = None,
    force: bool = False,
) -> tuple[bytes, bytes | None]:
    """Point refs/tags/<name> at ``target`` (a lightweight tag), or at a new annotated tag
    object naming it when ``message`` is given. Returns (what the ref now holds, what it
    held before)."""
    ref = tag_ref(name)
    found = repo.store.get(target)
    if found is None:
        raise NotFound(f"object {target.hex()} is missing")
    kind = found[0]
    old = repo.refs.read(ref)
    if old is not None and not force:
        raise TagExists(f"tag '{name}' already exists")
    if message is None:
        if kind not in (COMMIT, TAG):
            raise MuseError(f"a lightweight tag names a commit, not a {KIND_NAMES[kind]}")
        new = target
    else:
        if kind not in TAG_TARGET_KINDS:
            raise MuseError(f"a tag cannot name a {KIND_NAMES[kind]}")
        if tagger is None:
            tagger = repo.signature("COMMITTER")
        new = repo.store.put(TAG, Tag(target, kind, name, tagger, message).encode())
    try:
        repo.refs.update(ref, new, old)
    except RefConflict as e:
        raise MuseError(str(e)) from None
    return new, old


def delete_tag(repo: Repository, name: str) -> bytes:
    """Remove refs/tags/<name>; returns what it named (the object itself stays)."""
    ref = tag_ref(name)
    old = repo.refs.read(ref)
    if old is None:
        raise NotFound(f"tag '{name}' not found")
    repo.refs.update(ref, None, old)
    return old
