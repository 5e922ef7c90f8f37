"""Seeded mailboxes: deterministic from the seed and the user id, generated on first access."""

from __future__ import annotations

import datetime as dt
import random
import uuid

from emulator.clock import CLOCK
from emulator.directory.model import Directory, Mailbox, MailFolder, Message, Recipient, User

HOSTILE_SUBJECTS = [
    "<script>alert('subject')</script> Quarterly numbers",
    '"><img src=x onerror=alert(1)> Invoice #4411',
    "Réunion d'équipe — ordre du jour 📅",
    "Re: Fwd: 合同审核 (contract review)",
    "{{7*7}} ${jndi:ldap://127.0.0.1/a} template probe",
]
PLAIN_SUBJECTS = [
    "Weekly sync",
    "Expense report approved",
    "Welcome to the team!",
    "Your password expires soon",
    "Lunch on Friday?",
    "Build #1287 failed",
    "Board deck v3",
    "Holiday schedule",
    "Customer escalation: Fabrikam",
    "Invitation: design review",
]


def build_mailbox(seed: int, user: User, directory: Directory, now: dt.datetime | None = None) -> Mailbox:
    """The user's seeded mailbox: deterministic from the seed and the user id, newest message first."""
    rng = random.Random(f"{seed}:{user.id}")
    now = (now or CLOCK.now()).replace(microsecond=0)
    folders = {}
    for well_known, display in (
        ("inbox", "Inbox"),
        ("sentitems", "Sent Items"),
        ("drafts", "Drafts"),
        ("deleteditems", "Deleted Items"),
        ("archive", "Archive"),
    ):
        fid = "AAMkAG" + uuid.UUID(int=rng.getrandbits(128)).hex + "AAA="
        folders[fid] = MailFolder(fid, display, well_known)
    inbox = next(f for f in folders.values() if f.well_known_name == "inbox")
    others = [u for u in directory.users[:200] if u.mail and u.id != user.id] or [user]
    count = rng.randrange(18, 40)
    messages: list[Message] = []
    for i in range(count):
        hostile = i % 7 == 3
        subject = rng.choice(HOSTILE_SUBJECTS) if hostile else rng.choice(PLAIN_SUBJECTS)
        sender_user = rng.choice(others)
        sender = Recipient(sender_user.display_name, sender_user.mail or sender_user.user_principal_name)
        if i % 11 == 5:
            sender = Recipient('"><img src=x onerror=alert(document.cookie)>', "attacker@evil.example")
        html = rng.random() < 0.7
        body = (
            (
                f"<html><body><p>Bonjour {user.given_name or ''},</p><p>{subject} — voir ci-dessous.</p>"
                f"<script>steal()</script><p>Merci,<br>{sender.name}</p></body></html>"
            )
            if html
            else (f"Hello {user.given_name or ''},\n\n{subject}.\n\nRegards,\n{sender.name}")
        )
        received = now - dt.timedelta(minutes=rng.randrange(5, 60 * 24 * 60))
        messages.append(
            Message(
                id="AAMkAG" + uuid.UUID(int=rng.getrandbits(128)).hex + "BGAAA=",
                folder_id=inbox.id if rng.random() < 0.85 else rng.choice(list(folders)),
                subject=subject,
                body_content_type="html" if html else "text",
                body=body,
                sender=sender,
                to=[Recipient(user.display_name, user.mail or user.user_principal_name)],
                cc=[],
                received=received,
                has_attachments=rng.random() < 0.25,
                importance=rng.choice(["normal", "normal", "normal", "high", "low"]),
                is_read=rng.random() < 0.6,
                internet_message_id=f"<{uuid.UUID(int=rng.getrandbits(128)).hex}@contoso.onmicrosoft.com>",
                conversation_id="AAQkAG" + uuid.UUID(int=rng.getrandbits(128)).hex,
            )
        )
    messages.sort(key=lambda m: m.received, reverse=True)
    return Mailbox(folders=folders, messages=messages)
