"""Queue-trigger rules without processes: host.json options, back-off, poison names, connections, decoding."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest

from devhost.discovery import FunctionSpec, QueueSpec
from devhost.queue_connection import ConnectionSettingError, resolve_connection
from devhost.queue_messages import Backoff, decode_body
from devhost.queue_options import QueueOptions, QueueOptionsError, parse_queue_options
from devhost.queue_plan import plan_queues, poison_queue_name

HOST_JSON = Path("host.json")
PRODUCTION = {"AZURE_FUNCTIONS_ENVIRONMENT": "Production"}


def test_defaults_are_the_hosts() -> None:
    options = parse_queue_options(HOST_JSON, None, PRODUCTION, processor_count=1)
    assert options == QueueOptions(
        batch_size=16,
        new_batch_threshold=8,
        max_polling_interval=dt.timedelta(minutes=1),
        visibility_timeout=dt.timedelta(0),
        max_dequeue_count=5,
        message_encoding="base64",
    )


def test_the_options_in_effect_are_described_as_host_json_spells_them() -> None:
    options = QueueOptions(max_polling_interval=dt.timedelta(milliseconds=500))
    assert options.describe() == (
        "batchSize 16, newBatchThreshold 8, maxPollingInterval 00:00:00.500, visibilityTimeout 00:00:00, "
        "maxDequeueCount 5, messageEncoding base64"
    )


def test_development_polls_at_most_every_two_seconds_unless_configured() -> None:
    development = {"AZURE_FUNCTIONS_ENVIRONMENT": "Development"}
    assert parse_queue_options(HOST_JSON, {}, development).max_polling_interval == dt.timedelta(seconds=2)
    configured = parse_queue_options(HOST_JSON, {"maxPollingInterval": "00:00:10"}, development)
    assert configured.max_polling_interval == dt.timedelta(seconds=10)


def test_new_batch_threshold_scales_with_processors_except_on_consumption() -> None:
    assert parse_queue_options(HOST_JSON, {}, PRODUCTION, processor_count=4).new_batch_threshold == 32
    dynamic = {**PRODUCTION, "WEBSITE_SKU": "Dynamic"}
    assert parse_queue_options(HOST_JSON, {}, dynamic, processor_count=4).new_batch_threshold == 8
    small = parse_queue_options(HOST_JSON, {"batchSize": 1}, PRODUCTION, processor_count=4)
    assert small.new_batch_threshold == 0  # 1 // 2 * 4: one message at a time, as in the host
    explicit = parse_queue_options(HOST_JSON, {"newBatchThreshold": 0}, PRODUCTION, processor_count=4)
    assert explicit.new_batch_threshold == 0


def test_settings_are_read_case_insensitively() -> None:
    options = parse_queue_options(
        HOST_JSON,
        {"BatchSize": "4", "MAXDEQUEUECOUNT": 2, "visibilitytimeout": "00:00:30", "MessageEncoding": "None"},
        PRODUCTION,
    )
    assert (options.batch_size, options.max_dequeue_count) == (4, 2)
    assert options.visibility_timeout == dt.timedelta(seconds=30)
    assert options.message_encoding == "none"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"batchSize": 0}, "batchSize must be between 1 and 32"),
        ({"batchSize": 33}, "batchSize must be between 1 and 32"),
        ({"batchSize": True}, "batchSize must be an integer"),
        ({"newBatchThreshold": -1}, "newBatchThreshold must be at least 0"),
        ({"maxDequeueCount": 0}, "maxDequeueCount must be at least 1"),
        ({"maxPollingInterval": "00:00:00.050"}, "must not be less than 00:00:00.1"),
        ({"maxPollingInterval": "soon"}, "maxPollingInterval: 'soon' is not a TimeSpan"),
        ({"visibilityTimeout": 30}, None),  # a bare number is days, accepted as TimeSpan.Parse does
        ({"messageEncoding": "utf8"}, 'messageEncoding must be "base64" or "none"'),
        ([], "extensions.queues must be an object"),
    ],
)
def test_values_the_host_refuses_are_errors(raw: object, message: str | None) -> None:
    if message is None:
        assert parse_queue_options(HOST_JSON, raw, PRODUCTION).visibility_timeout == dt.timedelta(days=30)
        return
    with pytest.raises(QueueOptionsError, match=message):
        parse_queue_options(HOST_JSON, raw, PRODUCTION)


def test_a_polling_interval_in_days_gets_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="devhost"):
        options = parse_queue_options(HOST_JSON, {"maxPollingInterval": 2000}, PRODUCTION)
    assert options.max_polling_interval == dt.timedelta(days=2000)
    assert "A bare number is days" in caplog.text


def test_backoff_follows_the_hosts_randomized_exponential_strategy() -> None:
    middle = Backoff(dt.timedelta(milliseconds=100), dt.timedelta(seconds=1), rng=lambda: 0.5)
    delays = [round(middle.next_delay(False), 3) for _ in range(6)]
    assert delays == [0.2, 0.3, 0.5, 0.9, 1.0, 1.0]  # 100 ms + 100 ms * 2^(n-1), capped
    assert middle.next_delay(True) == pytest.approx(0.1)  # messages found: back to the minimum
    assert middle.next_delay(False) == pytest.approx(0.2)
    low = Backoff(dt.timedelta(milliseconds=100), dt.timedelta(seconds=1), rng=lambda: 0.0)
    high = Backoff(dt.timedelta(milliseconds=100), dt.timedelta(seconds=1), rng=lambda: 1.0)
    assert low.next_delay(False) == pytest.approx(0.18)  # randomization factor 0.2
    assert high.next_delay(False) == pytest.approx(0.22)


def test_poison_queue_names() -> None:
    assert poison_queue_name("reports") == "reports-poison"
    assert poison_queue_name("reports-poison") is None  # no poison queue for a poison queue
    assert poison_queue_name("q" * 57) is None  # "-poison" would pass 63 characters
    assert poison_queue_name("q" * 56) == "q" * 56 + "-poison"


def test_connections_resolve_as_in_the_host() -> None:
    development = resolve_connection(
        "AzureWebJobsStorage", {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}
    )
    assert development.connection_string is not None
    assert "QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1" in development.connection_string
    assert resolve_connection("", {"azurewebjobsstorage": "DefaultEndpointsProtocol=https;x"}).setting == (
        "AzureWebJobsStorage"
    )
    prefixed = resolve_connection("Reports", {"AzureWebJobsReports": "DefaultEndpointsProtocol=https;y"})
    assert prefixed.setting == "AzureWebJobsReports"
    identity = resolve_connection(
        "AzureWebJobsStorage",
        {"AzureWebJobsStorage__accountName": "contoso", "AzureWebJobsStorage__clientId": "client-1"},
    )
    assert (identity.account_url, identity.client_id) == (
        "https://contoso.queue.core.windows.net",
        "client-1",
    )
    explicit = resolve_connection(
        "Conn", {"Conn__queueServiceUri": "https://contoso.queue.core.windows.net/"}
    )
    assert explicit.account_url == "https://contoso.queue.core.windows.net"
    assert "identity" in explicit.description
    with pytest.raises(ConnectionSettingError, match="'AzureWebJobsMissing' does not exist"):
        resolve_connection("Missing", {"AzureWebJobsStorage": "x"})


def test_queue_names_resolve_settings_and_are_lower_cased() -> None:
    def spec(name: str, queue: str) -> FunctionSpec:
        return FunctionSpec(
            name=name,
            trigger_type="queueTrigger",
            trigger_arg="msg",
            user_function=lambda msg: None,
            is_async=False,
            wants_context=False,
            queue=QueueSpec(queue_name=queue, connection="AzureWebJobsStorage", parameter_type="message"),
        )

    environ = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "REPORT_QUEUE": "Report-Runs"}
    planned, errors = plan_queues(
        [spec("ok", "%REPORT_QUEUE%"), spec("bad", "no_underscores"), spec("unset", "%NOPE%")], environ
    )
    assert [(p.spec.name, p.queue_name, p.poison_name) for p in planned] == [
        ("ok", "report-runs", "report-runs-poison")
    ]
    assert errors["bad"].startswith("Invalid queue name: 'no_underscores'")
    assert errors["unset"] == "'%NOPE%' does not resolve to a value"


def test_base64_decoding_is_strict_like_dotnet() -> None:
    assert decode_body("aGVsbG8=", "base64") == b"hello"
    assert (
        decode_body("aGVs\nbG8=", "base64") == b"hello"
    )  # white space is ignored, as Convert.FromBase64String
    assert decode_body("aGVsbG8", "base64") is None  # missing padding
    assert decode_body("not base64!", "base64") is None
    assert decode_body("", "base64") == b""
    assert decode_body("not base64!", "none") == b"not base64!"
