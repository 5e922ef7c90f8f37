from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.core.errors import ConfigurationError, CredentialUnavailable
from shared.identity.credentials import ClientCredential, credential_from_secret
from shared.identity.tokens import EXPIRY_MARGIN_SECONDS, TokenProvider, msal_app_factory

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
        """A provider on this world; background renewals run inline, so tests see their effect at once."""
        kwargs.setdefault("spawn", lambda renew: renew())
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


def test_token_is_renewed_in_the_background_after_half_its_lifetime() -> None:
    world = World(lifetime=600)
    provider = world.provider()
    assert provider.get_token(SCOPE) == "at-1"
    world.clock.advance(299)
    assert provider.get_token(SCOPE) == "at-1"
    assert provider.token_requests == 1  # before the renewal point: the memo answers
    world.clock.advance(2)
    assert provider.get_token(SCOPE) == "at-1"  # the caller gets the current token; the renewal runs aside
    assert provider.token_requests == 2  # and bypassed MSAL's cache, which would still hand out at-1
    assert provider.get_token(SCOPE) == "at-2"


class Outage:
    """Makes the world's Entra fail (connection refused) while ``down`` is set; counts attempts."""

    def __init__(self, world: World) -> None:
        self.down = False
        self.attempts = 0
        self._world = world

    def factory(self, credential: ClientCredential) -> FakeConfidentialClient:
        app = self._world.factory(credential)
        original = app.acquire_token_for_client

        def acquire(scopes: list[str]) -> dict[str, Any]:
            if self.down and scopes[0] not in app._cache:
                self.attempts += 1
                raise ConnectionError("refused")
            return original(scopes)

        app.acquire_token_for_client = acquire  # type: ignore[method-assign]
        return app


def test_renewal_failure_while_the_token_is_valid_costs_callers_nothing() -> None:
    world = World(lifetime=600)
    outage = Outage(world)
    provider = TokenProvider(
        credential_source=world.store, app_factory=outage.factory, clock=world.clock, spawn=lambda f: f()
    )
    assert provider.get_token(SCOPE) == "at-1"
    outage.down = True
    world.clock.advance(301)  # past the renewal point
    for _ in range(20):
        assert provider.get_token(SCOPE) == "at-1"  # the renewal failed; callers never see it
    assert outage.attempts == 1  # the failure is held: one attempt per hold period, not one per caller
    world.clock.advance(6)
    assert provider.get_token(SCOPE) == "at-1"
    assert outage.attempts == 2
    # Served until shortly before the real expiry, then (Entra still down) a clean 503.
    world.clock.advance(600 - 301 - 6 - EXPIRY_MARGIN_SECONDS - 1)
    assert provider.get_token(SCOPE) == "at-1"
    world.clock.advance(2)
    with pytest.raises(CredentialUnavailable) as caught:
        provider.get_token(SCOPE)
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    outage.down = False
    world.clock.advance(6)
    assert provider.get_token(SCOPE) == "at-2"


def test_concurrent_cold_callers_during_an_outage_share_one_request_and_its_error() -> None:
    world = World()
    calls: list[float] = []

    class Slow(FakeConfidentialClient):
        def acquire_token_for_client(self, scopes: list[str]) -> dict[str, Any]:
            calls.append(time.monotonic())
            time.sleep(0.3)  # one attempt timing out
            raise TimeoutError("read timed out")  # requests' Timeout is an OSError too

    provider = TokenProvider(
        credential_source=world.store, app_factory=lambda c: Slow(c, valid=set), clock=world.clock
    )
    answered: list[float] = []

    def get_token() -> str:
        try:
            return provider.get_token(SCOPE)
        finally:
            answered.append(time.monotonic())

    results, errors = run_concurrently(20, get_token)
    assert results == [] and len(errors) == 20
    assert all(isinstance(error, CredentialUnavailable) for error in errors)
    assert all(error.retry_after and error.retry_after >= 1 for error in errors)  # type: ignore[attr-defined]
    assert len(calls) == 1 and provider.token_requests == 1
    # Every caller waited for the one attempt and got its outcome: none was answered before it ended
    # (an order, not a speed: 20 attempts in series would show in ``calls``).
    assert len(answered) == 20 and min(answered) >= calls[0] + 0.3
    with pytest.raises(CredentialUnavailable):
        provider.get_token(SCOPE)  # held: answered from memory
    assert len(calls) == 1
    world.clock.advance(6)
    with pytest.raises(CredentialUnavailable):
        provider.get_token(SCOPE)
    assert len(calls) == 2  # one new attempt per hold period


