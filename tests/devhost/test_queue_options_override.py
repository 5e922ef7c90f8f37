"""host.json's queue options overridden by ``AzureFunctionsJobHost__extensions__queues__<name>`` app settings,
as the Functions host reads them (a test host shortens ``visibilityTimeout`` without its own host.json)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from devhost.queue_options import QueueOptionsError, parse_queue_options

HOST_JSON = Path("host.json")


def test_an_app_setting_overrides_host_json_case_insensitively() -> None:
    environ = {
        "AZURE_FUNCTIONS_ENVIRONMENT": "Production",
        "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
        "azurefunctionsjobhost__EXTENSIONS__queues__MAXDEQUEUECOUNT": "3",
    }
    options = parse_queue_options(
        HOST_JSON, {"visibilityTimeout": "00:00:30", "maxDequeueCount": 5, "batchSize": 1}, environ
    )
    assert options.visibility_timeout == dt.timedelta(seconds=1)
    assert options.max_dequeue_count == 3
    assert options.batch_size == 1  # not overridden: host.json's


def test_an_overriding_value_the_host_refuses_is_refused() -> None:
    environ = {"AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "0"}
    with pytest.raises(QueueOptionsError, match="maxDequeueCount"):
        parse_queue_options(HOST_JSON, {}, environ)
