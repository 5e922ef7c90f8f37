"""Mail ingestion: Graph change notifications (webhook intake), the queue worker, subscriptions kept alive
by a timer, delta catch-up, exactly-once mail events, the directory reaction, and the operators' view.
See docs/change-notifications.md."""

from shared.notifications.catchup import CatchUp
from shared.notifications.client_state import ClientStates
from shared.notifications.directory import DirectoryReaction
from shared.notifications.ingest import MailIngest
from shared.notifications.intake import Intake, IntakeResult, RecentNotifications
from shared.notifications.keeper import SubscriptionKeeper
from shared.notifications.ledger import ClaimHeldError, Ledger
from shared.notifications.store import NotificationTable, Target
from shared.notifications.view import subscriptions_json, subscriptions_page
from shared.notifications.wire import validation_reply
from shared.notifications.worker import Worker

__all__ = [
    "CatchUp",
    "ClaimHeldError",
    "ClientStates",
    "DirectoryReaction",
    "Intake",
    "IntakeResult",
    "Ledger",
    "MailIngest",
    "NotificationTable",
    "RecentNotifications",
    "SubscriptionKeeper",
    "Target",
    "Worker",
    "subscriptions_json",
    "subscriptions_page",
    "validation_reply",
]
