"""What anonymous traffic costs Table Storage: the rows of the sign-in flow table after N anonymous requests.

One local tenant, Azurite and a devhost serving the app. One client (one keep-alive connection, no cookies
kept) sends N requests that start a sign-in: ``GET /auth/login?next=/`` and, alternately, a page that needs
a sign-in (``GET /me``). Then the rows of ``AUTH_FLOW_TABLE`` are counted, and the cleanup timer's purge is
run once as it would be later (after the flows' lifetime). Goal: anonymous requests store nothing, so a flood
from one client cannot grow storage at all.

Run: ``python -m bench.flow_table [N]`` (default 10,000).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import azurite, local_tenant, machine, write_result
from tests.integration.test_signin_kit import register_app_host
from tests.support.apphost import start_app_host

REQUESTS = 10_000
USERS = 25


def _rows(connection_string: str, table: str) -> int:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableServiceClient

    client = TableServiceClient.from_connection_string(connection_string).get_table_client(table)
    try:
        return sum(1 for _ in client.list_entities(select=["RowKey"]))
    except ResourceNotFoundError:  # never created: nothing was ever stored
        return 0


def main(count: int = REQUESTS) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-flows-") as tmp:
        work = Path(tmp)
        with local_tenant(work / "tenant", USERS) as tenant, azurite(work) as storage:
            host = start_app_host(work / "host", tenant.env, storage.connection_string)
            try:
                register_app_host(tenant, host)
                settings = json.loads((host.log_path.parent / "local.settings.json").read_text())["Values"]
                table = settings.get("AUTH_FLOW_TABLE") or "authflows"
                client = requests.Session()
                client.trust_env = False
                statuses: dict[int, int] = {}
                started = time.perf_counter()
                for index in range(count):
                    path = "/auth/login?next=/" if index % 2 == 0 else "/me"
                    response = client.get(host.url(path), allow_redirects=False, timeout=30)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    client.cookies.clear()  # a flood keeps no cookies
                elapsed = time.perf_counter() - started
                rows = _rows(storage.connection_string, table)
            finally:
                host.stop()
    result = {
        "machine": machine(),
        "anonymous_requests": count,
        "statuses": statuses,
        "requests_per_second": round(count / elapsed, 1),
        "flow_table_rows": rows,
        "goals": {"anonymous_requests_store_nothing": rows == 0},
    }
    print(write_result("flow-table", result))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else REQUESTS)
