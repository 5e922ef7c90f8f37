"""Caller input of the mailbox endpoints, checked before anything reaches Graph: mailbox and message ids
(path parameters), ``top``, ``folder``, ``cursor``; and the Graph paths and next links built from them.

Path parameters are validated against allowlists and then percent-encoded, so no ``/``, ``?``, ``#``, ``$``,
``..``, ``%`` or control character from a caller can change which Graph resource a request names. A cursor
is caller input too: it wraps the Graph ``@odata.nextLink`` of a first page, and comes back only if that
link names exactly the mailbox (and folder) of the request that carries it, with the options this module
sends (the users API's cursor rules, :mod:`shared.core.cursor`). So a cursor can never widen a read beyond the
mailbox whose scope was checked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from urllib.parse import unquote, urlsplit

from shared.core.cursor import decode_cursor, encode_cursor, invalid_cursor
from shared.core.errors import BadRequest
from shared.core.params import reject_unknown
from shared.core.records import Record
from shared.graph.links import link_options, pages_once
from shared.graph.users import user_path, validate_user_id

#: App role of this API that lets a caller read mailboxes through it.
DEFAULT_TOP = 10
MAX_TOP = 50
#: Well-known folders a caller may name (absent: every folder, Graph's ``/messages``).
FOLDERS: tuple[str, ...] = ("inbox", "sentitems", "drafts", "archive")
#: The properties of a message in a listing, as Graph names them.
LIST_FIELDS: tuple[str, ...] = (
    "subject",
    "from",
    "toRecipients",
    "receivedDateTime",
    "bodyPreview",
    "isRead",
    "hasAttachments",
    "importance",
    "webLink",
)
#: The properties of one message read on its own (its body converted to text by Graph).
MESSAGE_FIELDS: tuple[str, ...] = (
    "subject",
    "from",
    "toRecipients",
    "ccRecipients",
    "receivedDateTime",
    "isRead",
    "hasAttachments",
    "importance",
    "webLink",
    "body",
)
ORDER_BY = "receivedDateTime desc"
#: Graph message ids are URL-safe base64 (``AAMkAG...``); anything else is refused before Graph sees it.
MESSAGE_ID_PATTERN = "[A-Za-z0-9_=+-]{1,512}"
MAX_MESSAGE_ID_LENGTH = 512

LIST_PARAMETERS = frozenset({"top", "folder", "cursor"})
GET_PARAMETERS: frozenset[str] = frozenset()

_MESSAGE_ID = MESSAGE_ID_PATTERN
_TOP = r"[0-9]{1,3}"
#: Options a messages next link may carry; anything else means the link is not one of ours.
_LINK_OPTIONS = frozenset({"$top", "$select", "$orderby", "$skip", "$skiptoken"})


class ListMessagesQuery(Record):
    """A validated ``GET /api/users/{id}/messages`` query. With a cursor, ``repeated`` names the other
    parameters sent with it; each must equal what the cursor's link encodes."""

    mailbox: str
    top: int = DEFAULT_TOP
    folder: str | None = None
    cursor: str | None = None
    repeated: frozenset[str] = frozenset()


def validate_mailbox(value: str) -> str:
    """A mailbox owner's object id (GUID) or userPrincipalName, lower-cased (both are case-insensitive).

    Raises:
        BadRequest: anything else, including ``..`` (no real UPN has consecutive dots).
    """
    checked = validate_user_id(value)
    if ".." in checked:
        raise BadRequest("id must be a user's object id (GUID) or userPrincipalName")
    return checked.lower()


def validate_message_id(value: str) -> str:
    """A Graph message id: URL-safe base64 characters only, at most 512 of them.

    Raises:
        BadRequest: any other character (``/``, ``?``, ``#``, ``$``, ``.``, ``%``, control characters).
    """
    if not re.fullmatch(_MESSAGE_ID, value):
        raise BadRequest(
            f"message id must be a Microsoft Graph message id (1 to {MAX_MESSAGE_ID_LENGTH} characters "
            "from A-Z a-z 0-9 - _ + =)"
        )
    return value


def parse_list_query(mailbox: str, params: Mapping[str, str]) -> ListMessagesQuery:
    """Validate the listing's path and query parameters. Raises BadRequest with the reason."""
    reject_unknown(params, LIST_PARAMETERS)
    top = DEFAULT_TOP
    if "top" in params:
        raw = params["top"].strip()
        if not re.fullmatch(_TOP, raw) or not 1 <= int(raw) <= MAX_TOP:
            raise BadRequest(f"top must be an integer from 1 to {MAX_TOP}")
        top = int(raw)
    folder = None
    if "folder" in params:
        folder = params["folder"].strip().lower()
        if folder not in FOLDERS:
            raise BadRequest(f"folder must be one of {', '.join(FOLDERS)} (or absent for all mail)")
    cursor = params.get("cursor")
    repeated = frozenset(params) - {"cursor"} if cursor is not None else frozenset()
    return ListMessagesQuery(
        mailbox=validate_mailbox(mailbox), top=top, folder=folder, cursor=cursor, repeated=repeated
    )


