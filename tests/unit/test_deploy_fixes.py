"""Two app-side fixes from the deployment review (issue 21): a client secret stored with a trailing newline
is stripped (with a warning that never shows the secret), and identity-based storage derives its endpoints
with the storage suffix of the configured cloud instead of always core.windows.net."""

from __future__ import annotations

import logging

import pytest

from shared.core.errors import ConfigurationError
from shared.identity.credentials import credential_from_secret
from shared.storage.clients import service_uri

from .conftest import make_settings

SECRET = "Abc8Q~s3cr3t.value_with-all~the.chars"


@pytest.mark.parametrize("stored", [SECRET + "\n", SECRET + "\r\n", " " + SECRET + " \n", "\t" + SECRET])
def test_whitespace_around_a_client_secret_is_stripped_with_a_warning(
    stored: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.identity.credentials"):
        credential = credential_from_secret(
            stored, "text/plain", version="v1", what="secret 'x' in Key Vault"
        )
    assert credential.kind == "secret"
    assert credential.msal_credential == SECRET
    (record,) = caplog.records
    assert "stripped" in record.getMessage()
    assert SECRET not in caplog.text and "s3cr3t" not in caplog.text, "the secret never reaches the log"


def test_a_clean_client_secret_is_taken_as_is_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.identity.credentials"):
        credential = credential_from_secret(SECRET, None)
    assert credential.msal_credential == SECRET
    assert not caplog.records


def test_a_whitespace_only_client_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="only whitespace"):
        credential_from_secret(" \n", "text/plain", what="secret 'x' in Key Vault")


@pytest.mark.parametrize(
    ("authority", "suffix"),
    [
        ("https://login.microsoftonline.com", "core.windows.net"),
        ("https://login.microsoftonline.us", "core.usgovcloudapi.net"),
        ("https://login.chinacloudapi.cn", "core.chinacloudapi.cn"),
    ],
)
def test_storage_endpoints_use_the_clouds_suffix(authority: str, suffix: str) -> None:
    settings = make_settings(ENTRA_AUTHORITY_HOST=authority, AzureWebJobsStorage__accountName="stgraphfn")
    assert service_uri(settings.storage, "table") == f"https://stgraphfn.table.{suffix}"
    assert service_uri(settings.storage, "queue") == f"https://stgraphfn.queue.{suffix}"


def test_an_explicit_service_uri_wins_over_the_suffix() -> None:
    settings = make_settings(
        ENTRA_AUTHORITY_HOST="https://login.microsoftonline.us",
        AzureWebJobsStorage__accountName="stgraphfn",
        AzureWebJobsStorage__blobServiceUri="https://stgraphfn.blob.core.usgovcloudapi.net/",
    )
    assert service_uri(settings.storage, "blob").startswith("https://stgraphfn.blob.core.usgovcloudapi.net")


def test_a_microsoft_cloud_without_a_known_suffix_asks_for_explicit_uris() -> None:
    settings = make_settings(
        ENTRA_AUTHORITY_HOST="https://login.sovcloud-identity.fr",
        AzureWebJobsStorage__accountName="stgraphfn",
    )
    with pytest.raises(ConfigurationError, match="AzureWebJobsStorage__blobServiceUri"):
        service_uri(settings.storage, "blob")


def test_the_local_tenant_keeps_the_public_suffix() -> None:
    settings = make_settings(AzureWebJobsStorage__accountName="stgraphfn")  # a loopback authority
    assert service_uri(settings.storage, "blob") == "https://stgraphfn.blob.core.windows.net"
