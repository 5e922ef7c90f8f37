"""Converters from library errors (MSAL result dicts, azure-core exceptions) into the app's exception
hierarchy (:mod:`shared.core.errors`). Every such conversion happens here and nowhere else.

azure-core is imported lazily, and only once an azure error exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.core.errors import (
    AppNotProvisioned,
    ConfigurationError,
    CredentialUnavailable,
    GraphFunctionsError,
    StorageUnavailable,
)

#: AADSTS codes meaning "the credential you presented is wrong", which a vault re-read may fix:
#: 7000215 invalid client secret, 7000222 expired client secret, 700027 assertion signed by an
#: unknown/unregistered certificate (or a bad signature).
CREDENTIAL_REJECTED_CODES = frozenset({7000215, 7000222, 700027})

#: AADSTS codes that only an operator can fix (wrong tenant, app, scope or missing credential).
_CONFIGURATION_CODES = frozenset(
    {
        70011,  # invalid scope
        90002,  # tenant not found
        500011,  # resource principal not found in the tenant
        700016,  # application not found in the directory
        700022,  # scope spans several resources
        7000218,  # no credential in the request
    }
)
_CONFIGURATION_ERRORS = frozenset({"invalid_scope", "unauthorized_client", "invalid_resource"})
#: AADSTS codes meaning "this app has no usable service principal in that tenant": 7000229 missing
#: service principal, 700016 application not found in the directory, 7000112 application disabled
#: (shared/reference/multi-tenant-and-obo.md A.4, A.7).
APP_NOT_PROVISIONED_CODES = frozenset({7000229, 700016, 7000112})

_MAX_MESSAGE = 400


def first_line(text: str) -> str:
    """The first line of an AADSTS description: the summary, without trace and correlation ids."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:_MAX_MESSAGE]


def msal_error_codes(result: Mapping[str, Any]) -> frozenset[int]:
    """The integer AADSTS codes of an MSAL error result (``error_codes``), empty if none."""
    codes = result.get("error_codes") or ()
    out = set()
    for code in codes if isinstance(codes, list | tuple) else ():
        try:
            out.add(int(code))
        except (TypeError, ValueError):
            continue
    return frozenset(out)


def is_credential_rejected(result: Mapping[str, Any]) -> bool:
    """True when Entra ID rejected the client credential itself (a vault re-read may fix it)."""
    return bool(msal_error_codes(result) & CREDENTIAL_REJECTED_CODES)


def from_msal_result(result: Mapping[str, Any]) -> GraphFunctionsError:
    """Convert an MSAL error result dict (``{"error", "error_description", "error_codes"}``) to a typed error.

    Returns (does not raise) the exception, so callers write ``raise from_msal_result(result)``.
    """
    error = str(result.get("error") or "unknown_error")
    summary = first_line(str(result.get("error_description") or error))
    codes = msal_error_codes(result)
    if codes & CREDENTIAL_REJECTED_CODES:
        return CredentialUnavailable(
            "Microsoft Entra ID rejected the app's client credential "
            f"({summary}). Put a current client secret or registered certificate in the vault entry "
            "named by ENTRA_CREDENTIAL_NAME; the app re-reads it without a restart.",
            retry_after=60,
        )
    if codes & APP_NOT_PROVISIONED_CODES:
        return AppNotProvisioned(
            f"Microsoft Entra ID has no enabled service principal of this app in the tenant ({summary}). "
            "Grant admin consent in that tenant (for an onboarded organisation: its administrator "
            "onboards again at /onboard).",
            aadsts=frozenset(codes),
        )
    if codes & _CONFIGURATION_CODES or error in _CONFIGURATION_ERRORS:
        return ConfigurationError(
            f"Microsoft Entra ID refused the app's token request ({summary}). Check ENTRA_TENANT_ID, "
            "ENTRA_CLIENT_ID, GRAPH_ENDPOINT and the app registration's API permissions."
        )
    return CredentialUnavailable(f"Microsoft Entra ID could not issue a token now ({summary}).")


def from_azure_error(exc: BaseException, *, what: str) -> GraphFunctionsError:
    """Convert an azure-core / azure-identity exception raised while fetching ``what`` to a typed error.

    ``what`` names the object in operator terms, e.g. ``"secret 'app-cred' in Key Vault https://kv/"``;
    it must not contain secret values. Not found / forbidden / unauthorised are configuration problems;
    throttling, server errors, unreachable endpoints and unavailable credentials are transient (503).
    """
    from azure.core import exceptions as az  # lazy: only reached once azure-core raised  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    status = getattr(exc, "status_code", None) if isinstance(exc, az.HttpResponseError) else None
    detail = first_line(str(getattr(exc, "message", None) or exc))
    if isinstance(exc, az.ResourceNotFoundError) or status == 404:
        return ConfigurationError(
            f"The {what} was not found. Create it, or fix ENTRA_CREDENTIAL_NAME / KEY_VAULT_URL."
        )
    if status == 403:
        if _is_disabled(exc, detail):
            return ConfigurationError(
                f"The {what} is disabled. Enable its current version or store a new enabled version."
            )
        return ConfigurationError(
            f"Access to the {what} was denied. Grant the Function App's managed identity the "
            "'Key Vault Secrets User' role on the vault (or a 'get' secrets access policy)."
        )
    if status == 401:
        return ConfigurationError(
            f"The service rejected the managed identity's token while reading the {what}. Check that the "
            "vault belongs to the same tenant as the identity."
        )
    if status is not None and (status in (408, 429) or status >= 500):
        return CredentialUnavailable(
            f"Reading the {what} failed temporarily (HTTP {status}).",
            retry_after=_retry_after_of(exc),
        )
    if isinstance(exc, az.ClientAuthenticationError):
        # No response at all: the credential chain (managed identity, ...) could not produce a token.
        return CredentialUnavailable(f"No Azure credential could obtain a token to read the {what}: {detail}")
    if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError):
        return CredentialUnavailable(f"The service holding the {what} is unreachable.")
    return CredentialUnavailable(f"Reading the {what} failed: {detail}")


def from_storage_error(exc: BaseException, *, what: str) -> GraphFunctionsError:
    """Convert an azure-core exception raised by Table/Blob/Queue storage while doing ``what`` (operator
    terms, e.g. ``"reading table 'sessions'"``; never data) to a typed error.

    401/403 (wrong account key, missing role) is a configuration problem; everything else a caller cannot
    cause (throttling, 5xx, timeouts, connection failures, unexpected answers) is a 503
    ``storage_unavailable``.
    """
    from azure.core import exceptions as az  # lazy: only reached once azure-core raised  # noqa: PLC0415 - azure is heavy: imported on first use (cold start)

    status = getattr(exc, "status_code", None) if isinstance(exc, az.HttpResponseError) else None
    if status in (401, 403):
        return ConfigurationError(
            f"Storage refused the app while {what} (HTTP {status}). Check AzureWebJobsStorage, or grant the "
            "Function App's identity the 'Storage Table Data Contributor' role on the account."
        )
    retry_after = _retry_after_of(exc) if status is not None else None
    if status is not None:
        return StorageUnavailable(f"Storage failed while {what} (HTTP {status}).", retry_after=retry_after)
    return StorageUnavailable(f"Storage was unreachable while {what} ({type(exc).__name__}).")


def _is_disabled(exc: BaseException, detail: str) -> bool:
    error = getattr(exc, "error", None)
    inner = getattr(error, "innererror", None) or {}
    inner_code = inner.get("code") if isinstance(inner, dict) else None
    return inner_code == "SecretDisabled" or "disabled" in detail.lower()


def _retry_after_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(1, int(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
