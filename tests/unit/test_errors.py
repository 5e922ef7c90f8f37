from __future__ import annotations

import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from shared.core.error_translation import from_azure_error, from_msal_result, is_credential_rejected
from shared.core.errors import (
    BadRequest,
    ConfigurationError,
    CredentialUnavailable,
    Forbidden,
    GraphFunctionsError,
    NotFound,
    Unauthenticated,
    UpstreamError,
    UpstreamThrottled,
)

from .azure_fakes import vault_error

WHAT = "secret 'app-credential' in Key Vault https://kv.vault.azure.net/"


@pytest.mark.parametrize(
    ("cls", "status", "code"),
    [
        (BadRequest, 400, "invalid_parameter"),
        (Unauthenticated, 401, "unauthenticated"),
        (Forbidden, 403, "forbidden"),
        (NotFound, 404, "not_found"),
        (UpstreamError, 502, "upstream_error"),
        (UpstreamThrottled, 503, "upstream_throttled"),
        (CredentialUnavailable, 503, "credential_unavailable"),
    ],
)
def test_statuses_and_codes(cls: type[GraphFunctionsError], status: int, code: str) -> None:
    error = cls("message")
    assert isinstance(error, GraphFunctionsError)
    assert (error.status, error.code, error.message, str(error)) == (status, code, "message", "message")


def test_configuration_error_is_the_only_500() -> None:
    error = ConfigurationError(["a is missing", "b is wrong"])
    assert (error.status, error.code) == (500, "configuration_error")
    assert error.problems == ("a is missing", "b is wrong")
    assert "a is missing" in error.message and "b is wrong" in error.message


def test_retry_after_headers() -> None:
    assert UpstreamThrottled("x", retry_after=7).response_headers() == {"Retry-After": "7"}
    assert CredentialUnavailable("x").response_headers() == {"Retry-After": "30"}
    assert BadRequest("x").response_headers() == {}


def test_bearer_challenges_follow_rfc_6750() -> None:
    assert Unauthenticated("x", token_present=False).response_headers() == {"WWW-Authenticate": "Bearer"}
    header = Unauthenticated('The "token" has expired\r\n').response_headers()["WWW-Authenticate"]
    assert header == 'Bearer error="invalid_token", error_description="The token has expired"'
    forbidden = Forbidden("no role").response_headers()["WWW-Authenticate"]
    assert forbidden.startswith('Bearer error="insufficient_scope"')


def msal_error(codes: list[int], error: str = "invalid_client") -> dict[str, object]:
    return {
        "error": error,
        "error_description": f"AADSTS{codes[0] if codes else 0}: Something happened.\r\nTrace ID: abc\r\n"
        "Correlation ID: def",
        "error_codes": codes,
    }


@pytest.mark.parametrize("code", [7000215, 7000222, 700027])
def test_rejected_credential_codes(code: int) -> None:
    result = msal_error([code])
    assert is_credential_rejected(result)
    error = from_msal_result(result)
    assert isinstance(error, CredentialUnavailable)
    assert error.retry_after == 60
    assert "Trace ID" not in error.message and f"AADSTS{code}" in error.message


@pytest.mark.parametrize(
    ("codes", "error"),
    [
        ([700016], "unauthorized_client"),
        ([70011], "invalid_scope"),
        ([90002], "invalid_request"),
        ([], "invalid_resource"),
    ],
)
def test_configuration_msal_errors(codes: list[int], error: str) -> None:
    assert isinstance(from_msal_result(msal_error(codes, error)), ConfigurationError)
    assert not is_credential_rejected(msal_error(codes, error))


def test_other_msal_errors_are_transient() -> None:
    error = from_msal_result({"error": "temporarily_unavailable"})
    assert isinstance(error, CredentialUnavailable) and error.retry_after == 30
    assert not is_credential_rejected({"error": "x", "error_codes": ["garbage", None]})


def test_vault_not_found_names_vault_and_secret() -> None:
    error = from_azure_error(vault_error(404, "SecretNotFound"), what=WHAT)
    assert isinstance(error, ConfigurationError)
    assert "app-credential" in error.message and "https://kv.vault.azure.net/" in error.message


def test_vault_forbidden_says_which_role_to_grant() -> None:
    error = from_azure_error(
        vault_error(403, "Forbidden", "Caller is not authorized", "ForbiddenByRbac"), what=WHAT
    )
    assert isinstance(error, ConfigurationError) and "Key Vault Secrets User" in error.message


def test_vault_disabled_secret() -> None:
    exc = vault_error(
        403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled"
    )
    error = from_azure_error(exc, what=WHAT)
    assert isinstance(error, ConfigurationError) and "disabled" in error.message


def test_vault_unauthorised() -> None:
    assert isinstance(from_azure_error(vault_error(401, "Unauthorized"), what=WHAT), ConfigurationError)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_vault_transient_errors_carry_retry_after(status: int) -> None:
    error = from_azure_error(vault_error(status, "Throttled", headers={"Retry-After": "12"}), what=WHAT)
    assert isinstance(error, CredentialUnavailable) and error.retry_after == 12


def test_vault_unreachable_and_no_credential() -> None:
    unreachable = from_azure_error(ServiceRequestError("connection refused"), what=WHAT)
    assert isinstance(unreachable, CredentialUnavailable) and "unreachable" in unreachable.message
    no_identity = from_azure_error(
        ClientAuthenticationError("ManagedIdentityCredential unavailable"), what=WHAT
    )
    assert isinstance(no_identity, CredentialUnavailable) and no_identity.retry_after == 30


@pytest.mark.parametrize(
    "error",
    [
        from_msal_result(
            {
                "error": "invalid_client",
                "error_codes": [7000215],
                "error_description": "AADSTS7000215: Invalid client secret provided for app 'x'.",
            }
        ),
        from_msal_result(
            {"error": "invalid_scope", "error_codes": [70011], "error_description": "AADSTS70011: x"}
        ),
        from_azure_error(ClientAuthenticationError("no managed identity endpoint"), what=WHAT),
        ConfigurationError("KEY_VAULT_URL is missing: set it to https://my-vault.vault.azure.net/"),
    ],
    ids=["rejected-credential", "aadsts-configuration", "vault-credential", "settings"],
)
def test_operator_details_stay_out_of_the_public_message(error: GraphFunctionsError) -> None:
    assert error.message != error.public_message  # the detail is kept, for the log
    public = error.public_message
    assert "AADSTS" not in public and "vault.azure.net" not in public and "app-credential" not in public
    assert "KEY_VAULT_URL" not in public and public.strip()


def test_caller_errors_keep_their_message_public() -> None:
    assert BadRequest("top must be an integer from 1 to 999").public_message == (
        "top must be an integer from 1 to 999"
    )
    assert Forbidden("no role", code="caller_kind_not_allowed").public_message == "no role"
