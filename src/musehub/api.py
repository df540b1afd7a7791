"""The JSON repository API (docs/wire.md §4, "Repository API"), plus user administration.

- ``POST /api/repos`` create; ``GET /api/repos?owner=`` list (what the caller may read);
  ``GET|DELETE /api/repos/{owner}/{slug}``;
  ``PUT|DELETE /api/repos/{owner}/{slug}/collaborators/{user}``; ``GET /api/user``.
- Administration (an admin token): ``POST /api/users`` ``{"username", "admin": false}`` and
  ``POST /api/users/{username}/tokens`` ``{"scopes": ["write"], "expires_days": null}`` ->
  ``{"token": ...}`` (shown once). The ``musehub`` command does the same offline.

Deleting a repository deletes its rows (refs, packs, deferred deletions cascade) and then its
objects under ``repos/<repo id>/`` in storage and its packs in the local cache. The functions
of this module that take a session are shared with the ``musehub`` command (musehub.cli).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from muse.core.refnames import RefNameError, check_branch_name
from musehub import quota
from musehub.auth import (
    Principal,
    authenticate,
    can_read,
    create_token,
    expand_scopes,
    require_principal,
    resolve_repo,
    token_expiry,
)
from musehub.db import Collaborator, DeferredDeletion, Pack, Repo, User, now
from musehub.errors import HubError, field, read_json
from musehub.names import check_slug, check_username, is_username

if TYPE_CHECKING:
    from musehub.storage import Storage

log = logging.getLogger("musehub.api")


def repo_json(repo: Repo) -> dict[str, Any]:
    return {
        "owner": repo.owner.username,
        "slug": repo.slug,
        "private": bool(repo.private),
        "default_branch": repo.default_branch,
        "created_at": repo.created_at,
    }


def _user(session: Session, username: str) -> User:
    if not is_username(username):  # no such user can exist: not a question for the database
        raise HubError(404, "not_found", f"no user {username!r}")
    user = session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    if user is None:
        raise HubError(404, "not_found", f"no user {username!r}")
    return user


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise HubError(403, "forbidden", "an admin token is needed")


def create_repo(
    session: Session,
    owner: User,
    slug: str,
    private: bool = False,
    default_branch: str = "main",
) -> Repo:
    """Insert a repository; HubError 409 repo_exists if the owner already has that slug."""
    check_slug(slug)
    try:
        check_branch_name(default_branch)
    except RefNameError as e:
        raise HubError(400, "invalid_ref_name", str(e)) from None
    repo = Repo(
        owner_id=owner.id,
        slug=slug,
        private=private,
        default_branch=default_branch,
        created_at=now(),
    )
    try:
        with session.begin_nested():
            session.add(repo)
    except IntegrityError:
        raise HubError(409, "repo_exists", f"repository {owner.username}/{slug} exists") from None
    repo.owner = owner
    return repo


@dataclass
class RepoRemains:
    """What is left of a deleted repository once its rows are gone: its stored objects
    (``repos/<id>/``) and the packs a hub process may hold in its local cache."""

    repo_id: int
    pack_names: list[str]


def delete_repository(session: Session, repo: Repo) -> RepoRemains:
    """Delete a repository's rows (refs, packs, ledger and collaborators cascade); the
    caller then calls :func:`remove_repository_files` once the transaction committed."""
    names = list(session.execute(select(Pack.name).where(Pack.repo_id == repo.id)).scalars())
    remains = RepoRemains(repo.id, names)
    session.delete(repo)
    return remains


def remove_repository_files(storage: Storage, cache_dir: str, remains: RepoRemains) -> None:
    """Delete a deleted repository's objects from storage and its packs from the cache."""
    for name in remains.pack_names:
        for suffix in (".pack", ".idx"):
            try:
                os.unlink(os.path.join(cache_dir, "packs", name + suffix))
            except FileNotFoundError:
                pass
    try:
        storage.delete_prefix(f"repos/{remains.repo_id}/")
    except Exception:  # noqa: BLE001 - the repository is gone; leftovers are only bytes
        log.exception("could not delete the objects of repository %d", remains.repo_id)


def rename_repository(session: Session, repo: Repo, slug: str) -> Repo:
    """Give a repository a new slug (its id, and so its objects, stay); 409 if taken."""
    check_slug(slug)
    try:
        with session.begin_nested():
            repo.slug = slug
            session.flush()
    except IntegrityError:
        owner = repo.owner.username
        raise HubError(409, "repo_exists", f"repository {owner}/{slug} exists") from None
    return repo


def set_collaborator(session: Session, repo: Repo, user: User, add: bool) -> bool:
    """Make ``user`` a collaborator of ``repo`` or not; returns whether anything changed
    (the owner is never a collaborator of their own repository)."""
    existing = session.get(Collaborator, (repo.id, user.id))
    if add and existing is None and user.id != repo.owner_id:
        session.add(Collaborator(repo_id=repo.id, user_id=user.id))
        return True
    if not add and existing is not None:
        session.delete(existing)
        return True
    return False


def delete_user(session: Session, user: User) -> list[RepoRemains]:
    """Delete a user with their repositories, tokens and collaborations. Ledger rows of
    their pushes into other people's repositories pass to those repositories' owners, so
    the sweep still deletes what they name. Returns the repositories' remains."""
    owned = session.execute(select(Repo).where(Repo.owner_id == user.id)).scalars().all()
    remains = [delete_repository(session, r) for r in owned]
    session.flush()
    owner = select(Repo.owner_id).where(Repo.id == DeferredDeletion.repo_id).scalar_subquery()
    session.execute(
        update(DeferredDeletion)
        .where(DeferredDeletion.user_id == user.id)
        .values(user_id=owner)
        .execution_options(synchronize_session=False)
    )
    session.delete(user)
    return remains


