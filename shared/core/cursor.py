"""Opaque paging cursors: a Graph ``@odata.nextLink`` wrapped for callers, and checked when it comes back.

A cursor is base64url (no padding) of ``{"v": 1, "u": <next link>, "e": <needs ConsistencyLevel>,
"s": [<selected fields>]}``. It is
not encrypted or signed: it only ever names a page of a query the caller could make directly. What matters
is that a returned cursor can never make the app call anything but the intended Graph collection (SSRF):
:func:`decode_cursor` requires the caller-supplied ``check_link`` to accept the URL, and the Graph client
again refuses absolute URLs outside the configured Graph origin.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable

from shared.core.errors import InvalidCursor
from shared.core.records import Record

MAX_CURSOR_LENGTH = 4096
_VERSION = 1
_BASE64URL = r"^[A-Za-z0-9_-]+$"


class Cursor(Record):
    """A decoded cursor: the Graph next link to GET, whether to send ``ConsistencyLevel: eventual``, and the
    fields the first page selected (so every page has the same shape)."""

    next_link: str
    eventual: bool
    select: tuple[str, ...] = ()


def encode_cursor(next_link: str, *, eventual: bool, select: tuple[str, ...] = ()) -> str:
    """The opaque cursor for ``next_link``."""
    document = {"v": _VERSION, "u": next_link, "e": eventual, "s": list(select)}
    payload = json.dumps(document, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode("utf-8")).decode("ascii").rstrip("=")


def invalid_cursor() -> InvalidCursor:
    """The one error for a cursor that is not an unchanged ``nextCursor`` of ours (no detail on purpose)."""
    return InvalidCursor("cursor is invalid: pass the nextCursor value of the previous page unchanged")


def decode_cursor(
    cursor: str,
    *,
    check_link: Callable[[str], bool],
    check_select: Callable[[tuple[str, ...]], bool] = lambda fields: True,
) -> Cursor:
    """Decode and validate a caller's cursor.

    Raises:
        InvalidCursor: the cursor is malformed, too long, of an unknown version, its link fails ``check_link``
            (e.g. another host, another path, unexpected query options) or its fields fail ``check_select``.
    """
    invalid = invalid_cursor()
    if not cursor or len(cursor) > MAX_CURSOR_LENGTH or not re.fullmatch(_BASE64URL, cursor):
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise invalid from exc
    if not isinstance(payload, dict) or payload.get("v") != _VERSION:
        raise invalid
    link, eventual, select = payload.get("u"), payload.get("e"), payload.get("s", [])
    if not isinstance(link, str) or not isinstance(eventual, bool) or not check_link(link):
        raise invalid
    if not isinstance(select, list) or not all(isinstance(field, str) for field in select):
        raise invalid
    fields = tuple(select)
    if not check_select(fields):
        raise invalid
    return Cursor(next_link=link, eventual=eventual, select=fields)
