from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.credentials import ClientCredential, credential_from_secret
from shared.errors import ConfigurationError, CredentialUnavailable
from shared.tokens import REFRESH_MARGIN_SECONDS, TokenProvider, msal_app_factory

from .conftest import AUTHORITY_HOST, CLIENT, TENANT, make_settings, pem_of, self_signed
from .fakes import FakeClock, FakeConfidentialClient, FakeResponse, FakeSecretStore, Headers

SCOPE = "https://127.0.0.1:8444/.default"


class World:
    """A fake vault + fake Entra: the vault holds ``store.value``; Entra accepts the secrets in ``valid``."""

    def __init__(self, *, delay: float = 0.0, lifetime: int = 3600) -> None:
        self.store = FakeSecretStore("secret-v1", delay=delay)
        self.valid = {"secret-v1"}
        self.clock = FakeClock()
        self.apps: list[FakeConfidentialClient] = []
        self.issued = [0]
        self._delay = delay
        self._lifetime = lifetime

    def factory(self, credential: ClientCredential) -> FakeConfidentialClient:
        app = FakeConfidentialClient(
            credential,
            valid=lambda: self.valid,
            delay=self._delay,
            counter=self.issued,
            lifetime=self._lifetime,
        )
        self.apps.append(app)
        return app

    def provider(self, **kwargs: Any) -> TokenProvider:
        return TokenProvider(
            credential_source=self.store, app_factory=self.factory, clock=self.clock, **kwargs
        )


def run_concurrently(count: int, target: Callable[[], str]) -> tuple[list[str], list[BaseException]]:
    barrier = threading.Barrier(count)
    results: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        try:
            value = target()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, errors


def test_fifty_cold_callers_cause_one_vault_read_and_one_token_request() -> None:
    world = World(delay=0.05)
    provider = world.provider()
    results, errors = run_concurrently(50, lambda: provider.get_token(SCOPE))
    assert errors == []
    assert results == ["at-1"] * 50
    assert (provider.vault_reads, provider.token_requests) == (1, 1)
    assert world.store.loads == 1 and len(world.apps) == 1


def test_warm_callers_use_the_memo_without_calling_msal() -> None:
    world = World()
    provider = world.provider()
    assert provider.get_token(SCOPE) == "at-1"
    world.apps[0].acquire_token_for_client = None  # type: ignore[assignment,method-assign]  # must not be called
    assert provider.get_token(SCOPE) == "at-1"
    assert provider.credential_kind == "secret"


def test_token_is_renewed_before_msal_would_consider_it_expired() -> None:
    world = World(lifetime=600)
    provider = world.provider()
    provider.get_token(SCOPE)
    world.clock.advance(600 - REFRESH_MARGIN_SECONDS - 1)
    calls: list[list[str]] = []
    app = world.apps[0]
    original = app.acquire_token_for_client

    def spy(scopes: list[str]) -> dict[str, Any]:
        calls.append(scopes)
        return original(scopes)

    app.acquire_token_for_client = spy  # type: ignore[method-assign]
    provider.get_token(SCOPE)
    assert calls == []  # still fresh
    world.clock.advance(2)
    provider.get_token(SCOPE)
    assert calls == [[SCOPE]]  # memo expired: MSAL asked again (its cache decides whether to go to Entra)


def test_rotated_secret_costs_callers_no_failure() -> None:
    world = World(delay=0.01)
    provider = world.provider()
    assert provider.get_token(SCOPE) == "at-1"
    # The operator rotates: Entra now only accepts v2 and the vault holds v2.
    world.valid = {"secret-v2"}
    world.store.value = "secret-v2"
    world.clock.advance(3600)  # memo and the fake app's view of time are independent; use a new scope
    results, errors = run_concurrently(20, lambda: provider.get_token("api://other/.default"))
    assert errors == []
    assert set(results) == {"at-2"}
    assert provider.vault_reads == 2  # exactly one re-read
    assert len(world.apps) == 2 and world.apps[1].credential.msal_credential == "secret-v2"