# -------------------------------------------------------------------------- endpoints


async def post_repo(request: Request) -> Response:
    body = await read_json(request)
    hub = request.app.state.hub

    def work() -> dict[str, Any]:
        principal = require_principal(request)
        if not principal.has_scope("write"):
            raise HubError(403, "forbidden", "this token has read scope only")
        owner_name = field(body, "owner", str, principal.username)
        slug = check_slug(field(body, "slug", str))
        private = field(body, "private", bool, False)
        branch = field(body, "default_branch", str, "main")
        if owner_name != principal.username:
            _require_admin(principal)
        with hub.db.session() as s:
            owner = _user(s, owner_name)
            repo = create_repo(s, owner, slug, private, branch)
            return {**repo_json(repo), **quota.repo_size(s, hub.settings, repo)}

    return JSONResponse(await hub.run(work), status_code=201)


async def get_repo(request: Request) -> Response:
    hub = request.app.state.hub
    owner, slug = request.path_params["owner"], request.path_params["slug"]

    def work() -> dict[str, Any]:
        principal = authenticate(request)
        with hub.db.session(readonly=True) as s:
            repo = resolve_repo(s, principal, owner, slug, "read")
            return {**repo_json(repo), **quota.repo_size(s, hub.settings, repo)}

    return JSONResponse(await hub.run(work))


async def delete_repo(request: Request) -> Response:
    hub = request.app.state.hub
    owner, slug = request.path_params["owner"], request.path_params["slug"]

    def work() -> None:
        principal = authenticate(request)
        with hub.db.session() as s:
            remains = delete_repository(s, resolve_repo(s, principal, owner, slug, "admin"))
        remove_repository_files(hub.storage, hub.settings.cache_dir, remains)

    await hub.run(work)
    return Response(status_code=204)


async def list_repos(request: Request) -> Response:
    hub = request.app.state.hub
    owner = request.query_params.get("owner")

    def work() -> dict[str, Any]:
        principal = authenticate(request)
        with hub.db.session(readonly=True) as s:
            q = select(Repo).join(User, Repo.owner_id == User.id).order_by(User.username, Repo.slug)
            if owner:
                if not is_username(owner):
                    return {"repos": []}
                q = q.where(User.username == owner)
            repos = [r for r in s.execute(q).scalars() if can_read(s, principal, r)]
            return {"repos": [repo_json(r) for r in repos]}

    return JSONResponse(await hub.run(work))


async def put_collaborator(request: Request) -> Response:
    return await _collaborator(request, add=True)


async def delete_collaborator(request: Request) -> Response:
    return await _collaborator(request, add=False)


async def _collaborator(request: Request, add: bool) -> Response:
    hub = request.app.state.hub
    p = request.path_params

    def work() -> None:
        principal = authenticate(request)
        with hub.db.session() as s:
            repo = resolve_repo(s, principal, p["owner"], p["slug"], "admin")
            set_collaborator(s, repo, _user(s, p["user"]), add)

    await hub.run(work)
    return Response(status_code=204)


async def get_user(request: Request) -> Response:
    hub = request.app.state.hub
    principal = await hub.run(require_principal, request)
    return JSONResponse(
        {
            "username": principal.username,
            "scopes": list(principal.scopes),
            "admin": principal.is_admin,
        }
    )


async def post_user(request: Request) -> Response:
    body = await read_json(request)
    hub = request.app.state.hub

    def work() -> dict[str, Any]:
        _require_admin(require_principal(request))
        name = check_username(field(body, "username", str))
        admin = field(body, "admin", bool, False)
        with hub.db.session() as s:
            try:
                with s.begin_nested():
                    s.add(User(username=name, is_admin=admin, created_at=now()))
            except IntegrityError:
                raise HubError(409, "user_exists", f"user {name!r} exists") from None
        return {"username": name, "admin": admin}

    return JSONResponse(await hub.run(work), status_code=201)


async def post_token(request: Request) -> Response:
    body = await read_json(request)
    hub = request.app.state.hub
    username = request.path_params["username"]

    def work() -> dict[str, Any]:
        _require_admin(require_principal(request))
        scopes = field(body, "scopes", (list, str), ["write"])
        if isinstance(scopes, list) and not all(isinstance(x, str) for x in scopes):
            raise HubError(400, "bad_request", "scopes must be strings")
        try:
            expanded = expand_scopes(scopes)
        except ValueError as e:
            raise HubError(400, "bad_request", str(e)) from None
        try:
            expires_at = token_expiry(field(body, "expires_days", (int, float), None))
        except ValueError as e:
            raise HubError(400, "bad_request", str(e)) from None
        with hub.db.session() as s:
            user = _user(s, username)
            token = create_token(s, user, expanded, expires_at)
        return {"token": token, "username": username, "scopes": expanded, "expires_at": expires_at}

    return JSONResponse(await hub.run(work), status_code=201)


def routes() -> list[Route]:
    return [
        Route("/api/repos", post_repo, methods=["POST"]),
        Route("/api/repos", list_repos, methods=["GET"]),
        Route("/api/repos/{owner}/{slug}", get_repo, methods=["GET"]),
        Route("/api/repos/{owner}/{slug}", delete_repo, methods=["DELETE"]),
        Route("/api/repos/{owner}/{slug}/collaborators/{user}", put_collaborator, methods=["PUT"]),
        Route(
            "/api/repos/{owner}/{slug}/collaborators/{user}",
            delete_collaborator,
            methods=["DELETE"],
        ),
        Route("/api/user", get_user, methods=["GET"]),
        Route("/api/users", post_user, methods=["POST"]),
        Route("/api/users/{username}/tokens", post_token, methods=["POST"]),
    ]
