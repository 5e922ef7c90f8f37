"""The single-page client served under ``/spa/``: its files, its configuration and its strict CSP.

The files are ``shared/web/spa/`` (``index.html``, ``app.js``, ``app.css``) and ``shared/web/spa/vendor/``,
Microsoft's ``@azure/msal-browser`` as installed by npm and copied by ``scripts/build_spa.py``. Paths are
allow-listed (letters, digits, ``_ . - /``, no ``..``) and must stay inside that folder; anything else is a
404. ``/spa/config.json`` tells the client its registration (``SPA_CLIENT_ID``), the tenant's authority and
the API's scope.

The CSP allows scripts, styles and images from this origin only (no inline script or style at all),
network calls to this origin and to the tenant's sign-in origin (MSAL.js redeems codes and refreshes tokens
there), frames from the sign-in origin only (MSAL.js's silent renewal), and nobody may frame the client.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import azure.functions as func

from shared.core.records import Record

SPA_DIR = Path(__file__).with_name("spa")
_ASSET = r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
}


class SpaConfig(Record):
    """What ``/spa/config.json`` tells the client."""

    client_id: str
    authority: str
    api_scope: str

    def to_json(self) -> dict[str, object]:
        host = urlsplit(self.authority).netloc
        return {
            "clientId": self.client_id,
            "authority": self.authority,
            "knownAuthorities": [host],
            "apiScope": self.api_scope,
        }


def content_security_policy(sign_in_origin: str) -> str:
    """The client's CSP (module docstring)."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        f"connect-src 'self' {sign_in_origin}; frame-src {sign_in_origin}; "
        "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ).replace("  ", " ")


def _headers(content_type: str, sign_in_origin: str, *, cache: bool) -> dict[str, str]:
    headers = {
        "content-type": content_type,
        "cache-control": "public, max-age=3600" if cache else "no-store",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }
    if content_type.startswith("text/html"):
        headers["content-security-policy"] = content_security_policy(sign_in_origin)
        headers["x-frame-options"] = "DENY"
    return headers


def not_found() -> func.HttpResponse:
    return func.HttpResponse(
        b"Not found",
        status_code=404,
        headers={"content-type": "text/plain; charset=utf-8", "cache-control": "no-store"},
    )


def asset_response(path: str, *, sign_in_origin: str) -> func.HttpResponse:
    """The file ``path`` under ``/spa/`` (empty: ``index.html``), or a 404."""
    path = path or "index.html"
    if not re.fullmatch(_ASSET, path) or ".." in path:
        return not_found()
    file = (SPA_DIR / path).resolve()
    content_type = _TYPES.get(file.suffix)
    if content_type is None or not file.is_relative_to(SPA_DIR.resolve()) or not file.is_file():
        return not_found()
    # Vendor files are versioned by package.json's pin; the client's own files change with a deployment.
    cache = path.startswith("vendor/")
    return func.HttpResponse(
        file.read_bytes(), status_code=200, headers=_headers(content_type, sign_in_origin, cache=cache)
    )


def config_response(config: SpaConfig | None, *, sign_in_origin: str) -> func.HttpResponse:
    """``/spa/config.json``; a 404 when no single-page client is configured."""
    if config is None:
        return not_found()
    body = json.dumps(config.to_json()).encode("utf-8")
    return func.HttpResponse(
        body, status_code=200, headers=_headers(_TYPES[".json"], sign_in_origin, cache=False)
    )
