from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.core.errors import ConfigurationError
from shared.core.host_limits import HOST_JSON, function_timeout_seconds
from shared.core.settings import Settings

from .conftest import BASE_ENV, CLIENT, TENANT, make_settings


def problems_of(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    return caught.value.problems


def test_valid_settings_and_derived_values() -> None:
    settings = make_settings()
    assert settings.tenant_id == TENANT
    assert settings.client_id == CLIENT
    assert settings.authority == f"https://127.0.0.1:8443/{TENANT}"
    assert settings.graph_scope == "https://127.0.0.1:8444/.default"
    assert settings.graph_base_url == "https://127.0.0.1:8444/v1.0"
    assert settings.api_audiences == (CLIENT, f"api://{CLIENT}")
    assert settings.key_vault_url == "https://127.0.0.1:8445/"
    assert settings.credential_mode == "keyvault"
    assert not settings.authority_is_microsoft_cloud


def test_defaults_are_the_public_cloud() -> None:
    env = {k: v for k, v in BASE_ENV.items() if k not in ("ENTRA_AUTHORITY_HOST", "GRAPH_ENDPOINT")}
    settings = Settings.from_env(env)
    assert settings.authority_host == "https://login.microsoftonline.com"
    assert settings.graph_scope == "https://graph.microsoft.com/.default"
    assert settings.authority_is_microsoft_cloud
    assert (
        settings.graph_timeout_seconds,
        settings.graph_retry_budget_seconds,
        settings.graph_max_retries,
    ) == (10.0, 30.0, 5)


def test_national_cloud_graph_scope_follows_the_endpoint() -> None:
    settings = make_settings(
        GRAPH_ENDPOINT="https://microsoftgraph.chinacloudapi.cn/",
        ENTRA_AUTHORITY_HOST="https://login.chinacloudapi.cn",
    )
    assert settings.graph_scope == "https://microsoftgraph.chinacloudapi.cn/.default"
    assert settings.authority_is_microsoft_cloud


def test_every_problem_is_reported_at_once_with_actionable_text() -> None:
    problems = problems_of({"GRAPH_ENDPOINT": "http://graph.example", "GRAPH_MAX_RETRIES": "many"})
    text = " ".join(problems)
    assert len(problems) == 6
    assert "ENTRA_TENANT_ID is missing: set it to your directory (tenant) ID, a GUID" in text
    assert "local.settings.json" in text and "Function App's configuration" in text
    assert "ENTRA_CLIENT_ID is missing" in text
    assert "KEY_VAULT_URL is missing" in text
    assert "ENTRA_CREDENTIAL_NAME is missing" in text
    assert "GRAPH_ENDPOINT 'http://graph.example' must be an https:// URL" in text
    assert "GRAPH_MAX_RETRIES 'many' is not a number: use a value from 0 to 10" in text


def test_configuration_error_message_lists_all_problems() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({})
    error = caught.value
    assert error.status == 500 and error.code == "configuration_error"
    assert all(problem in error.message for problem in error.problems)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("ENTRA_TENANT_ID", "contoso.onmicrosoft.com", "ENTRA_TENANT_ID is not a GUID"),
        ("ENTRA_CLIENT_ID", "not-a-guid", "ENTRA_CLIENT_ID is not a GUID"),
        ("ENTRA_AUTHORITY_HOST", "http://127.0.0.1:8443", "must be an https:// URL"),
        ("ENTRA_AUTHORITY_HOST", "https://login.microsoftonline.com/tenant", "remove the path"),
        ("GRAPH_ENDPOINT", "https://graph.microsoft.com/v1.0", "remove the path"),
        ("GRAPH_ENDPOINT", "https://user:pw@graph.microsoft.com", "must not contain user information"),
        ("GRAPH_ENDPOINT", "https://graph.microsoft.com:notaport", "is not a valid URL"),
        ("KEY_VAULT_URL", "http://kv.vault.azure.net/", "must be an https:// URL"),
        ("KEY_VAULT_URL", "https://kv.vault.azure.net/secrets/x", "vault URI only"),
        ("ENTRA_CREDENTIAL", "password", "ENTRA_CREDENTIAL is 'password'"),
        ("ENTRA_CREDENTIAL_NAME", "bad_name!", "is not a Key Vault secret name"),
        ("ENTRA_MANAGED_IDENTITY_CLIENT_ID", "abc", "ENTRA_MANAGED_IDENTITY_CLIENT_ID is not a GUID"),
        ("GRAPH_TIMEOUT_SECONDS", "0", "GRAPH_TIMEOUT_SECONDS is 0"),
        ("GRAPH_TIMEOUT_SECONDS", "nan", "GRAPH_TIMEOUT_SECONDS is nan"),
        ("GRAPH_RETRY_BUDGET_SECONDS", "-1", "GRAPH_RETRY_BUDGET_SECONDS is -1"),
        ("GRAPH_MAX_RETRIES", "2.5", "GRAPH_MAX_RETRIES '2.5' is not a number"),
        ("GRAPH_MAX_RETRIES", "11", "GRAPH_MAX_RETRIES is 11"),
        ("SHAREPOINT_SITE_URL", "http://contoso.sharepoint.com/sites/x", "must be an https:// URL"),
    ],
)
def test_invalid_values_are_rejected(name: str, value: str, fragment: str) -> None:
    problems = problems_of({**BASE_ENV, name: value})
    assert len(problems) == 1
    assert fragment in problems[0]


