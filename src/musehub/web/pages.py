"""The web view's pages: repository list, repository, tree, file, raw, log, commit, compare.

URLs follow GitHub's (``/{owner}/{slug}/tree/{ref}/{path}``, ``blob``, ``raw``, ``commits``,
``commit``, ``compare/A...B``); a ref may hold slashes, and the longest leading run of
segments that names a branch, a tag or a full commit id is the ref. None of these paths is a
protocol or API path (those are ``/{owner}/{slug}/refs``, ``push/*``, ``objects/*``,
``fetch/*`` and ``/api/*``), and the hub's own first segments are reserved user names.

Access is the API's (``musehub.auth.resolve_repo``): a private repository is 404 to whoever
may not read it. The caller is the ``Authorization`` header's token when there is one, else
the session cookie's (``musehub.web.session``). A page error is an HTML page with the same
status and code as the API's JSON error, or that JSON error itself for a client that does
not accept HTML. Every answer carries a strict Content-Security-Policy (no script at all,
styles only from ``/static/web.css``) and ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from muse.core.objects import CHUNKED_MODES, EXEC_MODES, MODE_LINK, MODE_TREE
from musehub.auth import Principal, authenticate, can_read, resolve_repo
from musehub.db import Repo, User
from musehub.errors import HubError, read_body
from musehub.protocol.repostore import RepoStore
from musehub.state import HubState
from musehub.web import diffs, render, session
from musehub.web.media import audio_duration, content_disposition, kind_of
from musehub.web.objects import (
    Objects,
    RepoReader,
    branches_and_tags,
    resolve_ref,
    split_ref_path,
)

#: The Content-Security-Policy of every page: nothing runs, nothing loads from elsewhere.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: Raw downloads are never a document of the hub's origin, whatever they hold.
RAW_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
COMMITS_PER_PAGE = 50
MAX_PAGE = 1_000_000
README_NAMES = ("readme.md", "readme.markdown", "readme", "readme.txt")
#: Entries a directory page lists.
MAX_LISTING = 1000
#: A path in a page URL longer than this cannot name anything (no request is that long).
MAX_PATH_CHARS = 4096


def security_headers(csp: str = PAGE_CSP) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }


def wants_html(request: Request) -> bool:
    """Browsers name text/html; API clients (no Accept, ``*/*``, JSON) keep the JSON errors."""
    return "text/html" in request.headers.get("accept", "").lower()


@dataclass
class RepoPage:
    """One request's view of a repository: its row's facts, refs and objects."""

    id: int
    owner: str
    slug: str
    private: bool
    default_branch: str
    refs: dict[str, bytes]
    reader: RepoReader

    @property
    def base(self) -> str:
        return f"/{self.owner}/{self.slug}"


class Web:
    """The pages of one hub process (sharing one object cache)."""

    def __init__(self, state: HubState) -> None:
        self.hub = state
        self.objects = Objects(RepoStore(state.settings, state.db, state.storage))

    # --------------------------------------------------------------------- plumbing
    def principal(self, request: Request) -> Principal | None:
        if request.headers.get("authorization") is not None:
            return authenticate(request)
        request.state.principal = session.session_principal(request)  # for the error page
        return request.state.principal

    def repo(self, request: Request) -> tuple[Principal | None, RepoPage]:
        p = request.path_params
        principal = self.principal(request)
        with self.hub.db.session(readonly=True) as s:
            repo = resolve_repo(s, principal, p["owner"], p["slug"], "read")
            facts = (repo.id, repo.owner.username, repo.slug, repo.private, repo.default_branch)
        refs = self.objects.refs(facts[0])
        return principal, RepoPage(*facts, refs=refs, reader=self.objects.reader(facts[0]))

    def html(
        self, request: Request, principal: Principal | None, template: str, **context: Any
    ) -> HTMLResponse:
        csrf = session.csrf_value(request)
        text = render.page(
            template, user=principal, csrf=csrf, request_path=request.url.path, **context
        )
        response = HTMLResponse(text, headers=security_headers())
        session.set_csrf_cookie(request, response, csrf)
        return response

    def error_page(self, request: Request, err: HubError) -> Response:
        if not wants_html(request):
            return err.response()
        titles = {404: "Not found", 400: "Bad request", 401: "Sign-in needed", 403: "Forbidden"}
        response = self.html(
            request,
            getattr(request.state, "principal", None),
            "error.html",
            status=err.status,
            title=titles.get(err.status, "Error"),
            code=err.code,
            message=err.message,
        )
        response.status_code = err.status
        for k, v in err.headers.items():
            response.headers[k] = v
        return response

    def page(self, work: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
        """A route running ``work`` in the thread pool, its HubError as an error page."""

        async def endpoint(request: Request) -> Response:
            if len(request.url.path) > MAX_PATH_CHARS or "\x00" in request.url.path:
                return self.error_page(request, HubError(404, "not_found", "no such page"))
            try:
                return await self.hub.run(work, request)
            except HubError as err:
                return self.error_page(request, err)

        return endpoint

    # ------------------------------------------------------------------------ pages
    def index(self, request: Request) -> Response:
        principal = self.principal(request)
        with self.hub.db.session(readonly=True) as s:
            q = select(Repo).join(User, Repo.owner_id == User.id).order_by(User.username, Repo.slug)
            repos = [
                {"owner": r.owner.username, "slug": r.slug, "private": r.private}
                for r in s.execute(q).scalars()
                if can_read(s, principal, r)
            ]
        return self.html(request, principal, "index.html", repos=repos)

    def home(self, request: Request) -> Response:
        principal, repo = self.repo(request)
        branches, tags = branches_and_tags(repo.refs)
        branch = repo.default_branch if repo.default_branch in branches else None
        branch = branch or (branches[0] if branches else None)
        clone_url = f"{self.hub.settings.public_url}{repo.base}"
        context: dict[str, Any] = {
            "repo": repo,
            "branches": branches,
            "tags": tags,
            "clone_url": clone_url,
            "ref": branch,
        }
        if branch is not None:
            tip = repo.refs[f"refs/heads/{branch}"]
            commit = repo.reader.commit(tip)
            entries = self._listing(repo.reader, commit.tree, "")
            context.update(
                tip=tip,
                commit=commit,
                entries=entries,
                readme=self._readme(repo.reader, entries, repo.base, branch),
            )
        return self.html(request, principal, "repo.html", **context)

    def tree(self, request: Request) -> Response:
        principal, repo = self.repo(request)
        ref, tip, path = self._ref_path(repo, request.path_params["key"])
        commit = repo.reader.commit(tip)
        found = repo.reader.entry_at(commit.tree, path)
        if found is None:
            raise HubError(404, "not_found", f"no path {path!r} at {ref}")
        if found[0] != MODE_TREE:
            return RedirectResponse(_url(repo.base, "blob", ref, path), status_code=302)
        entries = self._listing(repo.reader, found[1], path)
        return self.html(
            request,
            principal,
            "tree.html",
            repo=repo,
            ref=ref,
            tip=tip,
            commit=commit,
            path=path,
            crumbs=_crumbs(path),
            entries=entries,
            readme=self._readme(repo.reader, entries, repo.base, ref),
        )

    def blob(self, request: Request) -> Response:
        principal, repo = self.repo(request)
        ref, tip, path = self._ref_path(repo, request.path_params["key"])
        found = repo.reader.entry_at(repo.reader.commit(tip).tree, path) if path else None
        if found is None:
            raise HubError(404, "not_found", f"no file {path!r} at {ref}")
        mode, oid = found
        if mode == MODE_TREE:
            return RedirectResponse(_url(repo.base, "tree", ref, path), status_code=302)
        reader = repo.reader
        size = reader.file_size(mode, oid)
        name = path.rsplit("/", 1)[-1]
        kind = kind_of(name, reader.head(mode, oid, 8000))
        context: dict[str, Any] = {
            "repo": repo,
            "ref": ref,
            "tip": tip,
            "path": path,
            "crumbs": _crumbs(path),
            "name": name,
            "size": size,
            "view": kind.view,
            "mode": mode,
            "executable": mode in EXEC_MODES,
            "link": mode == MODE_LINK,
            "raw_url": _url(repo.base, "raw", ref, path),
            "oid": oid,
        }
        if kind.view == "text":
            if size <= render.HIGHLIGHT_MAX_BYTES:
                text = reader.head(mode, oid, size).decode("utf-8", "replace")
                context["code"] = render.highlight(name, text)
                context["lines"] = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
            else:
                context["view"] = "large"
        elif kind.view == "audio":
            context["duration"] = audio_duration(reader, mode, oid, size)
            context["content_type"] = kind.content_type
        elif kind.view == "video":
            context["content_type"] = kind.content_type
        return self.html(request, principal, "blob.html", **context)

    def raw(self, request: Request) -> Response:
        _, repo = self.repo(request)
        ref, tip, path = self._ref_path(repo, request.path_params["key"])
        found = repo.reader.entry_at(repo.reader.commit(tip).tree, path) if path else None
        if found is None or found[0] == MODE_TREE:
            raise HubError(404, "not_found", f"no file {path!r} at {ref}")
        mode, oid = found
        reader = repo.reader
        size = reader.file_size(mode, oid)
        name = path.rsplit("/", 1)[-1]
        kind = kind_of(name, reader.head(mode, oid, 8000))
        headers = {
            **security_headers(RAW_CSP),
            "Accept-Ranges": "bytes",
            "Content-Disposition": content_disposition(name, kind.inline),
            "ETag": f'"{oid.hex()}"',
            "Cache-Control": "private, max-age=60" if repo.private else "public, max-age=60",
        }
        start, end, status = 0, size, 200
        spec = request.headers.get("range")
        if spec is not None:
            wanted = parse_range(spec, size)
            if wanted is None:
                headers["Content-Range"] = f"bytes */{size}"
                raise HubError(
                    416, "range_not_satisfiable", f"range {spec[:100]!r} of {size}", headers
                )
            if wanted != (0, size):
                start, end = wanted
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=kind.content_type)
        if mode not in CHUNKED_MODES:
            body = b"".join(reader.read_range(mode, oid, start, end))
            return Response(body, status_code=status, headers=headers, media_type=kind.content_type)
        return StreamingResponse(
            _in_threads(reader.read_range(mode, oid, start, end)),
            status_code=status,
            headers=headers,
            media_type=kind.content_type,
        )

    def commits(self, request: Request) -> Response:
        principal, repo = self.repo(request)
        ref, tip, rest = self._ref_path(repo, request.path_params["key"])
        if rest:
            raise HubError(404, "not_found", f"no ref {request.path_params['key']!r}")
        page = _page_number(request.query_params.get("page", "1"))
        history = repo.reader.history(tip)
        first = (page - 1) * COMMITS_PER_PAGE
        ids = history[first : first + COMMITS_PER_PAGE]
        if not ids and page > 1:
            raise HubError(404, "not_found", f"{ref} has no page {page} of commits")
        rows = [(oid, repo.reader.commit(oid)) for oid in ids]
        return self.html(
            request,
            principal,
            "commits.html",
            repo=repo,
            ref=ref,
            rows=rows,
            page=page,
            total=len(history),
            has_next=first + COMMITS_PER_PAGE < len(history),
        )

    def commit(self, request: Request) -> Response:
        principal, repo = self.repo(request)
        found = resolve_ref(repo.refs, repo.reader, request.path_params["key"])
        if found is None:
            raise HubError(404, "not_found", f"no commit {request.path_params['key'][:100]!r}")
        oid = found[1]
        commit = repo.reader.commit(oid)
        parent = commit.parents[0] if commit.parents else None
        old_tree = repo.reader.commit(parent).tree if parent and repo.reader.has(parent) else None
        files = diffs.diff(repo.reader, old_tree, commit.tree)
        return self.html(
            request,
            principal,
            "commit.html",
            repo=repo,
            oid=oid,
            commit=commit,
            files=files,
            summary=diffs.summary(files),
        )

    def compare(self, request: Request) -> Response:
        principal, repo = self.repo(request)
        spec = request.path_params["key"]
        three = "..." in spec
        left, sep, right = spec.partition("..." if three else "..")
        if not sep or not left or not right:
            raise HubError(404, "not_found", "compare wants BASE...HEAD (or BASE..HEAD)")
        a = resolve_ref(repo.refs, repo.reader, left)
        b = resolve_ref(repo.refs, repo.reader, right)
        if a is None or b is None:
            missing = left if a is None else right
            raise HubError(404, "not_found", f"no ref or commit {missing[:100]!r}")
        base = repo.reader.merge_base(a[1], b[1]) if three else a[1]
        commits = repo.reader.commits_between(base, b[1])
        rows = [(oid, repo.reader.commit(oid)) for oid in commits[:COMMITS_PER_PAGE]]
        old_tree = repo.reader.commit(base).tree if base is not None else None
        files = diffs.diff(repo.reader, old_tree, repo.reader.commit(b[1]).tree)
        return self.html(
            request,
            principal,
            "compare.html",
            repo=repo,
            left=a[0],
            right=b[0],
            three=three,
            base=base,
            rows=rows,
            more=len(commits) - len(rows),
            files=files,
            summary=diffs.summary(files),
        )

    # ---------------------------------------------------------------- signing in
    def login_form(self, request: Request) -> Response:
        principal = self.principal(request)
        return self.html(
            request,
            principal,
            "login.html",
            next=_safe_next(request.query_params.get("next", "/")),
            failed=None,
        )

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        session.check_csrf(request, form.get("csrf"))
        token, target = form.get("token", "").strip(), _safe_next(form.get("next", "/"))
        failures = getattr(request.app.state, "auth_failures", None)
        address = request.client.host if request.client else "?"
        if failures is not None and failures.per_minute > 0 and failures.wait(address):
            raise HubError(429, "rate_limited", "too many failed sign-ins; try again later")
        response = RedirectResponse(target, status_code=303)
        try:
            await self.hub.run(session.sign_in, request, response, token)
        except HubError as err:
            if err.status != 401:
                raise
            if failures is not None and failures.per_minute > 0:
                failures.hit(address)
            page = self.html(request, None, "login.html", next=target, failed=err.message)
            page.status_code = 401
            return page
        return response

    async def logout(self, request: Request) -> Response:
        form = await _form(request)
        session.check_csrf(request, form.get("csrf"))
        response = RedirectResponse("/", status_code=303)
        session.sign_out(request, response)
        return response

    async def stylesheet(self, request: Request) -> Response:
        return Response(
            render.stylesheet(),
            media_type="text/css",
            headers={**security_headers(), "Cache-Control": "public, max-age=86400"},
        )

    # ------------------------------------------------------------------ helpers
    def _ref_path(self, repo: RepoPage, rest: str) -> tuple[str, bytes, str]:
        found = split_ref_path(repo.refs, repo.reader, rest)
        if found is None:
            raise HubError(404, "not_found", f"no ref or commit at the start of {rest[:100]!r}")
        ref, tip, path = found
        return ref, tip, path.strip("/")

    def _listing(self, reader: RepoReader, tree: bytes, path: str) -> list[dict[str, Any]]:
        """A directory's entries, directories first, each with its size; at most
        MAX_LISTING of them (GitHub also shows the first thousand)."""
        prefix = f"{path}/" if path else ""
        entries = sorted(reader.tree(tree), key=lambda e: (e.mode != MODE_TREE, e.name.lower()))
        out = []
        for e in entries[:MAX_LISTING]:
            is_dir = e.mode == MODE_TREE
            out.append(
                {
                    "name": e.name,
                    "path": prefix + e.name,
                    "dir": is_dir,
                    "mode": e.mode,
                    "id": e.id,
                    "size": None if is_dir else reader.file_size(e.mode, e.id),
                }
            )
        if len(entries) > MAX_LISTING:
            out.append({"more": len(entries) - MAX_LISTING})
        return out

    def _readme(
        self, reader: RepoReader, entries: list[dict[str, Any]], base: str, ref: str
    ) -> Any:
        """The directory's README: Markdown rendered (its relative links into this ref),
        other text as it is."""
        for want in README_NAMES:
            for e in entries:
                if "more" not in e and not e["dir"] and e["name"].lower() == want:
                    if e["size"] > render.README_MAX_BYTES or e["mode"] == MODE_LINK:
                        return None
                    text = reader.head(e["mode"], e["id"], e["size"]).decode("utf-8", "replace")
                    if want.endswith((".md", ".markdown")):
                        folder = e["path"].rpartition("/")[0]
                        html = render.markdown(
                            text, _url(base, "blob", ref, folder), _url(base, "raw", ref, folder)
                        )
                        return {"name": e["name"], "html": html}
                    return {"name": e["name"], "text": text}
        return None


# ------------------------------------------------------------------------ helpers


def _url(base: str, what: str, ref: str, path: str) -> str:
    tail = f"/{quote(path)}" if path else ""
    return f"{base}/{what}/{quote(ref)}{tail}"


def _crumbs(path: str) -> list[tuple[str, str]]:
    """(name, path so far) of each directory of ``path``."""
    parts = [p for p in path.split("/") if p]
    return [(p, "/".join(parts[: i + 1])) for i, p in enumerate(parts)]


def _page_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise HubError(400, "bad_request", f"page must be a whole number from 1 to {MAX_PAGE}")
    return int(text)


def _safe_next(target: str) -> str:
    """Only a path of this hub ("/..."), never another site ("//host", "/\\host")."""
    if target.startswith("/") and not target.startswith(("//", "/\\")) and len(target) < 2000:
        return target if target.isprintable() else "/"
    return "/"


_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


def parse_range(spec: str, size: int) -> tuple[int, int] | None:
    """The [start, end) of a single ``Range: bytes=`` value, None when it cannot be served
    (416). Several ranges are answered with the whole file, as RFC 9110 allows."""
    spec = spec.strip()
    if "," in spec:
        return 0, size
    m = _RANGE_RE.fullmatch(spec)
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # the last N bytes
        n = int(last)
        return (max(0, size - n), size) if n > 0 and size > 0 else None
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or (last and int(last) < start):
        return None
    return start, end


