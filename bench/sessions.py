"""Session read + write overhead per request: what a signed-in person's request pays for server-side sessions.

The app's own stores, built by :class:`shared.app.services.Runtime` from settings, against a real Azurite
(tables) and the local tenant's vault (session key, read once with the managed identity), in process over
loopback sockets. A realistic MSAL token cache (ID token, account, refresh token, access tokens for Graph and
SharePoint: about 10 KB of JSON) is sealed (AES-256-GCM) and stored per session. Measured per request:

* ``load``: read the row, open the record, check expiry (every request of a signed-in person);
* ``load_and_save_unchanged``: the same plus :meth:`SessionStore.save` finding nothing to write (most
  requests: the cache did not change and ``last_seen`` is not due);
* ``load_and_save_changed``: the same with a changed cache (a token was refreshed): one conditional
  write (``If-Match``) of the re-sealed record;
* ``large_cache_load_and_save_changed``: a cache with 40 access tokens (about 100 KB, two 64 KiB chunks).

Also reported: the vault reads during the measured phase (goal 0: the key is cached), the stored record
size, and the cookie length (the opaque id: 43 characters whatever the cache size).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import azurite, local_tenant, machine, summary_ms, write_result
from shared.app.services import Runtime
from shared.signin.sessions import Session, SessionClaims, SessionStore
from shared.storage.tables import hashed_key

SAMPLES = 300
WARMUP = 30
CLAIMS = SessionClaims(
    oid="9c4c8ee0-0000-4000-8000-00000000beef",
    tid="72f988bf-86f1-41af-91ab-2d7cd011db47",
    name="Adèle Vance",
    preferred_username="adele.vance@contoso.example",
    roles=("Reports.Run",),
)


def _jwt(size: int) -> str:
    return ".".join(
        base64.urlsafe_b64encode(secrets.token_bytes(n)).decode().rstrip("=") for n in (60, size, 190)
    )


def token_cache(access_tokens: int) -> str:
    """An MSAL-shaped serialized cache: one account, ID token, refresh token and ``access_tokens`` ATs."""
    home = "9c4c8ee0-0000-4000-8000-00000000beef.72f988bf-86f1-41af-91ab-2d7cd011db47"
    now = int(time.time())
    ats = {
        f"{home}-login.microsoftonline.com-accesstoken-client-tenant-scope{i}": {
            "credential_type": "AccessToken",
            "secret": _jwt(1400),
            "home_account_id": home,
            "environment": "login.microsoftonline.com",
            "client_id": "client",
            "target": f"https://resource{i}.example/.default openid profile offline_access",
            "realm": "tenant",
            "token_type": "Bearer",
            "cached_at": str(now),
            "expires_on": str(now + 3600),
            "extended_expires_on": str(now + 7200),
        }
        for i in range(access_tokens)
    }
    return json.dumps(
        {
            "AccessToken": ats,
            "RefreshToken": {
                f"{home}-login.microsoftonline.com-refreshtoken-client--": {
                    "credential_type": "RefreshToken",
                    "secret": base64.urlsafe_b64encode(secrets.token_bytes(900)).decode(),
                    "home_account_id": home,
                    "environment": "login.microsoftonline.com",
                    "client_id": "client",
                    "last_modification_time": str(now),
                }
            },
            "IdToken": {f"{home}-login.microsoftonline.com-idtoken-client-tenant-": {"secret": _jwt(900)}},
            "Account": {f"{home}-login.microsoftonline.com-tenant": {"username": CLAIMS.preferred_username}},
            "AppMetadata": {"appmetadata-login.microsoftonline.com-client": {"client_id": "client"}},
        }
    )


def measure(step: Callable[[], Any]) -> dict[str, float]:
    for _ in range(WARMUP):
        step()
    samples = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        step()
        samples.append(time.perf_counter() - started)
    return summary_ms(samples)


def scenario(sessions: SessionStore, cache: str, *, change: bool | None) -> dict[str, float]:
    """``change`` None: load only; False: load + save with nothing to write; True: load + changed save."""
    session = sessions.create(CLAIMS, cache)
    counter = [0]

    def step() -> None:
        loaded: Session | None = sessions.load(session.id)
        if loaded is None:
            raise RuntimeError("session vanished during the benchmark")
        if change is None:
            return
        if change:
            counter[0] += 1
            # A refresh: one entry changes, as when MSAL stores a new access token.
            data = json.loads(loaded.token_cache)
            data["AppMetadata"]["appmetadata-login.microsoftonline.com-client"]["n"] = counter[0]
            new_cache = json.dumps(data)
        else:
            new_cache = loaded.token_cache
        if sessions.save(loaded, token_cache=new_cache) is None:
            raise RuntimeError("session vanished during the benchmark")

    return measure(step)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
        work = Path(tmp)
        with local_tenant(work / "tenant", users=10) as tenant, azurite(work) as storage:
            os.environ["IDENTITY_ENDPOINT"] = tenant.env["IDENTITY_ENDPOINT"]
            os.environ["IDENTITY_HEADER"] = tenant.env["IDENTITY_HEADER"]
            env = {
                key: tenant.env[key]
                for key in (
                    "ENTRA_TENANT_ID",
                    "ENTRA_CLIENT_ID",
                    "ENTRA_AUTHORITY_HOST",
                    "KEY_VAULT_URL",
                    "ENTRA_CREDENTIAL_NAME",
                    "GRAPH_ENDPOINT",
                    "SESSION_KEY_NAME",
                )
            }
            env["AzureWebJobsStorage"] = storage.connection_string
            runtime = Runtime(env=env)
            sessions = runtime.sessions()
            typical, large = token_cache(3), token_cache(40)
            warm = sessions.create(CLAIMS, typical)  # the key read and the table creation happen here
            since = tenant.last_seq()
            results = {
                "load": scenario(sessions, typical, change=None),
                "load_and_save_unchanged": scenario(sessions, typical, change=False),
                "load_and_save_changed": scenario(sessions, typical, change=True),
                "large_cache_load_and_save_changed": scenario(sessions, large, change=True),
            }
            vault_reads = len(tenant.requests_since(since, "vault"))
            table = runtime.table_service().get_table_client(runtime.settings().session_table)
            row = hashed_key(warm.id)
            entity = table.get_entity(row[:2], row)
            stored = sum(len(v) for k, v in entity.items() if k.startswith("Data"))
            big = sessions.create(CLAIMS, large)
            big_row = hashed_key(big.id)
            big_entity = table.get_entity(big_row[:2], big_row)
            result = {
                "machine": machine(),
                "samples": SAMPLES,
                "what": "in-process SessionStore against Azurite over loopback; session key cached",
                "typical_cache_json_bytes": len(typical),
                "typical_record_sealed_bytes": stored,
                "large_cache_json_bytes": len(large),
                "large_record_chunks": sum(1 for k in big_entity if k.startswith("Data")),
                "cookie_value_chars": len(warm.id),
                "vault_requests_during_measurement": vault_reads,
                "results": results,
            }
            print(write_result("sessions", result))
            print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
