"""CORS for single-page apps on another origin, through the real app under devhost with
``local.settings.json`` ``Host.CORS`` as Core Tools reads it: a preflight is answered before any function
runs (``/api/me`` has no OPTIONS function: reaching the router would be a 404), an allowed origin can read
the API's answers, including a challenge's headers, and any other origin gets no CORS header."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devhost.azurite import Azurite
from tests.devhost.fixtures import DevHostProcess, start_devhost
from tests.integration.fixtures import Evidence
from tests.support.apphost import REPO_ROOT, host_environment, write_app_settings
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

SPA = "https://spa.contoso.test"


@pytest.fixture(scope="module")
def cors_host(
    tmp_path_factory: pytest.TempPathFactory, local_tenant: LocalTenant, azurite: Azurite, evidence: Evidence
) -> Iterator[DevHostProcess]:
    workdir = tmp_path_factory.mktemp("host-cors")
    settings = write_app_settings(
        workdir / "local.settings.json", local_tenant.env, azurite.connection_string
    )
    document = json.loads(settings.read_text())
    document["Host"]["CORS"] = f"{SPA}, http://localhost:3000"
    settings.write_text(json.dumps(document))
    log = Path(workdir / "devhost.log")
    evidence.logs.append(log)
    host = start_devhost(
        REPO_ROOT,
        log_path=log,
        env=host_environment(local_tenant.env),
        args=("--settings", str(settings)),
    )
    yield host
    host.stop()


def preflight(host: DevHostProcess, origin: str) -> requests.Response:
    return requests.options(
        host.url("/api/me"),
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=30,
    )


def test_a_preflight_is_answered_before_any_function(cors_host: DevHostProcess) -> None:
    allowed = preflight(cors_host, SPA)
    assert allowed.status_code == 204 and allowed.content == b""
    assert allowed.headers["Access-Control-Allow-Origin"] == SPA
    assert allowed.headers["Access-Control-Allow-Headers"] == "authorization"
    assert allowed.headers["Access-Control-Allow-Methods"] == "GET"
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    other = preflight(cors_host, "https://evil.test")
    assert other.status_code == 204
    assert not [name for name in other.headers if name.lower().startswith("access-control-")]
    # The same OPTIONS without CORS reaches the router: /api/me has no OPTIONS function.
    assert requests.options(cors_host.url("/api/me"), timeout=30).status_code == 404


def test_an_allowed_origin_reads_the_answers_and_the_challenge(
    cors_host: DevHostProcess, local_tenant: LocalTenant, evidence: Evidence
) -> None:
    token = local_tenant.person_token(capabilities=["CP1"])
    evidence.tokens.append(token)  # the log scan checks it never reaches a log
    ok = requests.get(
        cors_host.url("/api/me"), headers={"Origin": SPA, "Authorization": f"Bearer {token}"}, timeout=60
    )
    assert ok.status_code == 200 and ok.headers["Access-Control-Allow-Origin"] == SPA
    assert "Origin" in ok.headers["Vary"]
    refused = requests.get(
        cors_host.url("/api/me"), headers={"Origin": SPA, "Authorization": "Bearer not.a.jwt"}, timeout=30
    )
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == SPA
    other = requests.get(
        cors_host.url("/api/me"),
        headers={"Origin": "https://evil.test", "Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers
