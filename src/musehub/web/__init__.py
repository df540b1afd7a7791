"""MuseHub's web view: read-only, server-rendered pages of the repositories (docs/operations.md,
"Web view"). ``routes(state)`` gives the pages, to be placed after the API and protocol routes;
the modules: ``pages`` (routes), ``objects`` (reading the packs, cached), ``diffs``, ``media``
(what a file is to a browser), ``render`` (templates, Markdown, highlighting), ``session``
(signing in with a token)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.routing import Route

    from musehub.state import HubState


def routes(state: HubState) -> list[Route]:
    from musehub.web.pages import routes as page_routes

    return page_routes(state)
