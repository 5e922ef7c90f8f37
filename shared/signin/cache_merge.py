"""Three-way merge of serialized MSAL token caches, for sessions written concurrently.

Two requests of one person load the same session (cache ``base``), both refresh a token, and both write.
The second write meets a newer row (``theirs``, HTTP 412) and must not discard either request's work. So
the merge starts from ``theirs`` (the fresher record) and re-applies only what THIS request changed
relative to ``base`` (``mine``), entry by entry:

* an entry this request did not touch keeps the stored value (theirs);
* an entry this request added or changed is written, unless the other request changed the same entry
  too: then the fresher entry wins (access tokens by ``cached_at``, refresh tokens by
  ``last_modification_time``, both set by MSAL when it writes the entry; a tie goes to this request), so
  the stored cache ends up with the newest tokens whichever request wrote last;
* an entry this request removed (MSAL drops a revoked refresh token; the app drops an access token after
  a claims challenge) is removed, unless the other request wrote a fresher value for it meanwhile.

MSAL's serialized cache is a JSON object of sections (``AccessToken``, ``RefreshToken``, ``IdToken``,
``Account``, ``AppMetadata``) mapping entry keys to entry objects.
"""

from __future__ import annotations

import json
from typing import Any

_FRESHNESS_FIELDS = ("cached_at", "last_modification_time")


def _parse(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _section(cache: dict[str, Any], name: str) -> dict[str, Any]:
    value = cache.get(name)
    return value if isinstance(value, dict) else {}


def _freshness(entry: Any) -> int:
    if not isinstance(entry, dict):
        return -1
    for name in _FRESHNESS_FIELDS:
        try:
            return int(entry[name])
        except (KeyError, TypeError, ValueError):
            continue
    return -1


def merge_token_caches(base: str, mine: str, theirs: str) -> str:
    """The cache to store when this request turned ``base`` into ``mine`` while another request stored
    ``theirs`` (see the module docstring). Unreadable input: the readable side wins."""
    base_cache, mine_cache, theirs_cache = _parse(base), _parse(mine), _parse(theirs)
    if mine_cache is None:
        return theirs
    if theirs_cache is None:
        return mine
    base_cache = base_cache or {}
    result: dict[str, Any] = {name: dict(_section(theirs_cache, name)) for name in theirs_cache}
    for name in set(base_cache) | set(mine_cache):
        base_entries, mine_entries = _section(base_cache, name), _section(mine_cache, name)
        theirs_entries = _section(theirs_cache, name)
        target = result.setdefault(name, {})
        for key in set(base_entries) | set(mine_entries):
            before, after = base_entries.get(key), mine_entries.get(key)
            if after == before:
                continue  # untouched here: the stored value stands
            stored = theirs_entries.get(key)
            they_changed = key in theirs_entries and stored != before
            if after is None:
                if not they_changed or _freshness(stored) <= _freshness(before):
                    target.pop(key, None)
                continue
            if they_changed and stored is not None and _freshness(stored) > _freshness(after):
                continue  # both wrote this entry; theirs is fresher
            target[key] = after
    return json.dumps(result, separators=(",", ":"))


def without_access_tokens(cache: str) -> str:
    """``cache`` without its access tokens (MSAL gets them again with the refresh token): what a session
    stores when its cache would not fit in a table row. Unreadable input: an empty cache."""
    data = _parse(cache)
    if data is None:
        return "{}"
    data["AccessToken"] = {}
    return json.dumps(data, separators=(",", ":"))