async def _in_threads(pieces: Iterator[bytes]) -> Any:
    """Pull each piece (a chunk read and decompressed) in the thread pool."""
    from starlette.concurrency import iterate_in_threadpool

    async for piece in iterate_in_threadpool(pieces):
        yield piece


async def _form(request: Request) -> dict[str, str]:
    """A small url-encoded form (the sign-in and sign-out forms), 400 otherwise."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HubError(415, "unsupported_media_type", "expected a url-encoded form")
    body = await read_body(request, 8192)
    try:
        fields = parse_qs(body.decode("ascii"), keep_blank_values=True, max_num_fields=10)
    except (UnicodeDecodeError, ValueError):
        raise HubError(400, "bad_request", "malformed form") from None
    return {k: v[0] for k, v in fields.items()}


def routes(state: HubState) -> list[Route]:
    """The pages, to be placed after every API and protocol route."""
    web = Web(state)

    async def login(request: Request) -> Response:
        try:
            return await web.login(request)
        except HubError as err:
            return web.error_page(request, err)

    async def logout(request: Request) -> Response:
        try:
            return await web.logout(request)
        except HubError as err:
            return web.error_page(request, err)

    base = "/{owner}/{slug}"
    return [
        Route("/", web.page(web.index), methods=["GET"]),
        Route("/static/web.css", web.stylesheet, methods=["GET"]),
        Route("/login", web.page(web.login_form), methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route(base, web.page(web.home), methods=["GET"]),
        Route(f"{base}/tree/{{key:path}}", web.page(web.tree), methods=["GET"]),
        Route(f"{base}/blob/{{key:path}}", web.page(web.blob), methods=["GET"]),
        Route(f"{base}/raw/{{key:path}}", web.page(web.raw), methods=["GET"]),
        Route(f"{base}/commits/{{key:path}}", web.page(web.commits), methods=["GET"]),
        Route(f"{base}/commit/{{key:path}}", web.page(web.commit), methods=["GET"]),
        Route(f"{base}/compare/{{key:path}}", web.page(web.compare), methods=["GET"]),
    ]
