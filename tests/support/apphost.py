"""Run the REAL Graph Functions app (the repository root) under devhost against a local tenant.

Shared by the integration tests, the OpenAPI fuzz test and the benchmarks. Nothing here patches a
library: callers get tokens from the tenant with real msal, the app reads its credential with the real
Azure SDKs, and every request crosses a real socket.

* :func:`write_app_settings` writes a ``local.settings.json`` the way ``make run`` does (the sample, with the
  tenant's values and Azurite's connection string).
* :func:`start_app_host` starts devhost on it. Existing environment variables win over the settings file
  (Core Tools semantics) and this machine presets the CA variables to the system bundle, so the tenant's
  CA bundle and managed-identity variables are ALSO passed in the process environment.
* :class:`Caller` gets caller tokens (client credentials for ``api://{ENTRA_CLIENT_ID}/.default``).
* :func:`forge_token` signs tokens with the tenant's current signing key (read from its state dir) so
  tests can present a valid signature over wrong claims.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
import msal
import requests

# APP_KEYS (the app's settings taken from the tenant's env file) and FORCED_ENV (also exported to the
# host's environment) are one list, shared with `make run`.
from scripts.run_local import APP_KEYS, FORCED_ENV
from tests.devhost.fixtures import DevHostProcess, start_devhost
from tests.support.keys import private_key
from tests.support.tenant import LocalTenant

REPO_ROOT = Path(__file__).resolve().parents[2]

USERS_ROLE = "Users.Read.All"
CERTIFICATE_PFX = "graph-functions-certificate"
CERTIFICATE_PEM = "graph-functions-certificate-pem"
CLIENT_SECRET_NAME = "graph-functions-client-secret"
#: Every app host's log this process started, whoever started it: the log scan reads them all
#: (tests/integration/test_log_scan.py), hosts of the kits and browser tests included.
HOST_LOGS: list[Path] = []


def write_app_settings(
    path: Path, tenant_env: Mapping[str, str], storage: str, overrides: Mapping[str, str] | None = None
) -> Path:
    """``local.settings.json`` from the sample, the tenant's values, Azurite and ``overrides``."""
    sample = json.loads((REPO_ROOT / "local.settings.sample.json").read_text())
    values: dict[str, Any] = dict(sample["Values"])
    values.update({key: tenant_env[key] for key in APP_KEYS if key in tenant_env})
    values["AzureWebJobsStorage"] = storage
    values["ENTRA_CREDENTIAL"] = "keyvault"
    values.update(overrides or {})
    sample["Values"] = values
    sample.setdefault("Host", {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sample, indent=2) + "\n")
    return path


