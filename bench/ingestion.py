"""Exactly once at scale: 10,000 messages across 100 mailboxes, 10 % of worker runs failing, and a
10-minute notification outage (docs/change-notifications.md, "The guarantee").

One local tenant with 100 extra mailbox users in one scope group, one Azurite, devhost serving the app
over HTTPS (webhooks, the subscriptions timer) with its queue worker disabled
(``AzureWebJobs.mail_notification_worker.Disabled``): the benchmark runs the app's own worker
(:class:`shared.notifications.Worker`, built from the app's services with the host's settings) on
:data:`THREADS` threads as the queue trigger would (a message is deleted when its run returns, and comes
back after :data:`VISIBILITY` seconds when it raised), so that 10 % of the runs can be made to fail at a
random point:

* ``start``: before the run does anything;
* ``read``: the audited message read raises (Graph or the audit failing);
* ``send``: the event queue refuses the event;
* ``end``: after the run completed (a crash before the host deleted the message: it is delivered again).

Timeline: the timer subscribes the 100 mailboxes; 4,500 messages arrive; the tenant's notifications are
lost for 10 minutes of its clock (outage mode) while 1,000 more arrive; Graph's ``missed`` reaches each
subscription; 4,500 more arrive. Then every event is read from ``MAIL_EVENTS_QUEUE`` and counted: exactly
one per message (count, message ids, event ids), nothing lost, and the catch-up time (end of the outage to
the last lost message's event).

A second, small run injects crashes in the one window the guarantee leaves (after the event queue took the
event, before the ledger recorded it) and counts the copies: each carries the same ``eventId``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import os
import random
import signal
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from bench.common import azurite, local_tenant, machine, write_result
from bench.ingestion_webhook import app_runtime
from shared.app.services import Runtime
from shared.identity.principal import Principal
from shared.notifications import MailIngest, Worker
from tests.integration.ingestion_kit import IngestionHost, add_message, flush, subscriptions, wait_for

MAILBOXES = 100
#: The scale (``BENCH_INGESTION_MESSAGES``, default 10,000; a tenth of them arrive during the outage).
MESSAGES = int(os.environ.get("BENCH_INGESTION_MESSAGES", "10000"))
OUTAGE_MESSAGES = MESSAGES // 10
FAILING = 0.10
THREADS = 6
#: A run holds its message this long (the host: 10 minutes, renewed); a failed run's comes back after
#: RETRY_AFTER (the host: host.json visibilityTimeout).
VISIBILITY = 60
RETRY_AFTER = 2
OUTAGE_SECONDS = 600
POINTS = ("start", "read", "send", "end")


class CrashError(Exception):
    """A worker run made to fail on purpose."""


class ChaosWorker:
    """The app's worker over the work queue, 10 % of its runs failing at a random point."""

    def __init__(self, runtime: Runtime, queue_name: str, connection: str, *, window: bool = False) -> None:
        services = runtime.notifications()
        self._runtime = runtime
        self._point = threading.local()
        self._window = window
        ingest = MailIngest(services.ledger(), self._read, self._send)
        self._events = services.event_queue()
        self.worker = Worker(
            table=services.table(),
            ledger=services.ledger(),
            ingest=ingest,
            tools=services.tenant,
            send_work=services.work_queue().send,
            serves=services.serves,
        )
        self._queue = QueueClient.from_connection_string(connection, queue_name)
        self.runs = Counter[str]()
        self.stop = threading.Event()

    def _read(self, tenant_id: str, mailbox: str, message_id: str, *, channel: str, request_id: str) -> Any:
        if getattr(self._point, "value", None) == "read":
            raise CrashError("read")
        runtime = self._runtime
        me = Principal(
            kind="application",
            app_id=runtime.settings().client_id,
            object_id=None,
            tenant_id=tenant_id,
            roles=frozenset(),
        )
        reads = runtime.tenant(runtime.tenants().get(tenant_id)).mail_reads()
        return reads.get_message(me, mailbox, message_id, {}, request_id=request_id, channel=channel)

    def _send(self, body: bytes) -> None:
        point = getattr(self._point, "value", None)
        if point == "send":
            raise CrashError("send")
        self._events.send(body)
        if point == "window":
            raise CrashError("window")

    def run_one(self) -> bool:
        messages = list(
            self._queue.receive_messages(messages_per_page=1, visibility_timeout=VISIBILITY, max_messages=1)
        )
        if not messages:
            return False
        message = messages[0]
        failing = random.random() < FAILING  # noqa: S311 - chaos, not cryptography
        point = ("window" if self._window else random.choice(POINTS)) if failing else None  # noqa: S311
        self._point.value = point
        try:
            if point == "start":
                raise CrashError("start")
            self.worker.handle(base64.b64decode(message.content), request_id=str(message.id))
            if point == "end":
                raise CrashError("end")
        except Exception as error:  # a failed run: the message comes back after its visibility timeout
            self.runs[f"failed:{type(error).__name__}:{point}"] += 1
            with contextlib.suppress(HttpResponseError):
                self._queue.update_message(message, visibility_timeout=RETRY_AFTER)
            return True
        finally:
            self._point.value = None
        try:
            self._queue.delete_message(message)
        except HttpResponseError:  # the run outlived its hold and another took the message: it runs again
            self.runs["redelivered"] += 1
        self.runs["ok"] += 1
        return True

    def loop(self) -> None:
        while not self.stop.is_set():
            try:
                found = self.run_one()
            except ResourceNotFoundError:  # the queue is created by the first enqueue
                found = False
            if not found:
                time.sleep(0.05)

    def idle(self) -> bool:
        try:
            return self._queue.get_queue_properties().approximate_message_count == 0
        except ResourceNotFoundError:
            return True


