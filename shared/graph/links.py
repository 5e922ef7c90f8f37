"""Graph next links as the app accepts them back (inside a cursor): the query options of a link, and its
paging option. Every capability that pages through Graph checks its own links with these, so a link the
app never received from Graph cannot make it send anything else."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import parse_qsl

#: Graph's paging options and what their values may be: a printable ``$skiptoken``, a numeric ``$skip``.
PAGING_OPTIONS: Mapping[str, str] = {
    "$skiptoken": r"[\x21-\x7e]{1,4096}",
    "$skip": r"[0-9]{1,9}",
}


def link_options(query: str, allowed: frozenset[str]) -> dict[str, str] | None:
    """The options of a link's ``query``; None when one is not in ``allowed`` or appears twice."""
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in allowed or key in options:
            return None
        options[key] = value
    return options


def pages_once(options: Mapping[str, str]) -> bool:
    """Whether ``options`` hold exactly one paging option (:data:`PAGING_OPTIONS`), with a valid value."""
    paging = [key for key in PAGING_OPTIONS if key in options]
    return len(paging) == 1 and re.fullmatch(PAGING_OPTIONS[paging[0]], options[paging[0]]) is not None
