"""Several organisations, unit level: the ENTRA_TENANCY setting, the multi-tenant bearer validator (exact
issuer for the token's tid), one MSAL cache whose entries are removed per realm, one credential for every
tenant's provider, the tenant directory's refusals, onboarding's checks, the report fan-out and
``make run``'s tenancy."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msal
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from scripts.run_local import tenancy_of, tenant_args
from shared.core.error_translation import from_msal_result
from shared.core.errors import (
    AppNotProvisioned,
    ConfigurationError,
    CredentialUnavailable,
    StorageUnavailable,
    TenantRefused,
    Unauthenticated,
)
from shared.identity.app_tokens import AppTokens, SharedCredential
from shared.identity.credentials import ClientCredential
from shared.identity.msal_app import remove_realm_tokens
from shared.identity.multi_bearer import MultiTenantAuthenticator
from shared.identity.signing_keys import SigningKeys
from shared.identity.tenancy import Tenant
from shared.identity.tokens import LOAD_FAILURE_HOLD_SECONDS
from shared.tenants import Organisation, RegistryDirectory, RevocationWatch, fan_out, tenant_of_message
from shared.tenants.onboarding import _chosen_scope, _consent_error, _roles_of

from .conftest import AUTHORITY_HOST, CLIENT, TENANT, TokenFactory, jwk_of, make_settings
from .fakes import FakeClock, FakeTransport, respond

CUSTOMER = "22222222-3333-4444-5555-666666666666"
OTHER = "77777777-8888-9999-aaaa-bbbbbbbbbbbb"
ORGS_METADATA = f"{AUTHORITY_HOST}/organizations/v2.0/.well-known/openid-configuration"
ORGS_KEYS = f"{AUTHORITY_HOST}/organizations/discovery/v2.0/keys"


# -- settings ---------------------------------------------------------------------------------------------


def test_tenancy_defaults_to_single_and_accepts_multi() -> None:
    single = make_settings()
    assert single.tenancy == "single" and not single.is_multi_tenant
    assert single.sign_in_authority == single.authority
    multi = make_settings(ENTRA_TENANCY="Multi")
    assert multi.is_multi_tenant and multi.sign_in_authority == f"{AUTHORITY_HOST}/organizations"
    assert multi.sign_in.sign_in_authority.endswith("/organizations") and multi.sign_in.tenancy == "multi"


def test_an_unknown_tenancy_says_what_to_set() -> None:
    with pytest.raises(ConfigurationError) as raised:
        make_settings(ENTRA_TENANCY="both")
    assert "ENTRA_TENANCY is 'both'" in raised.value.message
    assert "'single'" in raised.value.message and "'multi'" in raised.value.message
    assert "AzureADMultipleOrgs" in raised.value.message


def test_make_run_follows_the_settings_file(tmp_path: Any) -> None:
    path = tmp_path / "local.settings.json"
    assert tenancy_of(path, None) == "single"  # no file yet
    path.write_text(json.dumps({"Values": {"ENTRA_TENANCY": "multi"}}))
    assert tenancy_of(path, None) == "multi" and tenancy_of(path, "single") == "single"
    assert (
        tenant_args("multi") == ["--sign-in-audience", "AzureADMultipleOrgs"] and tenant_args("single") == []
    )


# -- bearer tokens of any organisation ------------------------------------------------------------------


@pytest.fixture
def orgs_validator(rsa_key: rsa.RSAPrivateKey) -> MultiTenantAuthenticator:
    transport = FakeTransport()
    transport.route(
        ORGS_METADATA,
        lambda request: respond(
            200, {"issuer": f"{AUTHORITY_HOST}/{{tenantid}}/v2.0", "jwks_uri": ORGS_KEYS}
        ),
    )
    transport.route(ORGS_KEYS, lambda request: respond(200, {"keys": [jwk_of(rsa_key, "key-1")]}))
    keys = SigningKeys(
        metadata_url=ORGS_METADATA, transport=transport, clock=FakeClock(), spawn=lambda f: f()
    )
    return MultiTenantAuthenticator(audiences=make_settings().api_audiences, keys=keys)


def test_a_token_of_any_organisation_is_validated_with_its_own_exact_issuer(
    orgs_validator: MultiTenantAuthenticator, make_token: TokenFactory
) -> None:
    token = make_token(tid=CUSTOMER, iss=f"{AUTHORITY_HOST}/{CUSTOMER}/v2.0")
    assert orgs_validator.validate(token).tenant_id == CUSTOMER
    v1 = make_token(tid=CUSTOMER, iss=f"https://sts.windows.net/{CUSTOMER}/", aud=f"api://{CLIENT}")
    assert orgs_validator.validate(v1).tenant_id == CUSTOMER


@pytest.mark.parametrize(
    "claims",
    [
        {"tid": CUSTOMER, "iss": f"{AUTHORITY_HOST}/{OTHER}/v2.0"},  # another tenant's issuer
        {"tid": CUSTOMER, "iss": f"{AUTHORITY_HOST}/{{tenantid}}/v2.0"},  # the template itself
        {"tid": CUSTOMER, "iss": f"{AUTHORITY_HOST}/organizations/v2.0"},
        {"tid": "not-a-guid", "iss": f"{AUTHORITY_HOST}/not-a-guid/v2.0"},
        {"tid": CUSTOMER, "iss": f"https://evil.example/{CUSTOMER}/v2.0"},
    ],
)
def test_an_issuer_that_is_not_exactly_the_tokens_tenants_is_a_401(
    orgs_validator: MultiTenantAuthenticator, make_token: TokenFactory, claims: dict[str, str]
) -> None:
    with pytest.raises(Unauthenticated):
        orgs_validator.validate(make_token(**claims))


def test_a_key_published_for_one_fixed_issuer_signs_only_that_issuer(
    rsa_key: rsa.RSAPrivateKey, make_token: TokenFactory
) -> None:
    msa = "9188040d-6c67-4c5b-b112-36a304b66dad"
    entry = {**jwk_of(rsa_key, "key-1"), "issuer": f"{AUTHORITY_HOST}/{msa}/v2.0"}
    transport = FakeTransport()
    transport.route(
        ORGS_METADATA,
        lambda request: respond(
            200, {"issuer": f"{AUTHORITY_HOST}/{{tenantid}}/v2.0", "jwks_uri": ORGS_KEYS}
        ),
    )
    transport.route(ORGS_KEYS, lambda request: respond(200, {"keys": [entry]}))
    keys = SigningKeys(
        metadata_url=ORGS_METADATA, transport=transport, clock=FakeClock(), spawn=lambda f: f()
    )
    validator = MultiTenantAuthenticator(audiences=make_settings().api_audiences, keys=keys)
    assert validator.validate(make_token(tid=msa, iss=f"{AUTHORITY_HOST}/{msa}/v2.0")).tenant_id == msa
    with pytest.raises(Unauthenticated, match="signing key"):
        validator.validate(make_token(tid=CUSTOMER, iss=f"{AUTHORITY_HOST}/{CUSTOMER}/v2.0"))


def test_a_token_without_tid_is_a_401(
    orgs_validator: MultiTenantAuthenticator, make_token: TokenFactory
) -> None:
    with pytest.raises(Unauthenticated, match="tid"):
        orgs_validator.validate(make_token(drop=("tid",), iss=f"{AUTHORITY_HOST}/{CUSTOMER}/v2.0"))


def test_another_key_is_a_401(
    orgs_validator: MultiTenantAuthenticator, make_token: TokenFactory, other_rsa_key: rsa.RSAPrivateKey
) -> None:
    with pytest.raises(Unauthenticated):
        orgs_validator.validate(
            make_token(key=other_rsa_key, tid=CUSTOMER, iss=f"{AUTHORITY_HOST}/{CUSTOMER}/v2.0")
        )


# -- one MSAL cache, removal per realm ------------------------------------------------------------------


def _app_token_event(realm: str) -> dict[str, Any]:
    return {
        "client_id": CLIENT,
        "scope": ["https://graph.microsoft.com/.default"],
        "token_endpoint": f"https://login.microsoftonline.com/{realm}/oauth2/v2.0/token",
        "response": {"access_token": f"at-{realm}", "token_type": "Bearer", "expires_in": 3600},
        "grant_type": "client_credentials",
    }


def test_removing_one_realm_keeps_every_other_tenants_tokens() -> None:
    cache = msal.TokenCache()
    for realm in (TENANT, CUSTOMER, OTHER):
        cache.add(_app_token_event(realm))
    assert remove_realm_tokens(cache, client_id=CLIENT, realm=CUSTOMER) == 1
    left = {entry["realm"] for entry in cache.search(cache.CredentialType.ACCESS_TOKEN)}
    assert left == {TENANT, OTHER}


class _Source:
    def __init__(self) -> None:
        self.loads = 0

    def load(self) -> ClientCredential:
        self.loads += 1
        return ClientCredential(
            kind="secret", msal_credential=f"secret-{self.loads}", fingerprint=str(self.loads)
        )


def test_every_tenants_provider_shares_one_credential_read() -> None:
    source = _Source()
    shared = SharedCredential(source)
    tokens = AppTokens(
        registration=make_settings().entra_app, authority_host=AUTHORITY_HOST, credential=shared
    )
    for tenant in (TENANT, CUSTOMER, OTHER):
        assert tokens.provider(tenant).credential().fingerprint == "1"
    assert source.loads == 1 and len(tokens) == 3
    assert tokens.provider(CUSTOMER.upper()) is tokens.provider(CUSTOMER)
    view = shared.for_one_provider()
    assert view.load().fingerprint == "1" and view.load().fingerprint == "2"  # a rejection re-reads
    tokens.forget(CUSTOMER)
    assert len(tokens) == 2


class _FailingOnce:
    """A credential source whose first read fails (the vault down), then works."""

    def __init__(self) -> None:
        self.loads = 0

    def load(self) -> ClientCredential:
        self.loads += 1
        if self.loads == 1:
            raise CredentialUnavailable("the vault is down", retry_after=5)
        return ClientCredential(kind="secret", msal_credential="secret", fingerprint=str(self.loads))


def test_an_organisations_held_failure_waits_on_the_process_clock() -> None:
    source, clock = _FailingOnce(), FakeClock()
    tokens = AppTokens(
        registration=make_settings().entra_app,
        authority_host=AUTHORITY_HOST,
        credential=SharedCredential(source),
        clock=clock,
    )
    provider = tokens.provider(CUSTOMER)
    for _ in range(2):  # the failed read is held: the second caller does not read again
        with pytest.raises(CredentialUnavailable):
            provider.credential()
    assert source.loads == 1
    clock.advance(LOAD_FAILURE_HOLD_SECONDS)  # the hold ends on the clock the provider was given
    assert provider.credential().fingerprint == "2" and source.loads == 2


# -- the directory's refusals ------------------------------------------------------------------------------


class _Registry:
    def __init__(self, *orgs: Organisation) -> None:
        self.orgs = {org.tenant_id: org for org in orgs}
        self.statuses: list[tuple[str, str]] = []
        self.fail = False

    def get(self, tenant_id: str) -> Organisation | None:
        return self.orgs.get(tenant_id.lower())

    def active(self) -> list[Organisation]:
        return [org for org in self.orgs.values() if org.active]

    def set_status(self, tenant_id: str, status: Any, reason: str) -> Organisation:
        if self.fail:
            raise StorageUnavailable("down")
        self.statuses.append((tenant_id, status))
        org = self.orgs[tenant_id]._replace(status=status, status_reason=reason)
        self.orgs[tenant_id] = org
        return org


def _org(tenant_id: str, status: Any = "active") -> Organisation:
    return Organisation(
        tenant_id=tenant_id,
        name="contoso.example",
        onboarded_by="admin@contoso.example",
        onboarded_by_oid="oid",
        onboarded_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        permissions=("User.Read.All",),
        status=status,
    )


def test_the_directory_serves_the_home_tenant_and_active_organisations_only() -> None:
    home = Tenant(tenant_id=TENANT, authority=f"{AUTHORITY_HOST}/{TENANT}")
    registry = _Registry(_org(CUSTOMER), _org(OTHER, "suspended"))
    directory = RegistryDirectory(home, registry, authority_host=AUTHORITY_HOST)  # type: ignore[arg-type]
    assert directory.get(TENANT) is home
    served = directory.get(CUSTOMER.upper())
    assert served.tenant_id == CUSTOMER and served.storage_prefix == "t" + CUSTOMER.replace("-", "")
    assert served.authority == f"{AUTHORITY_HOST}/{CUSTOMER}"
    assert [t.tenant_id for t in directory] == [TENANT, CUSTOMER]
    for tenant_id, code in (
        (OTHER, "tenant_suspended"),
        ("99999999-0000-0000-0000-000000000000", "tenant_not_onboarded"),
        ("organizations", "tenant_not_onboarded"),
    ):
        with pytest.raises(TenantRefused) as refused:
            directory.get(tenant_id)
        assert refused.value.code == code and refused.value.status == 403
    for status, code in (("offboarded", "tenant_offboarded"), ("consent_revoked", "tenant_consent_revoked")):
        registry.orgs[OTHER] = _org(OTHER, status)
        with pytest.raises(TenantRefused) as refused:
            directory.get(OTHER)
        assert refused.value.code == code and "/onboard" in refused.value.message


# -- revoked consent -------------------------------------------------------------------------------------


class _Tokens:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get_token(self, scope: str) -> str:
        if self.error is not None:
            raise self.error
        return "token"

    def invalidate(self, scope: str, token: str | None = None) -> None:
        pass


def test_entra_refusing_the_app_in_an_organisation_marks_it_consent_revoked() -> None:
    registry = _Registry(_org(CUSTOMER))
    forgotten: list[str] = []
    missing = from_msal_result(
        {
            "error": "invalid_client",
            "error_description": "AADSTS7000229: missing service principal",
            "error_codes": [7000229],
        }
    )
    assert isinstance(missing, AppNotProvisioned) and missing.aadsts == frozenset({7000229})
    watch = RevocationWatch(_Tokens(missing), tenant_id=CUSTOMER, registry=registry, forget=forgotten.append)  # type: ignore[arg-type]
    with pytest.raises(TenantRefused) as refused:
        watch.get_token("scope")
    assert refused.value.code == "tenant_consent_revoked"
    assert registry.statuses == [(CUSTOMER, "consent_revoked")] and forgotten == [CUSTOMER]
    assert "7000229" in registry.orgs[CUSTOMER].status_reason
    with pytest.raises(TenantRefused):  # concurrent callers of the same failure: recorded once
        watch.get_token("scope")
    assert registry.statuses == [(CUSTOMER, "consent_revoked")]
    # An outage is not a revocation: it goes through untouched.
    outage = RevocationWatch(
        _Tokens(CredentialUnavailable("down")),
        tenant_id=CUSTOMER,
        registry=registry,  # type: ignore[arg-type]
        forget=forgotten.append,
    )
    with pytest.raises(CredentialUnavailable):
        outage.get_token("scope")
    assert len(registry.statuses) == 1
    # The registry down: still the 403, recorded at the next request.
    registry.fail = True
    fresh = RevocationWatch(_Tokens(missing), tenant_id=CUSTOMER, registry=registry, forget=forgotten.append)  # type: ignore[arg-type]
    with pytest.raises(TenantRefused) as again:
        fresh.get_token("scope")
    assert again.value.code == "tenant_consent_revoked"


@pytest.mark.parametrize(
    ("code", "error"), [(7000112, "unauthorized_client"), (700016, "unauthorized_client")]
)
def test_a_disabled_or_unknown_app_is_not_provisioned(code: int, error: str) -> None:
    result = from_msal_result(
        {"error": error, "error_description": f"AADSTS{code}: x", "error_codes": [code]}
    )
    assert isinstance(result, AppNotProvisioned) and result.status == 500


# -- onboarding checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "outcome"),
    [
        ({"error": "access_denied", "error_description": "AADSTS65004: User declined"}, "declined"),
        ({"error": "consent_required", "error_description": "AADSTS90094: admin approval"}, "not_admin"),
        (
            {"error": "access_denied", "error_description": "AADSTS50020: user from another tenant"},
            "other_directory",
        ),
        ({"error": "server_error", "error_description": "AADSTS50000: x"}, "failed"),
        ({"error": "<script>", "error_description": "whatever"}, "failed"),
    ],
)
def test_each_consent_error_has_its_outcome(params: dict[str, str], outcome: str) -> None:
    found, detail = _consent_error(params)
    assert found == outcome and "<script>" not in detail and "declined" not in detail.lower()


def test_the_mailbox_group_is_the_new_choice_or_the_previous_one() -> None:
    previous = _org(CUSTOMER)._replace(mailbox_scope=OTHER)
    assert _chosen_scope("", None) is None and _chosen_scope("", previous) == OTHER
    assert _chosen_scope("*", previous) == "*" and _chosen_scope(TENANT, previous) == TENANT


def test_the_proof_token_must_be_the_bound_tenants(make_token: TokenFactory) -> None:
    token = make_token(tid=CUSTOMER, roles=["User.Read.All", "Mail.Read"])
    assert _roles_of(token, CUSTOMER) == frozenset({"User.Read.All", "Mail.Read"})
    with pytest.raises(Exception, match="another organisation"):
        _roles_of(token, OTHER)


# -- the report fan-out ----------------------------------------------------------------------------------


def test_one_tenants_failure_does_not_stop_the_fan_out() -> None:
    tenants = [Tenant(tenant_id=t, authority=f"{AUTHORITY_HOST}/{t}") for t in (TENANT, CUSTOMER, OTHER)]
    queued: list[str] = []

    def queue_run(tenant: Tenant) -> None:
        if tenant.tenant_id == CUSTOMER:
            raise StorageUnavailable("queue down")
        queued.append(tenant.tenant_id)

    result = fan_out(tenants, queue_run)
    assert sorted(queued) == sorted([TENANT, OTHER]) and result.queued == (TENANT, OTHER)
    assert result.failed == ((CUSTOMER, "storage_unavailable"),)


def test_a_message_names_its_tenant() -> None:
    assert (
        tenant_of_message(json.dumps({"date": "2026-01-01", "tenant": CUSTOMER.upper()}).encode()) == CUSTOMER
    )
    assert tenant_of_message(b'{"date": "2026-01-01"}') is None
    assert tenant_of_message(b'{"tenant": "../x"}') is None and tenant_of_message(b"not json") is None
