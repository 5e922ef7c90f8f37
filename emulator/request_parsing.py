"""Small request helpers shared by the services."""

from __future__ import annotations

import base64
from urllib.parse import unquote_plus

from starlette.requests import Request


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer …`` header (scheme case-insensitive), else None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from HTTP Basic (RFC 6749 §2.3.1: form-urlencoded then base64)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    user, sep, password = raw.partition(":")
    if not sep:
        return None
    return unquote_plus(user), unquote_plus(password)


async def form_fields(request: Request) -> dict[str, str]:
    """The url-encoded form body as a plain dict (last value wins), empty when not a form."""
    ctype = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" not in ctype and "multipart/form-data" not in ctype:
        return {}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}