def test_client_id_never_comes_from_azure_client_id() -> None:
    env = {k: v for k, v in BASE_ENV.items() if k != "ENTRA_CLIENT_ID"}
    env["AZURE_CLIENT_ID"] = CLIENT
    problems = problems_of(env)
    assert any(p.startswith("ENTRA_CLIENT_ID is missing") for p in problems)


def test_blank_values_count_as_unset_and_values_are_normalised() -> None:
    settings = make_settings(
        ENTRA_MANAGED_IDENTITY_CLIENT_ID="  ",
        SHAREPOINT_SITE_URL="",
        ENTRA_TENANT_ID=f"  {TENANT.upper()} ",
        GRAPH_ENDPOINT="https://GRAPH.microsoft.com:443/",
        KEY_VAULT_URL="https://My-Vault.vault.azure.net",
    )
    assert settings.managed_identity_client_id is None
    assert settings.sharepoint_site_url is None
    assert settings.tenant_id == TENANT
    assert settings.graph_endpoint == "https://graph.microsoft.com"
    assert settings.key_vault_url == "https://my-vault.vault.azure.net/"


def test_managed_identity_mode_needs_no_vault() -> None:
    env = {k: v for k, v in BASE_ENV.items() if k not in ("KEY_VAULT_URL", "ENTRA_CREDENTIAL_NAME")}
    settings = Settings.from_env(
        {
            **env,
            "ENTRA_CREDENTIAL": "managed-identity",
            "ENTRA_MANAGED_IDENTITY_CLIENT_ID": "44444444-4444-4444-4444-444444444444",
        }
    )
    assert settings.credential_mode == "managed-identity"
    assert settings.managed_identity_client_id == "44444444-4444-4444-4444-444444444444"


def test_local_tenant_env_file_works_unchanged() -> None:
    """The emulator's env file carries extra keys (callers, CA bundles...) that must simply be ignored."""
    env = {
        **BASE_ENV,
        "ENTRA_CERTIFICATE_CREDENTIAL_NAME": "app-certificate",
        "SHAREPOINT_SITE_URL": "https://127.0.0.1:8446/sites/demo",
        "IDENTITY_ENDPOINT": "https://127.0.0.1:8448/msi/token",
        "IDENTITY_HEADER": "xyz",
        "REQUESTS_CA_BUNDLE": "/tmp/ca.pem",
        "SSL_CERT_FILE": "/tmp/ca.pem",
        "EMULATOR_URL": "https://127.0.0.1:8443",
        "CALLER_CLIENT_ID": "55555555-5555-5555-5555-555555555555",
        "CALLER_CLIENT_SECRET": "s",
        "DEMO_USER": "x",
    }
    settings = Settings.from_env(env)
    assert settings.sharepoint_site_url == "https://127.0.0.1:8446/sites/demo"


