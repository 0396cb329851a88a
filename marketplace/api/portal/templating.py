"""Jinja2 for the portal: templates from this package, autoescape always on, and every printed string made
inert (controls, zero-width and bidi characters shown as ``\\u202e`` escapes, as the CLI does), so a
provider name or a record cannot inject markup or reorder what a reader sees. Only values a core renderer
already escaped (report bodies, SVG charts) are passed as :class:`markupsafe.Markup`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from marketplace.names import escape_unprintable

__all__ = ["PORTAL_PREFIX", "STATIC_DIR", "inert", "inert_markup", "page", "render"]

PORTAL_PREFIX = "/portal"
PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR = PACKAGE_DIR / "static"


def inert(value: Any) -> Any:
    """A printed value: strings with every unprintable character escaped; Markup (already escaped) as it is."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return escape_unprintable(value)


def inert_markup(html_text: str) -> Markup:
    """HTML a core renderer built (every text in it already ``html.escape``d) as Markup, with its unprintable
    characters escaped too: those renderers escape markup but not bidi or zero-width characters."""
    return Markup(escape_unprintable(html_text))


_ENV = Environment(loader=FileSystemLoader(str(PACKAGE_DIR / "templates")), autoescape=True,
                   undefined=StrictUndefined, finalize=inert, trim_blocks=True, lstrip_blocks=True)
_ENV.globals["prefix"] = PORTAL_PREFIX


def render(name: str, **context: Any) -> str:
    """The template ``name`` rendered with ``context``."""
    return _ENV.get_template(name).render(**context)


def page(request: Request, name: str, status_code: int = 200, *, signed: Any = None, **context: Any) -> HTMLResponse:
    """A portal page: ``name`` rendered with the signed-in principal (``signed``: a
    :class:`~marketplace.api.portal.sessions.SignedIn` or None) and ``context``."""
    body = render(name, request_path=request.url.path, signed=signed, **context)
    return HTMLResponse(body, status_code)
