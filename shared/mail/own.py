"""A person's own mailbox, read with their delegated Graph permission ``Mail.Read``
(``GET /api/me/messages``): no ``MAILBOX_SCOPE`` and no audit record, since nobody reads anyone else's
mail; Graph itself allows a delegated token only its own person's mailbox."""

from __future__ import annotations

from collections.abc import Mapping

from shared.graph.client import GraphClient
from shared.mail.messages import MailService, MessagesPage
from shared.mail.query import parse_list_query

#: The delegated Graph permission the read needs.
OWN_MAIL_PERMISSION = "Mail.Read"


def list_own_messages(graph: GraphClient, owner_id: str, params: Mapping[str, str]) -> MessagesPage:
    """One page of ``owner_id``'s messages, newest first, read with ``graph`` acting for that person.

    Query parameters as ``GET /api/users/{id}/messages``: top (1-50, default 10), folder, cursor.

    Raises:
        BadRequest, InvalidCursor: bad parameters or cursor.
        NotFound: ``mailbox_not_found`` (a guest or unlicensed person), ``folder_not_found``.
        and the Graph client's and the person's token source's errors.
    """
    return MailService(graph).list_messages(parse_list_query(owner_id, params))