def test_rejection_that_a_reread_cannot_fix_is_held_briefly() -> None:
    world = World()
    provider = world.provider()
    provider.get_token(SCOPE)
    world.valid = {"secret-v2"}  # Entra rotated, the vault still holds v1
    world.clock.advance(60)
    with pytest.raises(CredentialUnavailable) as caught:
        provider.get_token("api://other/.default")
    assert "AADSTS7000215" in caught.value.message
    assert provider.vault_reads == 2  # re-read once, found the same credential, no rebuild
    assert len(world.apps) == 1
    requests_before = provider.token_requests
    world.clock.advance(10)
    with pytest.raises(CredentialUnavailable) as held:
        provider.get_token("api://other/.default")
    assert held.value.retry_after == 20
    assert (provider.token_requests, provider.vault_reads) == (requests_before, 2)  # answered from memory
    # The operator fixes the vault; after the hold, the next call recovers.
    world.store.value = "secret-v2"
    world.clock.advance(21)
    assert provider.get_token("api://other/.default") == "at-2"
    assert provider.vault_reads == 3


def test_rotation_soon_after_start_is_picked_up_at_once() -> None:
    world = World()
    provider = world.provider()
    assert provider.get_token(SCOPE) == "at-1"
    world.valid = {"secret-v2"}  # rotated ten seconds after the first vault read, old secret revoked
    world.store.value = "secret-v2"
    world.clock.advance(10)
    assert provider.get_token("api://other/.default") == "at-2"  # no 503 window after start-up
    assert provider.vault_reads == 2


def test_wrong_secret_at_cold_start_is_not_reread_immediately() -> None:
    world = World()
    world.valid = set()
    provider = world.provider()
    with pytest.raises(CredentialUnavailable):
        provider.get_token(SCOPE)
    assert provider.vault_reads == 1  # just read it: re-reading at once would return the same thing


def test_vault_failures_are_typed_and_held() -> None:
    world = World()
    world.store.error = CredentialUnavailable("Key Vault unreachable", retry_after=30)
    provider = world.provider()
    with pytest.raises(CredentialUnavailable):
        provider.get_token(SCOPE)
    with pytest.raises(CredentialUnavailable) as held:
        provider.get_token(SCOPE)
    assert world.store.loads == 1 and held.value.retry_after == 5
    world.store.error = None
    world.clock.advance(6)
    assert provider.get_token(SCOPE) == "at-1"


def test_configuration_errors_from_the_vault_propagate() -> None:
    world = World()
    world.store.error = ConfigurationError("The secret was not found")
    with pytest.raises(ConfigurationError):
        world.provider().get_token(SCOPE)


def test_invalidate_drops_only_the_current_token() -> None:
    world = World()
    provider = world.provider()
    first = provider.get_token(SCOPE)
    provider.invalidate(SCOPE, first)
    second = provider.get_token(SCOPE)
    assert (first, second) == ("at-1", "at-2")
    assert world.apps[0].removed == 1
    provider.invalidate(SCOPE, first)  # a stale report from another thread: ignored
    assert provider.get_token(SCOPE) == "at-2" and world.apps[0].removed == 1


def test_network_failure_is_credential_unavailable() -> None:
    world = World()
    provider = world.provider()

    class Broken(FakeConfidentialClient):
        def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
            raise ConnectionError("refused")  # requests' errors are OSErrors too

    provider = TokenProvider(
        credential_source=world.store, app_factory=lambda c: Broken(c, valid=lambda: set()), clock=world.clock
    )
    with pytest.raises(CredentialUnavailable, match="unreachable"):
        provider.get_token(SCOPE)


# -- against real MSAL, with a fake identity provider as its http_client ----------------------------------


