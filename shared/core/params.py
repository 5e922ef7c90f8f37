"""Query parameters the caller sent: the one check that refuses names an endpoint does not take."""

from __future__ import annotations

from collections.abc import Mapping

from shared.core.errors import BadRequest


def reject_unknown(params: Mapping[str, str], allowed: frozenset[str]) -> None:
    """Raise BadRequest naming the parameters of ``params`` not in ``allowed`` (at most 200 characters of
    them) and the allowed ones ("none" for an endpoint that takes none)."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        listed = ", ".join(sorted(allowed)) or "none"
        raise BadRequest(f"Unknown query parameter(s): {', '.join(unknown)[:200]}. Allowed: {listed}")