def parse_get_query(params: Mapping[str, str]) -> None:
    """The one-message read takes no query parameters. Raises BadRequest for any."""
    reject_unknown(params, GET_PARAMETERS)


def mailbox_path(mailbox: str) -> str:
    """Graph path of the mailbox owner (``users/{id}``, or the key syntax for a UPN starting with ``$``)."""
    return user_path(mailbox)


def messages_path(mailbox: str, folder: str | None) -> str:
    """Graph path of the messages of ``mailbox`` (one well-known folder, or all mail)."""
    base = mailbox_path(mailbox)
    return f"{base}/mailFolders/{folder}/messages" if folder else f"{base}/messages"


def message_path(mailbox: str, message_id: str) -> str:
    """Graph path of one message (the id is allowlisted; nothing in it needs encoding but ``+`` and ``=``)."""
    encoded = message_id.replace("+", "%2B").replace("=", "%3D")
    return f"{mailbox_path(mailbox)}/messages/{encoded}"


def first_page_params(top: int) -> dict[str, str]:
    return {"$top": str(top), "$select": ",".join(LIST_FIELDS), "$orderby": ORDER_BY}


class MessagesLink(Record):
    """What a messages next link continues: its page size and folder (None: all mail)."""

    top: int
    folder: str | None


def link_query(link: str, *, mailbox: str) -> MessagesLink | None:
    """The query a Graph next link of ``mailbox`` continues, or None when it is not one: its path must be
    ``/v1.0/users/{mailbox}/messages`` or ``.../mailFolders/{well-known folder}/messages`` and its options
    exactly those :func:`first_page_params` sends plus one numeric ``$skip`` or printable ``$skiptoken``.
    Paths are compared decoded (Graph echoes the request path, encoded or not); a raw path holding an
    encoded ``/`` or ``\\``, a ``..`` or an encoded ``%`` is refused. The origin is the Graph client's to
    check (:meth:`shared.graph.client.GraphClient.is_graph_url`)."""
    parts = urlsplit(link)
    raw_path = parts.path.lower()
    if "%2f" in raw_path or "%5c" in raw_path or "%25" in raw_path or ".." in raw_path:
        return None
    decoded = unquote(parts.path)
    folder = next(
        (f for f in (None, *FOLDERS) if decoded == unquote(f"/v1.0/{messages_path(mailbox, f)}")), "?"
    )
    if folder == "?":
        return None
    options = link_options(parts.query, _LINK_OPTIONS)
    if options is None:
        return None
    top = options.get("$top", "")
    if not re.fullmatch(_TOP, top) or not 1 <= int(top) <= MAX_TOP:
        return None
    if options.get("$select") != ",".join(LIST_FIELDS) or options.get("$orderby") != ORDER_BY:
        return None
    if not pages_once(options):
        return None
    return MessagesLink(top=int(top), folder=folder)


def encode_messages_cursor(next_link: str) -> str:
    return encode_cursor(next_link, eventual=False)


def decode_messages_cursor(query: ListMessagesQuery, *, is_graph_url: Callable[[str], bool]) -> str:
    """The Graph next link inside ``query.cursor``, checked against the request's mailbox (see
    :func:`link_query`; ``is_graph_url`` checks its origin) and against the parameters repeated with it.

    Raises:
        InvalidCursor: not an unchanged nextCursor of this mailbox.
        BadRequest: ``top`` or ``folder`` sent with it differ from the cursor's.
    """
    if query.cursor is None:
        raise invalid_cursor()
    found: list[MessagesLink] = []

    def check(link: str) -> bool:
        parsed = link_query(link, mailbox=query.mailbox) if is_graph_url(link) else None
        if parsed is not None:
            found.append(parsed)
        return parsed is not None

    cursor = decode_cursor(query.cursor, check_link=check, check_select=lambda fields: fields == ())
    if cursor.eventual or not found:
        raise invalid_cursor()
    encoded = found[-1]
    given = {"top": query.top, "folder": query.folder}
    continued = {"top": encoded.top, "folder": encoded.folder}
    for name in sorted(query.repeated):
        if given[name] != continued[name]:
            raise BadRequest(
                f"{name} differs from the query this cursor continues: send the cursor alone, or with the "
                "same top and folder as the first page"
            )
    return cursor.next_link
