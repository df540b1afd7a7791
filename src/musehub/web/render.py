"""Turning repository content into safe HTML: templates, Markdown, syntax highlighting.

Everything that comes from a repository is escaped: Jinja2 autoescapes every template,
Markdown is rendered with raw HTML disabled (markdown-it-py's own link check refuses
``javascript:`` and the like), and Pygments emits only class names, styled by the hub's
one static style sheet (the Content-Security-Policy allows no inline style or script).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from functools import cache
from importlib import resources
from typing import Any

from markupsafe import Markup

#: Text files up to this size are highlighted; larger ones are offered raw.
HIGHLIGHT_MAX_BYTES = 512 << 10
#: README files up to this size are rendered on the repository page.
README_MAX_BYTES = 512 << 10


@cache
def environment() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(
        loader=PackageLoader("musehub.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = human_size
    env.filters["when"] = when
    env.filters["short"] = lambda oid: oid.hex()[:12]
    env.filters["hex"] = lambda oid: oid.hex()
    env.filters["seconds"] = duration
    env.globals["css_url"] = f"/static/web.css?v={css_version()}"
    return env


def page(template: str, **context: Any) -> str:
    return str(environment().get_template(template).render(**context))


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"


def when(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    return (
        f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
        if whole >= 3600
        else (f"{whole // 60}:{whole % 60:02d}")
    )


@cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str, blob_base: str = "", raw_base: str = "") -> Markup:
    """README Markdown as HTML; any HTML in it is shown as text. Relative links point at the
    repository's file pages (``blob_base``/path) and relative images at its raw files, as a
    README's links mean them."""
    md = _markdown()
    tokens = md.parse(text)
    for token in tokens:
        for child in token.children or ():
            attr = {"image": "src", "link_open": "href"}.get(child.type)
            target = child.attrGet(attr) if attr else None
            if attr and isinstance(target, str) and _relative(target):
                base = raw_base if child.type == "image" else blob_base
                if base:
                    child.attrSet(attr, base + "/" + target.removeprefix("./"))
    return Markup(md.renderer.render(tokens, md.options, {}))  # noqa: S704 - html is off


def _relative(url: str) -> bool:
    """A path inside the repository: no scheme, not absolute, not an anchor."""
    return bool(url) and not url.startswith(("/", "#", "?")) and ":" not in url.split("/")[0]


def highlight(name: str, text: str) -> Markup:
    """``text`` with line numbers (anchors ``#L-<n>``) and syntax highlighting chosen by the
    file name (plain text when Pygments knows no lexer for it)."""
    from pygments import highlight as pyg_highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, get_lexer_for_filename
    from pygments.util import ClassNotFound

    try:
        lexer = get_lexer_for_filename(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False, ensurenl=False)
    formatter = HtmlFormatter(
        linenos="table", lineanchors="L", anchorlinenos=True, cssclass="highlight", wrapcode=True
    )
    return Markup(pyg_highlight(text, lexer, formatter))  # noqa: S704 - Pygments escapes


@cache
def stylesheet() -> bytes:
    """The hub's one style sheet: the page layout, then Pygments' classes."""
    from pygments.formatters import HtmlFormatter

    base = resources.files("musehub.web").joinpath("static/web.css").read_text(encoding="utf-8")
    code = HtmlFormatter(style="default").get_style_defs(".highlight")
    return (base + "\n/* Pygments */\n" + code + "\n").encode()


@cache
def css_version() -> str:
    return hashlib.sha256(stylesheet()).hexdigest()[:12]
