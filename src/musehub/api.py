"""The JSON repository API (docs/wire.md §4, "Repository API"), plus user administration.

- ``POST /api/repos`` create; ``GET /api/repos?owner=`` list (what the caller may read);
  ``GET|DELETE /api/repos/{owner}/{slug}``;
  ``PUT|DELETE /api/repos/{owner}/{slug}/collaborators/{user}``; ``GET /api/user``.
- Administration (an admin token): ``POST /api/users`` ``{"username", "admin": false}`` and
  ``POST /api/users/{username}/tokens`` ``{"scopes": ["write"], "expires_days": null}`` ->
  ``{"token": ...}`` (shown once). The ``musehub`` command does the same offline.

Deleting a repository deletes its rows (refs, packs, deferred deletions cascade) and then its
objects under ``repos/<repo id>/`` in storage.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from muse.core.refnames import RefNameError, check_branch_name
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
from musehub.db import Collaborator, Repo, User, now
from musehub.errors import HubError, field, read_json
from musehub.names import check_slug, check_username, is_username

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
            return repo_json(create_repo(s, owner, slug, private, branch))

    return JSONResponse(await hub.run(work), status_code=201)


async def get_repo(request: Request) -> Response:
    hub = request.app.state.hub
    owner, slug = request.path_params["owner"], request.path_params["slug"]

    def work() -> dict[str, Any]:
        principal = authenticate(request)
        with hub.db.session(readonly=True) as s:
            return repo_json(resolve_repo(s, principal, owner, slug, "read"))

    return JSONResponse(await hub.run(work))


async def delete_repo(request: Request) -> Response:
    hub = request.app.state.hub
    owner, slug = request.path_params["owner"], request.path_params["slug"]

    def work() -> None:
        principal = authenticate(request)
        with hub.db.session() as s:
            repo = resolve_repo(s, principal, owner, slug, "admin")
            repo_id = repo.id
            s.delete(repo)
        try:
            hub.storage.delete_prefix(f"repos/{repo_id}/")
        except Exception:  # noqa: BLE001 - the repository is gone; leftovers are only bytes
            log.exception("could not delete the objects of repository %d", repo_id)

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
            user = _user(s, p["user"])
            existing = s.get(Collaborator, (repo.id, user.id))
            if add and existing is None and user.id != repo.owner_id:
                s.add(Collaborator(repo_id=repo.id, user_id=user.id))
            elif not add and existing is not None:
                s.delete(existing)

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
