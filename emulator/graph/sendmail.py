"""``POST /users/{id|upn}/sendMail`` and ``/me/sendMail``: validate like Graph, deliver locally.

Delivery: every recipient (to, cc, bcc) whose address is a local user's mail or userPrincipalName and who has
a mailbox gets the message at the top of their Inbox; other addresses are accepted and dropped (no
non-delivery report). The sender gets a copy in Sent Items unless ``saveToSentItems`` is false (the JSON
boolean, or the string ``"false"`` that Graph's own sample sends). Delivery is asynchronous, as in Exchange:
the 202 means accepted, and the copies appear ``send_mail_delay_ms`` later (``GraphStore.pending_mail``,
run at the start of the first Graph request after they fall due).
"""

from __future__ import annotations

import bisect
import re
import uuid
from typing import Any

from starlette.responses import Response

from emulator.clock import CLOCK
from emulator.directory.model import Mailbox, Message, Recipient, User
from emulator.graph.http import Ctx, GraphError, read_json
from emulator.graph.mailbox import open_mailbox
from emulator.graph.notify_events import record_mail_change
from emulator.graph.store import graph_store
from emulator.tenants.registry import active, serving

MESSAGE_KEYS = frozenset(
    {
        "subject",
        "body",
        "toRecipients",
        "ccRecipients",
        "bccRecipients",
        "replyTo",
        "importance",
        "attachments",
        "from",
        "sender",
        "internetMessageHeaders",
        "categories",
        "isReadReceiptRequested",
        "isDeliveryReceiptRequested",
        "flag",
        "@odata.type",
    }
)
_ADDRESS = re.compile(r"[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+")


def _body_read(message: str) -> GraphError:
    return GraphError(400, "RequestBodyRead", message)


def _recipients(message: dict[str, Any], key: str) -> list[Recipient]:
    raw = message.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _body_read(
            f"Cannot read the value of '{key}': a collection of 'microsoft.graph.recipient' was expected."
        )
    out = []
    for item in raw:
        email = item.get("emailAddress") if isinstance(item, dict) else None
        address = email.get("address") if isinstance(email, dict) else None
        if not isinstance(address, str) or not _ADDRESS.fullmatch(address.strip()):
            shown = address if isinstance(address, str) else ""
            raise GraphError(
                400,
                "ErrorInvalidRecipients",
                f"At least one recipient isn't valid., Recipient "
                f"'{shown}' is not resolved. All recipients must be "
                "resolved before a message can be submitted.",
            )
        name = email.get("name") if isinstance(email.get("name"), str) else address.strip()
        out.append(Recipient(name, address.strip()))
    return out


def parse_send(data: Any) -> tuple[dict[str, Any], bool]:
    if not isinstance(data, dict):
        raise _body_read(
            "An unexpected 'StartArray' node was found when reading from the JSON reader. A "
            "'StartObject' node was expected."
        )
    for key in data:
        if key not in ("message", "saveToSentItems"):
            raise _body_read(
                f"The parameter '{key}' in the request payload is not a valid parameter for the "
                "operation 'sendMail'."
            )
    message = data.get("message")
    if not isinstance(message, dict):
        raise GraphError(400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.")
    for key in message:
        if key not in MESSAGE_KEYS:
            raise _body_read(
                f"The property '{key}' does not exist on type 'microsoft.graph.message'. Make sure to "
                "only use property names that are defined by the type or mark the type as open type."
            )
    save = data.get("saveToSentItems", True)
    if isinstance(save, str) and save.strip().lower() in ("true", "false"):
        # user-sendmail's own example sends "saveToSentItems": "false", and Graph honours it.
        save = save.strip().lower() == "true"
    if not isinstance(save, bool):
        raise _body_read(
            "Cannot convert a primitive value to the expected type 'Edm.Boolean'. See the inner "
            "exception for more details."
        )
    return message, save


def insert_message(box: Mailbox, message: Message) -> None:
    """Keep the mailbox newest-first."""
    keys = [-m.received.timestamp() for m in box.messages]
    box.messages.insert(bisect.bisect_left(keys, -message.received.timestamp()), message)


def _local(ctx: Ctx, address: str) -> User | None:
    directory = ctx.state.directory
    user = directory.user(address)
    if user is not None:
        return user
    wanted = address.casefold()
    return next((u for u in directory.users if u.mail and u.mail.casefold() == wanted), None)


async def send_mail(ctx: Ctx) -> Response:
    data = await read_json(ctx.request)
    message, save = parse_send(data)
    to, cc, bcc = (_recipients(message, k) for k in ("toRecipients", "ccRecipients", "bccRecipients"))
    if not (to or cc or bcc):
        raise GraphError(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        )
    body = message.get("body") or {}
    if not isinstance(body, dict):
        raise _body_read(
            "Cannot read the value of 'body': an object of type 'microsoft.graph.itemBody' was expected."
        )
    ctype = str(body.get("contentType", "text")).lower()
    if ctype not in ("text", "html"):
        raise _body_read(
            f"Cannot convert the literal '{body.get('contentType')}' to the expected type "
            "'microsoft.graph.bodyType'."
        )
    content = body.get("content", "")
    subject = message.get("subject") or ""
    importance = str(message.get("importance", "normal")).lower()
    if (
        not isinstance(content, str)
        or not isinstance(subject, str)
        or importance not in ("low", "normal", "high")
    ):
        raise _body_read("Cannot convert a value of the request payload to its expected type.")
    attachments = message.get("attachments") or []
    async with open_mailbox(ctx, "send") as acc:
        sender = Recipient(acc.user.display_name, acc.user.mail or acc.user.user_principal_name)
        sender_id = acc.user.id
        imid = f"<{uuid.uuid4().hex}@{ctx.state.directory.domain}>"
        conversation = "AAQkAG" + uuid.uuid4().hex
        recipients: list[str] = []
        for recipient in (*to, *cc, *bcc):
            user = _local(ctx, recipient.address)
            if user is not None and user.id not in recipients:
                recipients.append(user.id)
    state = ctx.state

    def copy(user_id: str, well_known: str, is_read: bool) -> None:
        user = state.directory.user(user_id)
        box = state.mailbox(user) if user is not None else None
        folder = box.folder(well_known) if box is not None else None
        if box is None or folder is None:
            return  # the mailbox went away before delivery
        message = Message(
            id="AAMkAG" + uuid.uuid4().hex + "BGAAA=",
            folder_id=folder.id,
            subject=subject,
            body_content_type=ctype,
            body=content,
            sender=sender,
            to=list(to),
            cc=list(cc),
            received=CLOCK.now().replace(microsecond=0),
            has_attachments=bool(attachments),
            importance=importance,
            is_read=is_read,
            internet_message_id=imid,
            conversation_id=conversation,
        )
        insert_message(box, message)
        record_mail_change(state, user_id, message, "created")  # change notifications, messages delta

    organization = active()  # delivered later, possibly during another organisation's request

    def deliver() -> None:
        with serving(organization):
            for user_id in recipients:
                copy(user_id, "inbox", False)
            if save:
                copy(sender_id, "sentitems", True)

    store = graph_store(state)
    delay = store.settings.send_mail_delay_ms
    if delay <= 0:
        deliver()
    else:
        store.pending_mail.append((store.clock() + delay / 1000, deliver))
    return Response(status_code=202)
