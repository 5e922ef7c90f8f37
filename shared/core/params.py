"""Query parameters the caller sent: the check that refuses names an endpoint does not take, and the one
that refuses empty values."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlsplit

from shared.core.errors import BadRequest


def reject_unknown(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    """Raise BadRequest naming the parameters of ``params`` not in ``allowed`` (at most 200 characters of
    them) and the allowed ones ("none" for an endpoint that takes none)."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        listed = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(f"Unknown query parameter(s): {', '.join(unknown)[:200]}. Allowed: {listed}")


def reject_empty(url: str) -> None:
    """Raise BadRequest for a query parameter sent with no value (``?select=``, ``?top``).

    The Functions host drops empty values before the app sees the parameters, so ``?select=`` would read
    as no ``select`` at all: a request the OpenAPI document calls invalid (every parameter has a non-empty
    form) would be served as another one. The raw URL still has them.
    """
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if not value:
            raise BadRequest(f"{name[:100]} has an empty value: send a value or leave the parameter out")
