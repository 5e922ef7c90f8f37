"""Queue triggers run by a real devhost process against real Azurite (tests/devhost/queue_app)."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from devhost.azurite import Azurite
from tests.devhost.fixtures import DevHostProcess, wait_until
from tests.devhost.queue_fixtures import (
    base64_queue,
    decoded,
    delete_app_queues,
    peek_texts,
    raw_queue,
    records,
    safe_peek,
    start_queue_host,
)
from tests.support.ports import free_port_range

TIMEOUT = 20


@pytest.fixture(scope="module")
def queue_host(
    azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[DevHostProcess, Path, str]]:
    queue = f"echo-{uuid.uuid4().hex[:12]}"
    delete_app_queues(azurite.connection_string)
    host, out = start_queue_host(
        tmp_path_factory.mktemp("queue_host"), azurite.connection_string, env={"FIXTURE_QUEUE": queue}
    )
    try:
        yield host, out, queue
    finally:
        assert host.stop() == 0
        delete_app_queues(azurite.connection_string)


def test_a_message_is_processed_once_and_deleted(
    azurite: Azurite, queue_host: tuple[DevHostProcess, Path, str]
) -> None:
    host, out, queue = queue_host
    client = base64_queue(azurite.connection_string, queue)  # %FIXTURE_QUEUE% resolved by devhost
    sent = client.send_message(b'{"report": "2026-12-01"}')
    wait_until(lambda: len(records(out, "echo")) == 1, TIMEOUT, "the echo function to run")
    (run,) = records(out, "echo")
    assert run["id"] == sent.id
    assert run["body"] == '{"report": "2026-12-01"}'  # base64-decoded, the host's default encoding
    assert run["dequeue_count"] == 1
    assert run["pop_receipt"] is True
    inserted = dt.datetime.fromisoformat(run["insertion_time"])
    assert dt.datetime.fromisoformat(run["expiration_time"]) - inserted == dt.timedelta(days=7)
    # Received invisible for the host's 10 minutes while the function runs.
    assert dt.timedelta(minutes=9) < dt.datetime.fromisoformat(run["time_next_visible"]) - inserted
    wait_until(lambda: client.get_queue_properties().approximate_message_count == 0, TIMEOUT, "the delete")
    # Still exactly one run: the message was deleted, not redelivered.
    assert len(records(out, "echo")) == 1
    assert f"echo: queueTrigger '{queue}' (AzureWebJobsStorage (connection string))" in host.log()
    assert "Reason='New queue message detected on" in host.log()


def test_an_always_failing_function_lands_in_poison_after_max_dequeue_count(
    azurite: Azurite, queue_host: tuple[DevHostProcess, Path, str]
) -> None:
    host, out, _ = queue_host
    client = base64_queue(azurite.connection_string, "always-fails")
    poison = raw_queue(azurite.connection_string, "always-fails-poison")
    with pytest.raises(ResourceNotFoundError):
        poison.get_queue_properties()  # devhost creates it when the first message arrives
    sent = client.send_message(b"doomed")
    wait_until(lambda: bool(safe_peek(poison)), TIMEOUT, "the message in always-fails-poison")
    attempts = records(out, "always_fails")
    assert [a["dequeue_count"] for a in attempts] == [1, 2, 3, 4, 5]  # maxDequeueCount, the default 5
    assert {a["id"] for a in attempts} == {sent.id}
    assert [decoded(text) for text in peek_texts(poison)] == ["doomed"]  # the same text, still base64
    # The host copies the message to the poison queue, then deletes the original: the delete may land just
    # after the copy is visible.
    wait_until(
        lambda: client.get_queue_properties().approximate_message_count == 0, TIMEOUT, "the original's delete"
    )
    # host.json visibilityTimeout (1 s) separates the retries.
    times = [a["at"] for a in attempts]
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(times))
    assert (
        "Message has reached MaxDequeueCount of 5. Moving message to queue 'always-fails-poison'."
        in host.log()
    )
    assert "fixture queue failure" in host.log()  # the exception is logged; the host runs on
    assert requests.get(host.url("/admin/host/status"), timeout=TIMEOUT).status_code == 200


def test_invalid_base64_goes_straight_to_poison_unchanged(
    azurite: Azurite, queue_host: tuple[DevHostProcess, Path, str]
) -> None:
    host, out, queue = queue_host
    with contextlib.suppress(ResourceExistsError):
        base64_queue(azurite.connection_string, queue)  # created (when this test runs alone)
    raw = raw_queue(azurite.connection_string, queue)
    poison = raw_queue(azurite.connection_string, f"{queue}-poison")
    before = len(records(out, "echo"))
    raw.send_message("this is not base64!")
    wait_until(lambda: bool(safe_peek(poison)), TIMEOUT, "the undecodable message in the poison queue")
    assert peek_texts(poison) == ["this is not base64!"]
    assert len(records(out, "echo")) == before  # the function never saw it
    assert "Message decoding has failed! Check MessageEncoding settings." in host.log()


def test_concurrency_is_bounded_by_batch_size_and_new_batch_threshold(
    azurite: Azurite, queue_host: tuple[DevHostProcess, Path, str]
) -> None:
    _, out, _ = queue_host
    client = base64_queue(azurite.connection_string, "slow-work")
    # Short and long jobs alternate, so that a slot frees while the batch's other message still runs.
    bodies = [f"job {number} {0.2 if number % 2 else 0.8}" for number in range(9)]
    for body in bodies:
        client.send_message(body.encode())
    wait_until(lambda: len(records(out, "slow")) == 9, 30, "the nine slow messages")
    runs = records(out, "slow")
    assert sorted(r["body"] for r in runs) == sorted(bodies)
    # batchSize 2 + newBatchThreshold 1 (host.json): never more than 3 at once, and 3 is reached.
    assert max(r["running"] for r in runs) == 3


def test_a_str_parameter_gets_the_body_in_an_async_function(
    azurite: Azurite, queue_host: tuple[DevHostProcess, Path, str]
) -> None:
    _, out, _ = queue_host
    base64_queue(azurite.connection_string, "async-text").send_message("héllo".encode())
    wait_until(lambda: len(records(out, "async_text")) == 1, TIMEOUT, "async_text to run")
    (run,) = records(out, "async_text")
    assert (run["body"], run["type"]) == ("héllo", "str")


def test_function_timeout_counts_as_a_failure_and_the_message_is_retried(
    azurite: Azurite, queue_host: tuple[DevHostProcess, Path, str]
) -> None:
    host, out, _ = queue_host
    client = base64_queue(azurite.connection_string, "hangs")
    client.send_message(b"slow once")
    wait_until(lambda: len(records(out, "hangs")) == 2, TIMEOUT, "the retry after the timeout")
    assert [r["dequeue_count"] for r in records(out, "hangs")] == [1, 2]
    assert "Timeout value of 00:00:03 exceeded by function 'Functions.hangs'" in host.log()
    wait_until(lambda: client.get_queue_properties().approximate_message_count == 0, TIMEOUT, "the delete")


def test_unresolvable_queue_names_and_connections_put_only_that_function_in_error(
    queue_host: tuple[DevHostProcess, Path, str],
) -> None:
    host, _, _ = queue_host
    errors = requests.get(host.url("/admin/host/status"), timeout=TIMEOUT).json()["errors"]
    assert "unresolved: '%FIXTURE_MISSING_SETTING%' does not resolve to a value" in errors
    assert any(
        e.startswith("no_account: Storage account connection string 'AzureWebJobsFIXTURE_NO_SUCH_CONNECTION'")
        for e in errors
    )
    assert len(errors) == 2


def test_polling_survives_azurite_restarting(tmp_path: Path) -> None:
    base = free_port_range(3)
    storage = Azurite(in_memory=True, blob_port=base, queue_port=base + 1, table_port=base + 2)
    storage.start()
    host, out = start_queue_host(tmp_path, storage.connection_string, env={"FIXTURE_QUEUE": "restart"})
    try:
        client = base64_queue(storage.connection_string, "restart")
        client.send_message(b"before")
        wait_until(lambda: len(records(out, "echo")) == 1, TIMEOUT, "the first message")
        storage.stop()
        wait_until(lambda: "cannot poll queue 'restart' (" in host.log(), TIMEOUT, "the outage to be logged")
        storage.start()  # in memory: the queue is gone, as after losing the account
        client = base64_queue(storage.connection_string, "restart")
        client.send_message(b"after")
        wait_until(lambda: len(records(out, "echo")) == 2, TIMEOUT, "the message sent after the restart")
        assert [r["body"] for r in records(out, "echo")] == ["before", "after"]
        assert "polling queue 'restart' again" in host.log()
        # One warning per outage, not one per poll.
        assert host.log().count("cannot poll queue 'restart' (ServiceRequestError") <= 1
    finally:
        assert host.stop() == 0
        storage.stop()
