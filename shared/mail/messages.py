"""Mailbox reads through Graph with the app's own identity: a page of messages, newest first, and one message
with its body as text.

Requires the Microsoft Graph **application** permission ``Mail.Read`` (admin consented). Graph's answers
are mapped to the API's codes (docs/errors.md):

* ``ErrorInvalidUser`` / ``Request_ResourceNotFound`` (404): ``user_not_found``;
  ``MailboxNotEnabledForRESTAPI`` (404, guests and unlicensed users): ``mailbox_not_found``;
  ``ErrorItemNotFound`` or ``ErrorInvalidIdMalformed`` for a message: ``message_not_found``, for a folder
  (``archive`` is not in every mailbox): ``folder_not_found``.
* 403 ``ErrorAccessDenied`` naming the tenant's application access policy (Exchange's own scope for the
  app): ``mailbox_out_of_scope``; any other 403 (no ``Mail.Read`` consent): ``permission_not_granted``.
* 429 ``ApplicationThrottled`` (``MailboxConcurrency``, ``MailboxRequests``): retried by the Graph client
  within its budget, honouring ``Retry-After``, then 503 ``upstream_throttled`` with ``Retry-After``.

A message body is requested as text (``Prefer: outlook.body-content-type="text"``); a body Graph still
answers in HTML is refused (502), never passed on.
"""

from __future__ import annotations

from typing import Any

from shared.core.errors import (
    GraphFunctionsError,
    InvalidCursor,
    MailboxOutOfScope,
    NotFound,
    PermissionNotGranted,
    UpstreamError,
)
from shared.core.records import Record
from shared.graph.client import GraphClient
from shared.mail.query import (
    MESSAGE_FIELDS,
    ListMessagesQuery,
    decode_messages_cursor,
    encode_messages_cursor,
    first_page_params,
    link_query,
    message_path,
    messages_path,
)

PREFER_TEXT_BODY = 'outlook.body-content-type="text"'
#: Words of Exchange Online's refusal under an application access policy / RBAC for Applications scope.
_POLICY_MARKERS = ("accesspolicy", "[raop]", "management scope")
_NO_USER = frozenset({"ErrorInvalidUser", "Request_ResourceNotFound", "ResourceNotFound"})
_NO_ITEM = frozenset({"ErrorItemNotFound", "ErrorInvalidIdMalformed"})

EXCHANGE_SCOPE_HINT = (
    "Exchange Online refused the app this mailbox: the tenant's application access policy or RBAC for "
    "Applications management scope does not include it. An Exchange administrator can add the mailbox's "
    "owner to the policy's group (see docs/mail-access.md)."
)
CONSENT_HINT = (
    "Microsoft Graph refused the app access to mail: grant the app registration the application permission "
    "Mail.Read and give admin consent (Entra admin center > App registrations > API permissions, or "
    "/auth/admin-consent)."
)


class MessagesPage(Record):
    """One page of messages (API shape) and the cursor of the next page, if any."""

    items: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        return {"value": self.items, "nextCursor": self.next_cursor}


def _address(value: Any) -> dict[str, str | None]:
    """Graph's ``{"emailAddress": {"name", "address"}}`` as ``{"name", "address"}``."""
    inner = value.get("emailAddress") if isinstance(value, dict) else None
    inner = inner if isinstance(inner, dict) else {}
    name, address = inner.get("name"), inner.get("address")
    return {
        "name": name if isinstance(name, str) else None,
        "address": address if isinstance(address, str) else None,
    }


def _recipients(value: Any) -> list[dict[str, str | None]]:
    return [_address(item) for item in value] if isinstance(value, list) else []


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _summary(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": _string(item.get("id")),
        "subject": _string(item.get("subject")),
        "from": _address(item.get("from")) if item.get("from") is not None else None,
        "toRecipients": _recipients(item.get("toRecipients")),
        "receivedDateTime": _string(item.get("receivedDateTime")),
        "bodyPreview": _string(item.get("bodyPreview")),
        "isRead": item.get("isRead") is True,
        "hasAttachments": item.get("hasAttachments") is True,
        "importance": _string(item.get("importance")),
        "webLink": _string(item.get("webLink")),
    }


def summary_of(item: dict[str, Any]) -> dict[str, Any]:
    """A Graph message resource (e.g. a rich notification's decrypted content) in the API's summary shape."""
    return _summary(item)


def _message(item: dict[str, Any]) -> dict[str, Any]:
    body = item.get("body")
    body = body if isinstance(body, dict) else {}
    content_type = str(body.get("contentType") or "text").lower()
    if content_type != "text":
        raise UpstreamError("Microsoft Graph answered the message body as HTML despite the text preference")
    summary = _summary(item)
    del summary["bodyPreview"]
    return {
        **summary,
        "ccRecipients": _recipients(item.get("ccRecipients")),
        "body": _string(body.get("content")),
    }


