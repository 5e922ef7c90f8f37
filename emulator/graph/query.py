"""OData system query options common to every Graph endpoint, and the opaque page tokens.

Option names are case-insensitive and must appear at most once; an unknown ``$`` option is refused.
Parameters without ``$`` are ignored, as Graph v1.0 does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.requests import Request

from emulator.graph.http import GraphError

KNOWN_OPTIONS = frozenset(
    {
        "$select",
        "$filter",
        "$orderby",
        "$top",
        "$skip",
        "$count",
        "$search",
        "$expand",
        "$skiptoken",
        "$deltatoken",
        "$format",
    }
)


def system_options(request: Request) -> dict[str, str]:
    options: dict[str, str] = {}
    for name, value in parse_qsl(request.url.query, keep_blank_values=True):
        if not name.startswith("$"):
            continue
        key = name.lower()
        if key in options:
            raise GraphError(
                400,
                "BadRequest",
                f"Query option '{key}' was specified more than once, but it must be specified at most once.",
            )
        if key not in KNOWN_OPTIONS:
            raise GraphError(400, "BadRequest", f"The query parameter '{name}' is not supported.")
        options[key] = value
    return options


def parse_int_option(name: str, value: str) -> int:
    text = value.strip()
    if not text.lstrip("-").isdigit():
        raise GraphError(
            400,
            "BadRequest",
            f"Invalid value '{value}' for {name} query option found. "
            f"The {name} query option requires a non-negative integer value.",
        )
    number = int(text)
    if number < 0:
        raise GraphError(
            400,
            "BadRequest",
            f"Invalid value '{value}' for {name} query option found. "
            f"The {name} query option requires a non-negative integer value.",
        )
    return number


def parse_count(value: str | None) -> bool:
    if value is None:
        return False
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise GraphError(400, "BadRequest", f"'{value}' is not a valid count option.")
    return text == "true"


def parse_select(value: str | None, known: dict[str, str], unknown: Any) -> list[str] | None:
    """Canonical property names in request order (duplicates dropped); ``unknown(name)`` builds the error."""
    if value is None or not value.strip():
        return None
    chosen: list[str] = []
    for raw in value.split(","):
        name = raw.strip()
        canonical = known.get(name.lower())
        if canonical is None:
            raise unknown(name)
        if canonical not in chosen:
            chosen.append(canonical)
    return chosen


def parse_orderby(value: str | None) -> list[tuple[str, bool]]:
    """``[(property path, descending)]``; raises 400 on bad syntax."""
    if value is None or not value.strip():
        return []
    items: list[tuple[str, bool]] = []
    for raw in value.split(","):
        parts = raw.split()
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise GraphError(400, "BadRequest", f"Syntax error at position {len(raw)} in '{value}'.")
        items.append((parts[0], len(parts) == 2 and parts[1].lower() == "desc"))
    return items


# ------------------------------------------------------------------------------------ page tokens
def encode_token(secret: bytes, payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    mac = hmac.new(secret, raw, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac + raw).decode("ascii").rstrip("=")


def decode_token(secret: bytes, token: str) -> dict[str, Any] | None:
    """The payload of a token this process minted since the last reset, else None (tampered/foreign)."""
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    mac, raw = data[:16], data[16:]
    if len(mac) < 16 or not hmac.compare_digest(mac, hmac.new(secret, raw, hashlib.sha256).digest()[:16]):
        return None
    try:
        payload = json.loads(raw)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


_SAFE = "$,'():/@"


def build_url(origin: str, path: str, params: list[tuple[str, str]]) -> str:
    """A full URL with OData-friendly escaping (``$``, ``,``, ``'``, ``:`` and ``/`` stay readable)."""
    if not params:
        return f"{origin}{path}"
    query = "&".join(f"{k}={quote(v, safe=_SAFE)}" for k, v in params)
    return f"{origin}{path}?{query}"