def host_environment(tenant_env: Mapping[str, str], extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Process environment for a host serving ``tenant_env``'s tenant."""
    env = {key: tenant_env[key] for key in FORCED_ENV}
    env["CURL_CA_BUNDLE"] = tenant_env["REQUESTS_CA_BUNDLE"]
    env.update(extra or {})
    return env


def start_app_host(
    workdir: Path,
    tenant_env: Mapping[str, str],
    storage: str,
    *,
    overrides: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    dev_clock: bool = False,
) -> DevHostProcess:
    """devhost serving the repository's app with a settings file in ``workdir`` (log: ``devhost.log``).

    ``dev_clock``: the app's services wait on devhost's clock (:mod:`tests.support.app_clock`), which the
    test moves with :func:`advance_app_clock`; otherwise the app is composed exactly as in production."""
    workdir.mkdir(parents=True, exist_ok=True)
    settings = write_app_settings(workdir / "local.settings.json", tenant_env, storage, overrides)
    preload = ("--preload", "tests.support.app_clock") if dev_clock else ()
    HOST_LOGS.append(workdir / "devhost.log")
    return start_devhost(
        REPO_ROOT,
        log_path=workdir / "devhost.log",
        env=host_environment(tenant_env, env),
        args=("--settings", str(settings), *preload, *args),
    )


def app_clock(host: DevHostProcess, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The app clock of a ``dev_clock`` host (``GET``), or changed by ``body`` (``POST``: ``advanceSeconds``,
    ``skipSleeps``; see devhost/clock.py)."""
    url = host.url("/admin/devhost/clock")
    method = "GET" if body is None else "POST"
    response = requests.request(method, url, json=body, timeout=10)
    assert response.status_code == 200, (response.status_code, response.text)
    return dict(response.json())


def advance_app_clock(host: DevHostProcess, seconds: float, tenant: LocalTenant | None = None) -> float:
    """Move a ``dev_clock`` host's clock forward by ``seconds`` (and ``tenant``'s by as much, so the tokens
    it issued age alike); returns the host's offset from real time."""
    if tenant is not None:
        tenant.advance_clock(seconds)
    return float(app_clock(host, {"advanceSeconds": seconds})["offsetSeconds"])


def tenant_session(tenant: LocalTenant) -> requests.Session:
    """A requests session that trusts exactly ``tenant``'s bundle, whatever the process environment says.

    requests lets ``REQUESTS_CA_BUNDLE`` override ``Session.verify`` unless ``trust_env`` is off, which is
    what lets a test talk to a second tenant (another CA) while the process trusts the session tenant.
    """
    session = requests.Session()
    session.trust_env = False
    session.verify = tenant.ca_cert
    return session


class Caller:
    """A client application calling Graph Functions: real msal, client credentials, cached tokens."""

    def __init__(
        self, tenant: LocalTenant, prefix: str = "CALLER", *, http_client: requests.Session | None = None
    ) -> None:
        env = tenant.env
        self.client_id = env[f"{prefix}_CLIENT_ID"]
        self.api_scope = f"api://{env['ENTRA_CLIENT_ID']}/.default"
        self.graph_scope = f"{env['GRAPH_ENDPOINT']}/.default"
        self.issued: list[str] = []
        self._http = http_client or requests.Session()
        self._app = msal.ConfidentialClientApplication(
            self.client_id,
            client_credential=env[f"{prefix}_CLIENT_SECRET"],
            authority=tenant.authority,
            instance_discovery=False,
            http_client=self._http,
        )

    def close(self) -> None:
        """Close the pooled connections (an idle keep-alive connection delays the tenant's shutdown)."""
        self._http.close()

    def token(self, scope: str | None = None) -> str:
        result = self._app.acquire_token_for_client([scope or self.api_scope])
        assert "access_token" in result, result
        token = str(result["access_token"])
        self.issued.append(token)
        return token


def current_signing_key(tenant: LocalTenant) -> tuple[str, bytes]:
    """(kid, private key PEM) of the tenant's current signing key, read from its state dir (which the
    harness owns)."""
    entries = json.loads((tenant.state_dir / "signing-keys.json").read_text())
    return str(entries[0]["kid"]), str(entries[0]["key"]).encode()


def token_claims(tenant: LocalTenant, **overrides: Any) -> dict[str, Any]:
    """Claims of a valid v2 app-only token for Graph Functions' API, from the tenant's caller."""
    env = tenant.env
    now = int(time.time())
    caller_object_id = str(uuid.uuid4())
    claims: dict[str, Any] = {
        "aud": env["ENTRA_CLIENT_ID"],
        "iss": f"{env['ENTRA_AUTHORITY_HOST']}/{env['ENTRA_TENANT_ID']}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "tid": env["ENTRA_TENANT_ID"],
        "azp": env["CALLER_CLIENT_ID"],
        "azpacr": "1",
        "oid": caller_object_id,
        "sub": caller_object_id,  # an app-only token: both name the caller's service principal
        "roles": [USERS_ROLE],
        "ver": "2.0",
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def forge_token(
    tenant: LocalTenant, *, key: Any = None, kid: str | None = None, algorithm: str = "RS256", **claims: Any
) -> str:
    """A JWT over :func:`token_claims` (``claims`` override; ``None`` drops one), signed by ``key`` or by the
    tenant's current signing key."""
    current_kid, current_key = current_signing_key(tenant)
    return jwt.encode(
        token_claims(tenant, **claims),
        key if key is not None else private_key(current_key),
        algorithm=algorithm,
        headers={"kid": kid or current_kid, "typ": "JWT"},
    )


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_DOC_ROW = re.compile(r"^\|\s*(\d{3})\s*\|\s*`([a-z_]+)`\s*\|")


def documented_error_codes() -> dict[str, int]:
    """``code -> status`` from the error table of docs/errors.md (the contract the tests hold the app to)."""
    codes: dict[str, int] = {}
    for line in (REPO_ROOT / "docs" / "errors.md").read_text().splitlines():
        match = _DOC_ROW.match(line)
        if match:
            codes[match.group(2)] = int(match.group(1))
    return codes


def port_is_free(port: int) -> bool:
    """True when nothing listens on loopback ``port``: connections are refused and a server could bind it
    (with SO_REUSEADDR, as servers do, so closed connections lingering in TIME_WAIT do not count)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
