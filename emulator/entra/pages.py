"""HTML pages (Jinja2, autoescape on) and the ways a response reaches the client's redirect URI.

Every page carries ``Cache-Control: no-store``, ``X-Frame-Options: DENY`` and a CSP allowing only inline
styles and the page's own nonce-tagged script (the form_post auto-submit).
"""

from __future__ import annotations

import secrets
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import HTMLResponse, Response

from emulator.clock import CLOCK

TEMPLATES = Path(__file__).with_name("templates")
ENV = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
)

Params = list[tuple[str, str | None]]


def _headers(nonce: str) -> dict[str, str]:
    return {
        "Cache-Control": "no-store, no-cache",
        "Pragma": "no-cache",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; frame-ancestors "
            "'none'; base-uri 'none'"
        ),
        "x-ms-request-id": str(uuid.uuid4()),
    }


def render(template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = ENV.get_template(template).render(nonce=nonce, **context)
    return HTMLResponse(html, status_code=status, headers=_headers(nonce))


def _stamp() -> str:
    return CLOCK.now().strftime("%Y-%m-%d %H:%M:%SZ")


def describe(code: int, message: str) -> str:
    """An ``error_description`` as Entra writes it in redirects."""
    return (
        f"AADSTS{code}: {message}\r\nTrace ID: {uuid.uuid4()}\r\nCorrelation ID: "
        f"{uuid.uuid4()}\r\nTimestamp: {_stamp()}"
    )


def error_page(code: int, message: str, *, status: int = 400) -> HTMLResponse:
    """Entra's "Sorry, but we're having trouble signing you in" page: used when the client cannot be
    trusted with a redirect (unknown app, unregistered redirect URI, unknown tenant, stale flow)."""
    return render(
        "error.html",
        status=status,
        code=code,
        message=message,
        trace_id=str(uuid.uuid4()),
        correlation_id=str(uuid.uuid4()),
        timestamp=_stamp(),
    )


def _join(uri: str, sep: str, params: Params) -> str:
    query = urlencode([(k, v) for k, v in params if v is not None])
    if not query:
        return uri
    if sep == "?":
        return f"{uri}{'&' if '?' in uri else '?'}{query}"
    return f"{uri}#{query}"


def respond(redirect_uri: str, params: Params, response_mode: str) -> Response:
    """Deliver parameters to the client: a 302 with a query or fragment, or an auto-submitted form."""
    if response_mode == "form_post":
        fields = [(k, v) for k, v in params if v is not None]
        return render("form_post.html", action=redirect_uri, fields=fields)
    location = _join(redirect_uri, "#" if response_mode == "fragment" else "?", params)
    return Response(
        status_code=302,
        headers={"Location": location, "Cache-Control": "no-store, no-cache", "Pragma": "no-cache"},
    )


def error_redirect(
    redirect_uri: str,
    response_mode: str,
    state: str | None,
    error: str,
    code: int,
    message: str,
    *,
    subcode: str | None = None,
    first: Params | None = None,
) -> Response:
    params: Params = list(first or [])
    params += [("error", error), ("error_description", describe(code, message))]
    if subcode:
        params.append(("error_subcode", subcode))
    params.append(("state", state))
    return respond(redirect_uri, params, response_mode)