class FakeIdentityProvider:
    """Speaks just enough Entra v2 for MSAL: tenant discovery and the client-credentials token endpoint."""

    def __init__(self, valid_secrets: set[str] | None = None, cert: x509.Certificate | None = None) -> None:
        self.valid_secrets = valid_secrets or set()
        self.cert = cert
        self.calls: list[tuple[str, str]] = []
        self.assertions: list[str] = []
        self.issued = 0

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> FakeResponse:
        self.calls.append(("GET", url))
        base = f"{AUTHORITY_HOST}/{TENANT}"
        assert url == f"{base}/v2.0/.well-known/openid-configuration", url
        return FakeResponse(
            200,
            {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
            },
            headers=Headers({"content-type": "application/json"}),
        )

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kwargs: Any
    ) -> FakeResponse:
        self.calls.append(("POST", url))
        assert url == f"{AUTHORITY_HOST}/{TENANT}/oauth2/v2.0/token"
        form = dict(data)
        ok = form.get("client_secret") in self.valid_secrets
        if "client_assertion" in form and self.cert is not None:
            self.assertions.append(form["client_assertion"])
            jwt.decode(
                form["client_assertion"],
                self.cert.public_key(),  # type: ignore[arg-type]  # an RSA key in these tests
                algorithms=["RS256", "PS256"],
                audience=url,
            )
            ok = True
        if not ok:
            return FakeResponse(
                401,
                {
                    "error": "invalid_client",
                    "error_codes": [7000215],
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
            )
        self.issued += 1
        return FakeResponse(
            200,
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": f"real-at-{self.issued}",
            },
        )

    def close(self) -> None:
        pass


def test_real_msal_local_authority_single_app_and_cache() -> None:
    idp = FakeIdentityProvider({"secret-v1"})
    store = FakeSecretStore("secret-v1")
    provider = TokenProvider(
        credential_source=store, app_factory=msal_app_factory(make_settings(), http_client=idp)
    )
    assert provider.get_token(SCOPE) == "real-at-1"
    provider.invalidate(SCOPE, "not-current")  # ignored
    provider._memo.clear()  # force the MSAL path: its cache must answer
    assert provider.get_token(SCOPE) == "real-at-1"
    assert provider.token_requests == 1
    # instance_discovery=False: nothing was asked of login.microsoftonline.com.
    assert all(url.startswith(AUTHORITY_HOST) for _, url in idp.calls)
    assert [method for method, _ in idp.calls] == ["GET", "POST"]


def test_real_msal_rotation_rebuilds_the_app_and_keeps_the_cache() -> None:
    idp = FakeIdentityProvider({"secret-v1"})
    store = FakeSecretStore("secret-v1")
    clock = FakeClock()
    provider = TokenProvider(
        credential_source=store, clock=clock, app_factory=msal_app_factory(make_settings(), http_client=idp)
    )
    assert provider.get_token(SCOPE) == "real-at-1"
    idp.valid_secrets = {"secret-v2"}
    store.value = "secret-v2"
    clock.advance(60)
    assert provider.get_token("api://other/.default") == "real-at-2"
    assert provider.vault_reads == 2
    provider._memo.clear()
    assert provider.get_token(SCOPE) == "real-at-1"  # shared cache survived the rebuild
    provider.invalidate(SCOPE)
    assert provider.get_token(SCOPE) == "real-at-3"  # remove_tokens_for_client really dropped it


def test_real_msal_certificate_assertion(rsa_key: rsa.RSAPrivateKey) -> None:
    cert = self_signed(rsa_key)
    text = pem_of(rsa_key).decode() + cert.public_bytes(serialization.Encoding.PEM).decode()
    credential = credential_from_secret(text, "application/x-pem-file")

    class CertStore:
        def load(self) -> ClientCredential:
            return credential

    idp = FakeIdentityProvider(cert=cert)
    provider = TokenProvider(
        credential_source=CertStore(), app_factory=msal_app_factory(make_settings(), http_client=idp)
    )
    assert provider.get_token(SCOPE) == "real-at-1"
    header = jwt.get_unverified_header(idp.assertions[0])
    assert header["alg"] == "RS256" and "x5t" in header and len(header["x5c"]) == 1
    claims = jwt.decode(idp.assertions[0], options={"verify_signature": False})
    assert claims["iss"] == claims["sub"] == CLIENT


def test_real_msal_rejects_unreachable_authority() -> None:
    class Down:
        def get(self, *args: Any, **kwargs: Any) -> Any:
            raise ConnectionError("refused")

        post = get

        def close(self) -> None:
            pass

    provider = TokenProvider(
        credential_source=FakeSecretStore(), app_factory=msal_app_factory(make_settings(), http_client=Down())
    )
    with pytest.raises(CredentialUnavailable, match="unreachable"):
        provider.get_token(SCOPE)
