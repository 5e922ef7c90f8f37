"""The session key ring against the local tenant's vault and Azurite, through the real SDKs (nothing
patched): a vault that refuses or fails a read of an older key version for a moment signs nobody out
(503, the session kept); only a version that is gone (404) or disabled retires the sessions it sealed.

Each test runs on tables of its own (``app_env``) with a fresh :class:`~shared.app.services.Runtime`, so
the key ring has cached nothing but what the test makes it read.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from devhost.azurite import Azurite
from shared.app.services import Runtime
from shared.core.errors import CredentialUnavailable
from shared.signin.sessions import Session, SessionClaims
from tests.integration.fixtures import environment
from tests.integration.test_session_store import app_env, table_entity
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

CLAIMS = SessionClaims(oid="00000000-0000-0000-0000-0000000f4017", tid="t", name="Kim")


@pytest.fixture
def vault_identity(tenant: LocalTenant) -> Iterator[None]:
    """The managed identity the app reads the vault with (azure-identity reads these from os.environ)."""
    with environment({key: tenant.env[key] for key in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}):
        yield


def rotated_session(tenant: LocalTenant, storage: str) -> tuple[dict[str, str], Runtime, Session, str]:
    """A session sealed by the current key version, then a rotation (a new latest version) and a cold
    instance that has read only the new one: opening the session makes it read the older version."""
    env = app_env(tenant, storage)
    sealed = Runtime(env=env).sessions().create(CLAIMS, "{}")
    name = tenant.env["SESSION_KEY_NAME"]
    new_key = base64.b64encode(secrets.token_bytes(32)).decode()
    latest = tenant.control("PUT", f"/vault/secrets/{name}", {"value": new_key}, expect=201)["version"]
    cold = Runtime(env=env)
    assert cold.session_keys().latest_version() == latest["version"] != sealed.key_version
    return env, cold, sealed, f"/secrets/{name}/{sealed.key_version}"


@pytest.mark.parametrize("status", [401, 403, 500])
def test_a_vault_refusing_an_older_version_for_a_moment_is_503_and_keeps_the_session(
    tenant: LocalTenant, azurite: Azurite, vault_identity: None, status: int
) -> None:
    env, cold, sealed, old_path = rotated_session(tenant, azurite.connection_string)
    rule: dict[str, Any] = {"service": "vault", "path": old_path, "status": status}
    tenant.control("POST", "/faults", rule, expect=201)
    with pytest.raises(CredentialUnavailable) as raised:
        cold.sessions().load(sealed.id)
    assert raised.value.status == 503 and raised.value.retry_after
    # Nothing deleted: the row is there, and once the vault answers again the person is still signed in.
    assert table_entity(cold, cold.settings().session_table, sealed.id)["KeyVersion"] == sealed.key_version
    tenant.control("DELETE", "/faults")
    loaded = Runtime(env=env).sessions().load(sealed.id)
    assert loaded is not None and loaded.claims == sealed.claims


def test_a_disabled_older_version_retires_its_sessions(
    tenant: LocalTenant, azurite: Azurite, vault_identity: None
) -> None:
    _, cold, sealed, _ = rotated_session(tenant, azurite.connection_string)
    name = tenant.env["SESSION_KEY_NAME"]
    tenant.control("PATCH", f"/vault/secrets/{name}", {"enabled": False, "version": sealed.key_version})
    assert cold.sessions().load(sealed.id) is None  # retired: the session ends (and its row goes)