def read_events(connection: str, name: str) -> list[dict[str, Any]]:
    queue = QueueClient.from_connection_string(connection, name)
    found: list[dict[str, Any]] = []
    while True:
        try:
            batch = list(
                queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=300)
            )
        except ResourceNotFoundError:
            return found
        if not batch:
            return found
        for message in batch:
            found.append(json.loads(base64.b64decode(message.content)))
            queue.delete_message(message)


def scope_group(host_tenant: Any) -> tuple[str, list[str]]:
    users = []
    for n in range(MAILBOXES):
        user = host_tenant.control(
            "POST", "/users", {"displayName": f"Box {n:03d}", "mailboxEnabled": True}, expect=201
        )
        users.append(str(user["userPrincipalName"]))
    group = host_tenant.control(
        "POST", "/groups", {"displayName": "Bench mailboxes", "members": users}, expect=201
    )
    return str(group["id"]), users


def add_all(tenant: Any, plan: list[str], added: dict[str, str]) -> None:
    def one(upn: str) -> None:
        added[add_message(tenant, upn, subject="bench")] = upn

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(one, plan))


def scenario(
    tenant: Any, storage: Any, work: Path, *, window: bool, messages: int, outage: int
) -> dict[str, Any]:
    tenant.reset()
    group, users = scope_group(tenant)
    workdir = work / ("host-window" if window else "host")
    host = IngestionHost(
        tenant,
        storage,
        workdir,
        overrides={"MAILBOX_SCOPE": group, "AzureWebJobs.mail_notification_worker.Disabled": "true"},
    )
    chaos = ChaosWorker(app_runtime(host, workdir), host.work_queue, storage.connection_string, window=window)
    threads = [threading.Thread(target=chaos.loop) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        host.run_timer()
        wait_for(
            lambda: (
                len([s for s in subscriptions(tenant) if host.https_url in s["notificationUrl"]]) > MAILBOXES
            ),
            "subscriptions",
            timeout=300,
        )
        wait_for(
            lambda: (
                all(t.get("LastCatchUp") for t in host.targets() if t["RowKey"] != "users") and chaos.idle()
            ),
            "first catch-ups",
            timeout=300,
        )
        plan = [users[n % MAILBOXES] for n in range(messages)]
        random.shuffle(plan)
        before, during, after = (
            plan[: (messages - outage) // 2],
            plan[(messages - outage) // 2 :][:outage],
            plan[(messages - outage) // 2 + outage :],
        )
        added: dict[str, str] = {}
        started = time.perf_counter()
        add_all(tenant, before, added)
        lost: dict[str, str] = {}
        if outage:
            tenant.control("PUT", "/graph/notifications/outage", {"enabled": True})
            add_all(tenant, during, lost)
            tenant.advance_clock(OUTAGE_SECONDS)
            flush(tenant)
            tenant.control("PUT", "/graph/notifications/outage", {"enabled": False})
            outage_end = time.perf_counter()
            for sub in subscriptions(tenant):
                if host.https_url in sub["notificationUrl"] and "/messages" in sub["resource"]:
                    tenant.control("POST", f"/graph/subscriptions/{sub['id']}/lifecycle", {"event": "missed"})
        add_all(tenant, after, added)
        added.update(lost)
        events: list[dict[str, Any]] = []
        caught_up_at: float | None = None

        def done() -> bool:
            nonlocal caught_up_at
            events.extend(read_events(storage.connection_string, host.events_queue))
            ids = {e["messageId"] for e in events}
            if outage and caught_up_at is None and set(lost) <= ids:
                caught_up_at = time.perf_counter()
            return set(added) <= ids and chaos.idle()

        wait_for(done, "every event", timeout=1800, every=1.0)
        time.sleep(RETRY_AFTER + 1)  # failed runs still invisible come back: they must add nothing
        wait_for(chaos.idle, "the work queue", timeout=120)
        events.extend(read_events(storage.connection_string, host.events_queue))
        elapsed = time.perf_counter() - started
    finally:
        chaos.stop.set()
        for thread in threads:
            thread.join()
        host.stop()
    per_message = Counter(e["messageId"] for e in events)
    per_event_id = Counter(e["eventId"] for e in events)
    failed = sum(n for k, n in chaos.runs.items() if k.startswith("failed"))
    result: dict[str, Any] = {
        "mailboxes": MAILBOXES,
        "messages": len(added),
        "events": len(events),
        "distinct_message_ids": len(per_message),
        "duplicates": sum(n - 1 for n in per_message.values() if n > 1),
        "lost": len(set(added) - set(per_message)),
        "unknown": len(set(per_message) - set(added)),
        "same_event_id_for_each_copy": len(per_event_id) == len(per_message),
        "worker_runs": dict(chaos.runs),
        "failed_run_share": round(failed / max(1, failed + chaos.runs["ok"]), 3),
        "seconds": round(elapsed, 1),
        "messages_per_second": round(len(added) / elapsed, 1),
        "channels": dict(Counter(e["channel"] for e in events)),
    }
    if outage:
        result["outage"] = {
            "tenant_clock_seconds": OUTAGE_SECONDS,
            "messages_during": len(lost),
            "caught_up_by_delta": sum(
                1 for e in events if e["messageId"] in lost and e["channel"] == "delta"
            ),
            "catch_up_seconds": round((caught_up_at or time.perf_counter()) - outage_end, 1),
        }
    result["exactly_once"] = (
        result["events"] == result["messages"] == result["distinct_message_ids"] and not result["lost"]
    )
    return result


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with azurite(work) as storage, local_tenant(work / "tenant", 20) as tenant:
            full = scenario(tenant, storage, work, window=False, messages=MESSAGES, outage=OUTAGE_MESSAGES)
            write_result("ingestion", {"machine": machine(), "exactly_once_at_scale": full, "partial": True})
            window = scenario(tenant, storage, work, window=True, messages=300, outage=0)
    return {
        "machine": machine(),
        # A shared machine: throughput and catch-up time depend on what else ran (1-minute load average).
        "load_average_at_end": os.getloadavg()[0],
        "exactly_once_at_scale": full,
        "crashes_in_the_window": window,
    }


if __name__ == "__main__":
    # SIGTERM (a timeout) unwinds like Ctrl+C, so the tenant, Azurite and devhost are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    result = main()
    print(write_result("ingestion", result))
    full, window = result["exactly_once_at_scale"], result["crashes_in_the_window"]
    catch_up = full.get("outage", {}).get("catch_up_seconds")
    print(
        f"{full['messages']} messages, {full['events']} events, exactly once: {full['exactly_once']}, "
        f"failed runs {full['failed_run_share']}, catch-up {catch_up} s, {full['messages_per_second']} "
        f"messages/s; window crashes: {window['duplicates']} copies, same event id: "
        f"{window['same_event_id_for_each_copy']}"
    )