def test_failed_rebuild_after_a_reread_keeps_the_new_credential() -> None:
    world = World()
    failing = {"secret-v2"}

    def factory(credential: ClientCredential) -> FakeConfidentialClient:
        if credential.msal_credential in failing:
            failing.clear()  # the authority is unreachable just once, right after the re-read
            raise CredentialUnavailable("Microsoft Entra ID metadata is unreachable", retry_after=5)
        return world.factory(credential)

    provider = TokenProvider(credential_source=world.store, app_factory=factory, clock=world.clock)
    assert provider.get_token(SCOPE) == "at-1"
    world.valid = {"secret-v2"}
    world.store.value = "secret-v2"
    world.clock.advance(60)
    with pytest.raises(CredentialUnavailable):
        provider.get_token("api://other/.default")
    world.clock.advance(6)  # well within the 30 s re-read guard
    assert provider.get_token("api://other/.default") == "at-2"
    assert provider.vault_reads == 2  # rebuilt with the credential already read, no second re-read
    assert world.apps[-1].credential.msal_credential == "secret-v2"


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
        self.token_response: FakeResponse | None = None  # answered instead of a token when set
        self.metadata_response: FakeResponse | None = None

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> FakeResponse:
        self.calls.append(("GET", url))
        if self.metadata_response is not None:
            return self.metadata_response
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
        if self.token_response is not None:
            return self.token_response
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
        credential_source=store, app_factory=msal_app_factory(make_settings().entra_app, http_client=idp)
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
        credential_source=store,
        clock=clock,
        app_factory=msal_app_factory(make_settings().entra_app, http_client=idp),
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
        credential_source=CertStore(),
        app_factory=msal_app_factory(make_settings().entra_app, http_client=idp),
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
        credential_source=FakeSecretStore(),
        app_factory=msal_app_factory(make_settings().entra_app, http_client=Down()),
    )
    with pytest.raises(CredentialUnavailable, match="unreachable"):
        provider.get_token(SCOPE)


def _real_msal_provider(idp: FakeIdentityProvider, clock: FakeClock | None = None) -> TokenProvider:
    return TokenProvider(
        credential_source=FakeSecretStore("secret-v1"),
        app_factory=msal_app_factory(make_settings().entra_app, http_client=idp),
        clock=clock or FakeClock(),
    )


ENTRA_BUSY = {
    "error": "temporarily_unavailable",
    "error_codes": [90033],
    "error_description": "AADSTS90033: A transient error has occurred. Please try again.",
}


@pytest.mark.parametrize(
    ("response", "retry_after"),
    [
        (FakeResponse(503, ENTRA_BUSY, headers=Headers({"Retry-After": "17"})), 17),
        (FakeResponse(500, None, raw_text="<html>oops</html>"), 5),
        (FakeResponse(429, ENTRA_BUSY, headers=Headers({"Retry-After": "42"})), 42),
        (FakeResponse(200, None, raw_text="not json"), 5),
        (FakeResponse(200, None, raw_text="[1, 2]"), 5),
    ],
    ids=["503-retry-after", "500-html", "429-retry-after", "200-not-json", "200-json-array"],
)
def test_real_msal_entra_failures_are_503_with_entras_retry_after(
    response: FakeResponse, retry_after: int
) -> None:
    idp = FakeIdentityProvider({"secret-v1"})
    idp.token_response = response
    clock = FakeClock()
    provider = _real_msal_provider(idp, clock)
    with pytest.raises(CredentialUnavailable) as caught:
        provider.get_token(SCOPE)
    assert caught.value.status == 503 and caught.value.code == "credential_unavailable"
    assert caught.value.retry_after == retry_after
    posts = idp.calls.count(("POST", f"{AUTHORITY_HOST}/{TENANT}/oauth2/v2.0/token"))
    clock.advance(1)
    with pytest.raises(CredentialUnavailable) as held:
        provider.get_token(SCOPE)
    assert held.value.retry_after == retry_after - 1  # held: Entra is not asked again before it said
    assert idp.calls.count(("POST", f"{AUTHORITY_HOST}/{TENANT}/oauth2/v2.0/token")) == posts


def test_real_msal_metadata_5xx_is_503_not_500() -> None:
    idp = FakeIdentityProvider({"secret-v1"})
    idp.metadata_response = FakeResponse(503, None, raw_text="busy")
    with pytest.raises(CredentialUnavailable) as caught:
        _real_msal_provider(idp).get_token(SCOPE)
    assert caught.value.retry_after == 5
