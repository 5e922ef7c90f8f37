"""Microsoft Graph's subscription API, as the app uses it (``/v1.0/subscriptions``).

Application permissions: ``Mail.Read`` (the app's; Graph accepts a narrower one too) for the
inbox's messages (``users/{id}/mailFolders('inbox')/messages``), ``User.Read.All`` for ``users``.
Graph validates ``notificationUrl`` and ``lifecycleNotificationUrl`` (10 s handshake) before it
answers a create.

Lifetimes: Outlook messages allow 10,080 minutes in today's documentation, 4,230 in older versions, and a
live tenant was seen refusing more than 10,070; the app asks for :data:`MAIL_LIFETIME_MINUTES` (under
every value) and renews at half. Users allow 41,760 minutes. (Sources: ``../shared/reference/
change-notifications.md`` §1.3.)

Rich mail subscriptions (``includeResourceData``, §4): Outlook requires a ``$select`` on the resource
(the event's fields only; ``Body``/``UniqueBody`` are refused) and allows 1,440 minutes; the app asks for
:data:`RICH_MAIL_LIFETIME_MINUTES` (a margin for clock skew) and renews at half, like basic ones. The
certificate is rotated with ``PATCH`` (``encryptionCertificate`` + ``encryptionCertificateId``).
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from shared.core.errors import NotFound, UpstreamError
from shared.core.patterns import GUID_PATTERN
from shared.core.records import Record
from shared.graph.client import GraphClient

MAIL_LIFETIME_MINUTES = 4200
RICH_MAIL_LIFETIME_MINUTES = 1430
#: What a mail event needs of a message (shared.notifications.ingest.mail_event); ``id`` always comes.
RICH_MAIL_FIELDS = ("receivedDateTime", "from", "subject", "hasAttachments", "webLink")
USERS_LIFETIME_MINUTES = 41_000
MAIL_CHANGE_TYPE = "created"
USERS_CHANGE_TYPE = "updated,deleted"


def mailbox_resource(object_id: str) -> str:
    return f"users/{object_id}/mailFolders('inbox')/messages"


def rich_mailbox_resource(object_id: str) -> str:
    """The inbox's messages with the ``$select`` rich Outlook subscriptions require."""
    return f"{mailbox_resource(object_id)}?$select={','.join(RICH_MAIL_FIELDS)}"


def is_rich_resource(resource: str | None) -> bool:
    return resource is not None and "?$select=" in resource


class Encryption(Record):
    """What a rich subscription is created or rotated with: the certificate (base64 DER) and its id."""

    certificate: str
    certificate_id: str


def iso(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


class Created(Record):
    """A subscription Graph created (its id and expiry)."""

    subscription_id: str
    expires_at: datetime.datetime


def _expiry(body: dict[str, Any] | None, asked: datetime.datetime) -> datetime.datetime:
    value = (body or {}).get("expirationDateTime")
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
        except ValueError:
            pass
    return asked


class GraphSubscriptions:
    """Create, renew, reauthorize and delete subscriptions. Thread-safe."""

    def __init__(self, graph: GraphClient) -> None:
        self._graph = graph

    def create(
        self,
        *,
        resource: str,
        change_type: str,
        notification_url: str,
        lifecycle_url: str,
        expires_at: datetime.datetime,
        client_state: str,
        encryption: Encryption | None = None,
    ) -> Created:
        """``POST /subscriptions``.

        Raises:
            UpstreamError: Graph refused (validation failed, quota, permission), or the answer has no id.
            UpstreamThrottled, CredentialUnavailable, ...: see GraphClient.
        """
        request: dict[str, Any] = {
            "changeType": change_type,
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url,
            "resource": resource,
            "expirationDateTime": iso(expires_at),
            "clientState": client_state,
            "latestSupportedTlsVersion": "v1_2",
        }
        if encryption is not None:
            request["includeResourceData"] = True
            request["encryptionCertificate"] = encryption.certificate
            request["encryptionCertificateId"] = encryption.certificate_id
        try:
            body = self._graph.post_json("subscriptions", request)
        except UpstreamError as error:
            # 409: this app already holds one for the resource (a row lost, or a create whose answer was
            # lost). Its client state cannot be known again: delete it and create a new one, once.
            found = (
                re.search(GUID_PATTERN, error.graph_message or "") if "HTTP 409" in error.message else None
            )
            if found is None:
                raise
            self.delete(found.group(0))
            body = self._graph.post_json("subscriptions", request)
        subscription_id = (body or {}).get("id")
        if not isinstance(subscription_id, str) or not subscription_id:
            raise UpstreamError("Microsoft Graph created a subscription without an id")
        return Created(subscription_id=subscription_id.lower(), expires_at=_expiry(body, expires_at))

    def live(self) -> set[str]:
        """The ids of the app's subscriptions Graph holds now (``GET /subscriptions``, every page): one
        missing from it was removed or expired and must be created again."""
        found: set[str] = set()
        for page in self._graph.iter_pages("subscriptions"):
            for item in page.items:
                value = item.get("id")
                if isinstance(value, str) and value:
                    found.add(value.lower())
        return found

    def renew(self, subscription_id: str, expires_at: datetime.datetime) -> datetime.datetime:
        """``PATCH /subscriptions/{id}`` with a new expiry (also reauthorizes). The expiry Graph set.

        Raises:
            NotFound: Graph deleted it (expired or removed): create a new one.
        """
        body = self._graph.patch_json(
            f"subscriptions/{subscription_id}", {"expirationDateTime": iso(expires_at)}
        )
        return _expiry(body, expires_at)

    def rotate(
        self, subscription_id: str, encryption: Encryption, expires_at: datetime.datetime
    ) -> datetime.datetime:
        """``PATCH /subscriptions/{id}`` with a new certificate and id (and a new expiry: Graph's PATCH needs
        ``expirationDateTime``). The expiry Graph set.

        Raises:
            NotFound: Graph deleted it: create a new one.
        """
        body = self._graph.patch_json(
            f"subscriptions/{subscription_id}",
            {
                "expirationDateTime": iso(expires_at),
                "encryptionCertificate": encryption.certificate,
                "encryptionCertificateId": encryption.certificate_id,
            },
        )
        return _expiry(body, expires_at)

    def reauthorize(self, subscription_id: str) -> None:
        """``POST /subscriptions/{id}/reauthorize`` (204).

        Raises:
            NotFound: Graph deleted it.
        """
        self._graph.post_json(f"subscriptions/{subscription_id}/reauthorize", {})

    def delete(self, subscription_id: str) -> None:
        """``DELETE /subscriptions/{id}``; one already gone is not an error."""
        try:
            self._graph.delete(f"subscriptions/{subscription_id}")
        except NotFound:
            return
