"""Mailbox reads end to end, for the API and the pages alike: who may read, which mailbox, the Graph read, and
one audit record for every attempt, allowed or denied.

Order of a read: the edge identifies the caller (an unidentified caller gets its 401 and no record: there is
no "who" to record, and anonymous requests must not be able to fill the table) and checks its role and kind
(``Mail.Read.All``), handing a refusal here rather than raising it, so that it is recorded with the caller's
validated identity; the path and query are validated; the mailbox's owner is resolved and must be in the app's
scope (:mod:`shared.mail.scope`); Graph is read (:mod:`shared.mail.messages`). Whatever happened is then
recorded (:mod:`shared.mail.audit`) **before** the answer leaves: a record that cannot be written turns the
answer into a 503 ``audit_unavailable``, so no mail is ever served unaudited. The record names the mailbox as
typed and, once the scope check resolved it, its owner's object id and UPN at read time, so an auditor finds
every read of a person's mail whichever form (or former UPN) the caller used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from shared.core.errors import GraphFunctionsError, NotFound
from shared.identity.principal import Principal
from shared.mail.audit import AuditEntry, AuditStore
from shared.mail.messages import MailService, MessagesPage, summary_of
from shared.mail.query import (
    FOLDERS,
    parse_get_query,
    parse_list_query,
    validate_mailbox,
    validate_message_id,
)
from shared.mail.scope import MailboxOwner, MailboxScope

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
LIST_ENDPOINT = "messages.list"
GET_ENDPOINT = "messages.get"
_UNPRINTABLE = r"[^\x21-\x7e]"


def recorded_mailbox(raw: str) -> str:
    """The mailbox as recorded: validated and lower-cased, or (for a refused id) the caller's text with
    every non-printable character replaced, at most 120 characters."""
    try:
        return validate_mailbox(raw)
    except GraphFunctionsError:
        return re.sub(_UNPRINTABLE, "?", raw)[:120]


class MailReads:
    """Scope check, Graph read and audit of every mailbox read (module docstring). Thread-safe."""

    def __init__(self, scope: MailboxScope, mail: MailService, audit: AuditStore) -> None:
        self._scope = scope
        self._mail = mail
        self._audit = audit

    def mailbox_owner_id(self, mailbox: str) -> str | None:
        """The object id of ``mailbox``'s owner (an object id or UPN), None when no user has it; for the
        audit listing's ``mailbox`` filter. Raises what the lookup raises (Graph unavailable: 503)."""
        try:
            return self._scope.owner(mailbox).object_id
        except NotFound:
            return None

    def list_messages(
        self,
        actor: Principal,
        mailbox: str,
        params: Mapping[str, str],
        *,
        request_id: str,
        refusal: GraphFunctionsError | None = None,
        channel: str = "api",
    ) -> MessagesPage:
        """A page of ``mailbox``'s messages for ``actor``, audited; raises what the read raised (or
        ``refusal``), or AuditUnavailable (503) when the record cannot be written."""
        raw_folder = params.get("folder", "").strip().lower()
        folder = raw_folder if raw_folder in FOLDERS else None

        owners: list[MailboxOwner] = []

        def read() -> MessagesPage:
            query = parse_list_query(mailbox, params)
            self._scope.require(query.mailbox, owners.append)
            return self._mail.list_messages(query)

        return self._audited(
            read,
            owners,
            lambda page: len(page.items),
            actor=actor,
            mailbox=mailbox,
            endpoint=LIST_ENDPOINT,
            folder=folder,
            message_id=None,
            request_id=request_id,
            refusal=refusal,
            channel=channel,
        )

    def get_message(
        self,
        actor: Principal,
        mailbox: str,
        message_id: str,
        params: Mapping[str, str],
        *,
        request_id: str,
        refusal: GraphFunctionsError | None = None,
        channel: str = "api",
    ) -> dict[str, Any]:
        """One message of ``mailbox`` for ``actor``, its body as text, audited (see :meth:`list_messages`)."""

        owners: list[MailboxOwner] = []

        def read() -> dict[str, Any]:
            parse_get_query(params)
            owner = validate_mailbox(mailbox)
            checked_id = validate_message_id(message_id)
            self._scope.require(owner, owners.append)
            return self._mail.get_message(owner, checked_id)

        return self._audited(
            read,
            owners,
            lambda _: 1,
            actor=actor,
            mailbox=mailbox,
            endpoint=GET_ENDPOINT,
            folder=None,
            message_id=re.sub(_UNPRINTABLE, "?", message_id)[:520],
            request_id=request_id,
            refusal=refusal,
            channel=channel,
        )

    def accept_pushed(
        self,
        actor: Principal,
        mailbox: str,
        message_id: str,
        resource: dict[str, Any],
        *,
        request_id: str,
        channel: str,
    ) -> dict[str, Any]:
        """A message Graph pushed (a rich notification's decrypted ``resource``) taken as a read of it: the
        same mailbox scope check and audit record as :meth:`get_message`, without reading Graph. Returns the
        message in the API's summary shape; raises MailboxOutOfScope, NotFound (no such owner), ..."""
        owners: list[MailboxOwner] = []

        def read() -> dict[str, Any]:
            owner = validate_mailbox(mailbox)
            validate_message_id(message_id)
            self._scope.require(owner, owners.append)
            return summary_of(resource)

        return self._audited(
            read,
            owners,
            lambda _: 1,
            actor=actor,
            mailbox=mailbox,
            endpoint=GET_ENDPOINT,
            folder=None,
            message_id=re.sub(_UNPRINTABLE, "?", message_id)[:520],
            request_id=request_id,
            refusal=None,
            channel=channel,
        )

    def _audited(
        self,
        read: Callable[[], _T],
        owners: list[MailboxOwner],
        count: Callable[[_T], int],
        *,
        actor: Principal,
        mailbox: str,
        endpoint: str,
        folder: str | None,
        message_id: str | None,
        request_id: str,
        refusal: GraphFunctionsError | None,
        channel: str,
    ) -> _T:
        def entry(outcome: str, status: int, messages: int = 0, code: str | None = None) -> AuditEntry:
            owner = owners[0] if owners else None  # known once the scope check resolved it
            return AuditEntry(
                actor=actor,
                mailbox=recorded_mailbox(mailbox),
                owner=owner,
                endpoint=endpoint,
                outcome=outcome,
                status=status,
                request_id=request_id,
                message_count=messages,
                message_id=message_id,
                folder=folder,
                error_code=code,
                channel=channel,
            )

        try:
            if refusal is not None:
                raise refusal
            result = read()
        except GraphFunctionsError as error:
            outcome = "denied" if error.status in (401, 403) else "failed"
            self._audit.record(entry(outcome, error.status, code=error.code))
            raise
        except Exception:
            self._audit.record(entry("failed", 500, code="internal_error"))
            raise
        self._audit.record(entry("allowed", 200, messages=count(result)))
        return result