def translate(error: GraphFunctionsError, *, item: str | None = None) -> GraphFunctionsError:
    """The API's error for a Graph failure of a mail request (module docstring); ``item`` names what a
    404 ``ErrorItemNotFound`` is about (``"message"`` or ``"folder"``)."""
    ids: dict[str, Any] = {"graph_code": error.graph_code, "graph_request_id": error.graph_request_id}
    if isinstance(error, NotFound):
        if error.graph_code == "MailboxNotEnabledForRESTAPI":
            return NotFound(
                "This user has no mailbox Microsoft Graph can read (a guest, an unlicensed user, or a "
                "mailbox that is inactive, soft-deleted or on-premises)",
                code="mailbox_not_found",
                **ids,
            )
        if error.graph_code in _NO_ITEM and item == "folder":
            return NotFound("This mailbox has no such folder", code="folder_not_found", **ids)
        if error.graph_code in _NO_ITEM and item == "message":
            return NotFound("This mailbox has no message with this id", code="message_not_found", **ids)
        return NotFound("No user has this id or userPrincipalName", code="user_not_found", **ids)
    if error.code == "upstream_forbidden":
        message = (error.graph_message or "").lower()
        if any(marker in message for marker in _POLICY_MARKERS):
            return MailboxOutOfScope(EXCHANGE_SCOPE_HINT, **ids)
        return PermissionNotGranted(CONSENT_HINT, **ids)
    if error.code == "invalid_parameter" and error.graph_code in _NO_ITEM and item == "message":
        return NotFound("This mailbox has no message with this id", code="message_not_found", **ids)
    return error


class MailService:
    """Reads mailboxes through Graph (application permission ``Mail.Read``). Thread-safe."""

    def __init__(self, graph: GraphClient) -> None:
        self._graph = graph

    def list_messages(self, query: ListMessagesQuery) -> MessagesPage:
        """One page of ``query.mailbox``'s messages, newest first (``receivedDateTime desc``).

        Raises:
            NotFound: ``user_not_found``, ``mailbox_not_found``, ``folder_not_found``.
            MailboxOutOfScope: Exchange's access policy refuses the app this mailbox.
            PermissionNotGranted: Graph refuses the app mail access.
            InvalidCursor, BadRequest: a cursor that is not ours, stale, or with differing parameters.
            UpstreamThrottled, UpstreamError, CredentialUnavailable, ConfigurationError: see GraphClient.
        """
        try:
            if query.cursor is not None:
                link = decode_messages_cursor(query, is_graph_url=self._graph.is_graph_url)
                try:
                    body = self._graph.get_json(link, client_input=True)
                except GraphFunctionsError as exc:
                    if exc.code == "invalid_parameter":  # a page Graph no longer has
                        raise InvalidCursor(
                            "cursor is no longer valid: start again from the first page",
                            graph_code=exc.graph_code,
                            graph_request_id=exc.graph_request_id,
                        ) from exc
                    raise
            else:
                body = self._graph.get_json(
                    messages_path(query.mailbox, query.folder),
                    params=first_page_params(query.top),
                    client_input=True,
                )
        except InvalidCursor:
            raise
        except GraphFunctionsError as exc:
            raise translate(exc, item="folder") from exc
        items = body.get("value")
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise UpstreamError("Microsoft Graph returned a collection without a 'value' list")
        next_link = body.get("@odata.nextLink")
        next_cursor = None
        if isinstance(next_link, str) and next_link:
            if (
                not self._graph.is_graph_url(next_link)
                or link_query(next_link, mailbox=query.mailbox) is None
            ):
                raise UpstreamError("Microsoft Graph returned a next link outside this mailbox's messages")
            next_cursor = encode_messages_cursor(next_link)
        return MessagesPage(items=[_summary(item) for item in items], next_cursor=next_cursor)

    def get_message(self, mailbox: str, message_id: str) -> dict[str, Any]:
        """One message of ``mailbox`` with its body as text (``Prefer: outlook.body-content-type="text"``).

        Raises:
            NotFound: ``user_not_found``, ``mailbox_not_found``, ``message_not_found``.
            MailboxOutOfScope, PermissionNotGranted, UpstreamError (an HTML body), and see GraphClient.
        """
        try:
            body = self._graph.get_json(
                message_path(mailbox, message_id),
                params={"$select": ",".join(MESSAGE_FIELDS)},
                client_input=True,
                prefer=PREFER_TEXT_BODY,
            )
        except GraphFunctionsError as exc:
            raise translate(exc, item="message") from exc
        return _message(body)
