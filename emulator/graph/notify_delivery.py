"""Delivering change notifications: queue, batches, the 3 s reply rule, retries, slow/drop endpoints, outage.

* :func:`enqueue` takes one notification item. In outage mode it is lost (logged ``lost``); for an endpoint in
  the "drop" state it is dropped (``dropped``), in the "slow" state it is delayed 10 s (``delayed``).
* :func:`dispatch_due` takes what is due by the tenant's clock, shuffles it (Graph promises no order), groups
  it per URL into ``{"value": [...]}`` POSTs (with ``validationTokens`` when rich items are in it) and sends
  them concurrently. A 2xx within the reply deadline delivers; anything else is retried with exponential
  back-off (``retry_base_seconds`` doubling, capped) until 4 hours after the first attempt, then discarded.
  Items of a subscription waiting for reauthorization are held (and discarded after the same 4 hours).
* Every reply feeds the endpoint's 10-minute window: over the deadline counts as slow; more than 10 % slow
  makes the endpoint "slow", more than 15 % makes it "drop" for 10 minutes (and, if enabled, Outlook
  subscriptions on it get a ``missed`` lifecycle event).
* A background task (started with the first subscription) runs :func:`dispatch_due` every ``tick_ms`` while
  ``auto_deliver`` is on and delivers sendMail's pending copies; :func:`flush` does one full round now and
  waits for every POST in flight (the control API's ``POST /graph/notifications/flush``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from emulator.clock import CLOCK
from emulator.graph.notify_crypto import validation_token
from emulator.graph.notify_store import EndpointHealth, NotifyStore, Pending, Subscription, notify_store
from emulator.graph.webhook_client import WebhookClient
from emulator.state import EmulatorState

log = logging.getLogger("emulator.graph.notify")


def webhook_client(state: EmulatorState) -> WebhookClient:
    client = state.stores.get("graph.webhook_client")
    if not isinstance(client, WebhookClient):
        client = WebhookClient(str(state.tls.bundle))
        state.stores["graph.webhook_client"] = client
    return client


def endpoint_key(url: str) -> str:
    """What the slow/drop rule counts per: the URL without its query. [INFERRED]"""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}".lower()


def summary(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "subscriptionId": item.get("subscriptionId"),
        "changeType": item.get("changeType"),
        "lifecycleEvent": item.get("lifecycleEvent"),
        "resource": item.get("resource"),
    }


def endpoint_status(store: NotifyStore, url: str, now: float) -> str:
    """``ok``, ``slow`` or ``drop`` for new notifications to ``url``."""
    s = store.settings
    health = store.health.get(endpoint_key(url))
    if health is None:
        return "ok"
    if now < health.drop_until:
        return "drop"
    health.prune(now, s.slow_window_seconds)
    n = len(health.samples)
    if n and n >= s.slow_min_sample and sum(1 for _, slow in health.samples if slow) / n > s.slow_fraction:
        return "slow"
    return "ok"


def challenge(state: EmulatorState, store: NotifyStore, now: float) -> None:
    """The scheduled ``reauthorizationRequired`` (setting ``reauthorization_before_expiry_minutes``)."""
    lead = store.settings.reauthorization_before_expiry_minutes * 60
    if lead <= 0:
        return
    from emulator.graph.notify_events import fire_lifecycle

    for sub in list(store.subscriptions.values()):
        if sub.expiration - lead <= now < sub.expiration and sub.challenged_for != sub.expiration:
            sub.challenged_for = sub.expiration
            fire_lifecycle(state, sub, "reauthorizationRequired")


def sweep(store: NotifyStore) -> None:
    """Graph deletes expired subscriptions; their queued items go with them."""
    now = CLOCK.time()
    expired = [sid for sid, sub in store.subscriptions.items() if sub.expiration <= now]
    for sid in expired:
        del store.subscriptions[sid]
        store.record({"event": "expired", "subscriptionId": sid})
    if expired:
        gone = set(expired)
        for p in store.queue:
            if p.sub_id in gone and p.kind == "change":
                store.record(
                    {"event": "discarded", "reason": "subscription expired", "url": p.url, **summary(p.item)}
                )
        store.queue = [p for p in store.queue if p.sub_id not in gone or p.kind == "lifecycle"]


def enqueue(state: EmulatorState, sub: Subscription, item: dict[str, Any], kind: str = "change") -> None:
    """Queue one item for ``sub``: a change to its notificationUrl, a lifecycle event to its lifecycle URL."""
    store = notify_store(state)
    s = store.settings
    url = sub.notification_url if kind == "change" else sub.lifecycle_url
    if url is None:
        return
    now = CLOCK.time()
    base = {"subscriptionId": sub.id, "url": url, "kind": kind, **summary(item)}
    if store.outage and (kind == "change" or store.outage_lifecycle):
        store.record({"event": "lost", **base})
        if kind == "change":
            store.outage_lost.add(sub.id)
        return
    due = now + s.delivery_delay_ms / 1000
    if kind == "change":
        status = endpoint_status(store, url, now)
        if status == "drop":
            store.record({"event": "dropped", **base})
            return
        if status == "slow":
            due += s.slow_delay_seconds
            store.record({"event": "delayed", "seconds": s.slow_delay_seconds, **base})
    rich = sub.include_resource_data
    app = sub.notification_url_app_id or sub.app_id
    pending = Pending(url, sub.id, item, kind, now, due, app, sub.tenant_id, rich)
    store.queue.append(pending)
    if kind == "change" and s.duplicate_rate > 0 and store.rng.random() < s.duplicate_rate:
        store.queue.append(Pending(url, sub.id, dict(item), kind, now, due, app, sub.tenant_id, rich))


def _record_reply(state: EmulatorState, store: NotifyStore, url: str, slow: bool, now: float) -> None:
    s = store.settings
    key = endpoint_key(url)
    health = store.health.setdefault(key, EndpointHealth())
    health.prune(now, s.slow_window_seconds)
    health.samples.append((now, slow))
    n = len(health.samples)
    fraction = sum(1 for _, x in health.samples if x) / n
    if n >= s.slow_min_sample and fraction > s.drop_fraction and now >= health.drop_until:
        health.drop_until = now + s.drop_seconds
        health.samples.clear()  # counters start afresh once the drop period ends
        store.record(
            {"event": "endpointDropping", "url": key, "until": health.drop_until, "fraction": fraction}
        )
        if s.missed_on_drop:
            from emulator.graph.notify_events import lifecycle_item

            for sub in list(store.subscriptions.values()):
                if sub.is_outlook and sub.lifecycle_url and endpoint_key(sub.notification_url) == key:
                    enqueue(state, sub, lifecycle_item(store, sub, "missed"), "lifecycle")


def _requeue(store: NotifyStore, p: Pending, now: float) -> str:
    s = store.settings
    p.attempts += 1
    delay = min(s.retry_base_seconds * 2 ** (p.attempts - 1), s.retry_max_interval_seconds)
    if now + delay > p.first + s.retry_window_seconds:
        store.record({"event": "discarded", "reason": "retry window over", "url": p.url, **summary(p.item)})
        return "discarded"
    p.due = now + delay
    store.queue.append(p)
    return "retry"


async def _post(state: EmulatorState, store: NotifyStore, url: str, batch: list[Pending]) -> None:
    s = store.settings
    body: dict[str, Any] = {"value": [p.item for p in batch]}
    pairs = sorted({(p.app_id, p.tenant_id) for p in batch if p.rich})
    if pairs:
        body["validationTokens"] = [validation_token(state.tokens, app, tenant) for app, tenant in pairs]
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    deadline = s.reply_deadline_ms / 1000
    reply = await webhook_client(state).post(url, raw, "application/json; charset=utf-8", deadline)
    now = CLOCK.time()
    if store is not notify_store(state) or not batch:
        return
    _record_reply(state, store, url, reply.error == "timeout", now)
    delivered = reply.status is not None and 200 <= reply.status < 300
    outcomes = []
    for p in batch:
        if delivered:
            sub = store.subscriptions.get(p.sub_id)
            if sub is not None:
                sub.last_notification = now
            outcomes.append("delivered")
        else:
            outcomes.append(_requeue(store, p, now))
    store.record(
        {
            "event": "attempt",
            "url": url,
            "status": reply.status,
            "error": reply.error,
            "ms": round(reply.elapsed * 1000, 1),
            "outcome": "delivered" if delivered else "failed",
            "items": [
                {**summary(p.item), "attempt": p.attempts + (1 if delivered else 0), "next": o}
                for p, o in zip(batch, outcomes, strict=True)
            ],
            "validationTokens": len(pairs),
        }
    )


def _spawn(store: NotifyStore, factory: Callable[[], Any]) -> asyncio.Task[Any]:
    task = asyncio.get_running_loop().create_task(factory())
    store.in_flight.add(task)
    task.add_done_callback(store.in_flight.discard)
    return task


def dispatch_due(state: EmulatorState) -> list[asyncio.Task[Any]]:
    """Send what is due now; returns the POST tasks started."""
    store = notify_store(state)
    sweep(store)
    challenge(state, store, CLOCK.time())
    now = CLOCK.time()  # after the challenges: what they queued is due in this round
    due: list[Pending] = []
    keep: list[Pending] = []
    for p in store.queue:
        sub = store.subscriptions.get(p.sub_id)
        if p.kind == "change" and sub is None:
            store.record(
                {"event": "discarded", "reason": "subscription deleted", "url": p.url, **summary(p.item)}
            )
            continue
        if p.kind == "change" and sub is not None and sub.reauthorization_required:
            if now > p.first + store.settings.retry_window_seconds:
                store.record(
                    {"event": "discarded", "reason": "not reauthorized", "url": p.url, **summary(p.item)}
                )
            else:
                keep.append(p)
            continue
        (due if p.due <= now else keep).append(p)
    store.queue = keep
    if not due:
        return []
    if store.settings.shuffle:
        store.rng.shuffle(due)
    by_url: dict[str, list[Pending]] = {}
    for p in due:
        by_url.setdefault(p.url, []).append(p)
    tasks = []
    size = max(1, store.settings.max_batch)
    for url, items in by_url.items():
        for i in range(0, len(items), size):
            chunk = items[i : i + size]
            tasks.append(_spawn(store, functools.partial(_post, state, store, url, chunk)))
    return tasks


async def flush(state: EmulatorState) -> list[dict[str, Any]]:
    """Deliver pending sendMail copies, send everything due and wait for every POST in flight; returns the
    log entries written meanwhile."""
    from emulator.graph.store import graph_store

    store = notify_store(state)
    start = store.log_seq
    graph_store(state).deliver_due_mail()
    for _ in range(20):
        dispatch_due(state)
        if not store.in_flight:
            break
        await asyncio.gather(*list(store.in_flight), return_exceptions=True)
    return [e for e in store.log if e["seq"] > start]


def ensure_running(state: EmulatorState) -> None:
    """Start the background delivery task (once per process; it survives resets)."""
    store = notify_store(state)
    task = state.stores.get("graph.notify_loop")
    if isinstance(task, asyncio.Task) and not task.done():
        return
    state.stores["graph.notify_loop"] = asyncio.get_running_loop().create_task(_run(state))
    del store  # the loop reads the current store on each tick


async def _run(state: EmulatorState) -> None:
    from emulator.graph.store import graph_store

    while True:
        store = notify_store(state)
        await asyncio.sleep(max(5, store.settings.tick_ms) / 1000)
        try:
            graph_store(state).deliver_due_mail()
            if store.settings.auto_deliver:
                dispatch_due(state)
            else:
                sweep(store)
                challenge(state, store, CLOCK.time())
        except Exception:  # the loop must outlive any one bad round
            log.exception("change-notification delivery round failed")