def test_storage_connection_is_not_in_repr() -> None:
    settings = make_settings(AzureWebJobsStorage="DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0")
    assert settings.storage_connection is not None
    assert "AccountKey" not in repr(settings)


def test_settings_are_frozen() -> None:
    settings = make_settings()
    with pytest.raises(AttributeError):
        settings.tenant_id = "x"  # type: ignore[misc]


# -- the retry policy against the host's limits -----------------------------------------------------------


def host_json(tmp_path: Path, content: object) -> Path:
    path = tmp_path / "host.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def test_the_repository_host_json_is_read() -> None:
    assert json.loads(HOST_JSON.read_text())["functionTimeout"] == "00:05:00"
    assert function_timeout_seconds(HOST_JSON) == 300.0


@pytest.mark.parametrize(
    ("content", "seconds"),
    [
        ({"functionTimeout": "00:05:00"}, 300.0),
        ({"functionTimeout": "00:02:30"}, 150.0),
        ({"functionTimeout": "1.00:00:00"}, 86400.0),
        ({"functionTimeout": "00:10:00.500"}, 600.0),
        ({"functionTimeout": "00:01"}, 60.0),  # hh:mm, as .NET's TimeSpan reads it
        ({"functionTimeout": "2"}, 172800.0),  # a bare number is days
        ({"functionTimeout": "-1"}, None),  # unbounded
        ({"version": "2.0"}, None),  # the plan's default applies, and it exceeds 230 s
        ({"functionTimeout": 300}, None),
        ("not json", None),
        ([1, 2], None),
    ],
)
def test_function_timeout_is_parsed_from_host_json(
    tmp_path: Path, content: object, seconds: float | None
) -> None:
    assert function_timeout_seconds(host_json(tmp_path, content)) == seconds
    assert function_timeout_seconds(tmp_path / "absent.json") is None


@pytest.mark.parametrize(
    ("timeout", "budget"),
    [("120", "0"), ("10", "210"), ("60", "120"), ("100", "30")],
)
def test_a_retry_policy_that_could_outlast_the_230_s_http_limit_is_refused(timeout: str, budget: str) -> None:
    problems = problems_of(
        {**BASE_ENV, "GRAPH_TIMEOUT_SECONDS": timeout, "GRAPH_RETRY_BUDGET_SECONDS": budget}
    )
    [problem] = problems
    worst = float(budget) + 2 * float(timeout)
    assert f"= {worst:g} s" in problem and "Azure's 230 s HTTP response limit" in problem
    assert "GRAPH_RETRY_BUDGET_SECONDS + 2 x GRAPH_TIMEOUT_SECONDS under 230" in problem


def test_the_largest_policy_under_the_limit_is_accepted() -> None:
    settings = make_settings(GRAPH_TIMEOUT_SECONDS="50", GRAPH_RETRY_BUDGET_SECONDS="129")
    assert settings.graph_retry_budget_seconds + 2 * settings.graph_timeout_seconds < 230


def test_a_shorter_function_timeout_is_the_limit(tmp_path: Path) -> None:
    short = host_json(tmp_path, {"functionTimeout": "00:01:00"})
    env = {**BASE_ENV, "GRAPH_TIMEOUT_SECONDS": "10", "GRAPH_RETRY_BUDGET_SECONDS": "45"}
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env, host_json=short)
    [problem] = caught.value.problems
    assert "host.json functionTimeout (60 s)" in problem
    assert (
        "with this timeout, a budget below 40" in problem
        and "with this budget, a timeout below 7.5" in problem
    )
    assert Settings.from_env({**env, "GRAPH_RETRY_BUDGET_SECONDS": "39"}, host_json=short)
    assert Settings.from_env(env, host_json=None)  # the 230 s limit alone


def test_the_defaults_leave_room_under_every_limit() -> None:
    settings = make_settings()
    assert settings.graph_retry_budget_seconds + 2 * settings.graph_timeout_seconds == 50
