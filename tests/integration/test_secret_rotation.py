"""Rotating the app's client secret under load costs callers nothing.

A warm host serves a steady stream of caller requests while the operator rotates the secret (new secret
in the vault, old one revoked at once). Access tokens live 5 s here, so the app soon asks Entra for a new
token with the OLD secret: Entra answers AADSTS7000215, the app re-reads the vault, rebuilds its MSAL
client and retries: every request in the stream must still be a 200.

The app skips a re-read only within ``JUST_LOADED_SECONDS`` of a load (the store cannot have changed) or of
an earlier rejection-caused re-read (shared/identity/tokens.py), so the rotation happens a moment after the
host first read the vault, as an operator's would soon after a deployment.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from shared.identity.tokens import JUST_LOADED_SECONDS
from tests.devhost.fixtures import wait_until
from tests.integration.checks import call
from tests.integration.fixtures import Evidence, FreshHosts
from tests.support.apphost import CLIENT_SECRET_NAME, Caller
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration

STREAM_THREADS = 3


class Stream:
    """Caller requests in a loop on a few threads until stopped; records every outcome."""

    def __init__(self, send: Callable[[], tuple[int, str]]) -> None:
        self._send = send
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.outcomes: list[tuple[int, str]] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(STREAM_THREADS)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                outcome = self._send()
            except Exception as exc:  # a transport error is a failed request too
                outcome = (0, repr(exc))
            with self._lock:
                self.outcomes.append(outcome)

    def count(self) -> int:
        with self._lock:
            return len(self.outcomes)

    def __enter__(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def test_secret_rotation_with_revocation_fails_no_request(
    fresh_hosts: FreshHosts, tenant: LocalTenant, caller: Caller, evidence: Evidence
) -> None:
    client_id = tenant.env["ENTRA_CLIENT_ID"]
    token = caller.token()  # the caller's token keeps the default lifetime (taken before the change)
    tenant.control("PUT", "/lifetimes", {"accessToken": 5})
    host = fresh_hosts.start(tenant, "secret-rotation")
    assert call(host, "/api/users", token, {"top": "5"}).status_code == 200  # warm: vault read, token
    first_read = [e for e in tenant.requests_since(0, "vault") if e["status"] == 200][-1]

    def send() -> tuple[int, str]:
        response = call(host, "/api/users", token, {"top": "5"})
        return response.status_code, response.text[:300]

    with Stream(send) as stream:
        wait_until(
            lambda: time.time() - first_read["time"] > JUST_LOADED_SECONDS + 1 and stream.count() >= 10,
            timeout=JUST_LOADED_SECONDS + 30,
            what="a moment past the first vault read while the stream runs",
        )
        seq = tenant.last_seq()
        rotated = tenant.control(
            "POST",
            f"/apps/{client_id}/secrets/rotate",
            {"vaultSecret": CLIENT_SECRET_NAME, "revokeOld": True, "returnValue": True},
        )
        evidence.secrets["rotated app client secret"] = rotated["secretText"]
        assert rotated["secretCount"] == 1  # the old secret is gone
        at_rotation = stream.count()

        def recovered() -> bool:
            logins = [e for e in tenant.requests_since(seq, "login") if e["client_id"] == client_id]
            rejected = [e["seq"] for e in logins if e["status"] == 401]
            return bool(rejected) and any(e["status"] == 200 and e["seq"] > rejected[0] for e in logins)

        wait_until(recovered, timeout=60, what="a rejected token request followed by a successful one")
        wait_until(
            lambda: stream.count() >= at_rotation + 20, timeout=60, what="more requests after rotation"
        )

    failures = [outcome for outcome in stream.outcomes if outcome[0] != 200]
    assert failures == [], failures[:5]
    assert stream.count() >= at_rotation + 20

    after = tenant.requests_since(seq)
    tokens = [
        e for e in after if e["service"] == "login" and e["client_id"] == client_id and e["method"] == "POST"
    ]
    statuses = [e["status"] for e in tokens]
    # Requests sent just before the rotation took effect may still have used the old secret successfully;
    # from the first rejection on: exactly one 401 (AADSTS7000215), then only accepted token requests.
    first_rejection = statuses.index(401)
    assert statuses[first_rejection + 1 :] and set(statuses[first_rejection + 1 :]) == {200}, statuses
    rejected_seq, accepted_seq = tokens[first_rejection]["seq"], tokens[first_rejection + 1]["seq"]
    rereads = [e for e in after if e["service"] == "vault" and e["status"] == 200 and e["seq"] > rejected_seq]
    assert len(rereads) == 1 and rereads[0]["path"].startswith(f"/secrets/{CLIENT_SECRET_NAME}")
    assert rereads[0]["seq"] < accepted_seq  # the vault was re-read between the rejection and the success
    log = host.log()
    assert "AADSTS [7000215]" in log and "Rotated credential accepted" in log
