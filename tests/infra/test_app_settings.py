"""The app settings infra/ deploys are every setting the code reads in production (shared/core/settings.py
SETTING_NAMES, imported, never copied) except a documented list of deliberate omissions, plus the Functions
host's own; none is stale. A setting added to SETTING_NAMES fails here until infra decides about it."""

from __future__ import annotations

import json

import pytest

from shared.core.errors import ConfigurationError
from shared.core.settings import SETTING_NAMES, Settings
from tests.infra import bicep

#: Settings the code reads that the Bicep deliberately leaves unset, each with the reason.
DELIBERATELY_UNSET: dict[str, str] = {
    "AzureWebJobsStorage": "a connection string needs shared-key access, which the account disables; storage "
    "is identity-based (AzureWebJobsStorage__accountName + service URIs + __credential + __clientId)",
    "WEBSITE_TIME_ZONE": "the platform's timer zone: unset means UTC, as Azure runs timers; an operator who "
    "wants the report's day in a local zone sets it (the host reads it too)",
}

#: Settings an operator tunes: main.bicep parameters (azd env), empty by default (the code's default), never
#: portal edits, because the appsettings resource replaces the whole set on every provision.
TUNABLE = {
    "GRAPH_ENDPOINT": "graphEndpoint",
    "GRAPH_TIMEOUT_SECONDS": "graphTimeoutSeconds",
    "GRAPH_RETRY_BUDGET_SECONDS": "graphRetryBudgetSeconds",
    "GRAPH_MAX_RETRIES": "graphMaxRetries",
    "SESSION_IDLE_MINUTES": "sessionIdleMinutes",
    "SESSION_MAX_AGE_HOURS": "sessionMaxAgeHours",
    "MAILBOX_SCOPE_CACHE_SECONDS": "mailboxScopeCacheSeconds",
    "REPORT_TOP_DEPARTMENTS": "reportTopDepartments",
}

#: The Functions host's own settings (not read by the app's code), with why each is there.
HOST_SETTINGS: dict[str, str] = {
    "AzureWebJobsStorage__credential": "identity-based host storage ('managedidentity')",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "where telemetry goes",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Entra-authenticated telemetry (local auth is disabled)",
}


def test_every_production_setting_is_set_or_deliberately_unset() -> None:
    deployed = set(bicep.app_settings())
    missing = set(SETTING_NAMES) - deployed - set(DELIBERATELY_UNSET)
    assert not missing, (
        f"settings the code reads that infra/ neither sets nor lists as unset: {sorted(missing)}"
    )


def test_no_stale_or_unknown_app_setting() -> None:
    deployed = set(bicep.app_settings())
    unknown = deployed - set(SETTING_NAMES) - set(HOST_SETTINGS)
    assert not unknown, f"app settings nothing reads: {sorted(unknown)}"
    assert set(HOST_SETTINGS) <= deployed


def test_the_omission_list_is_current() -> None:
    assert set(DELIBERATELY_UNSET) <= set(SETTING_NAMES), "a reason for a setting the code no longer reads"
    assert not set(DELIBERATELY_UNSET) & set(bicep.app_settings()), "listed as unset, but set"
    assert all(len(reason) > 20 for reason in DELIBERATELY_UNSET.values())


def test_every_app_setting_comes_from_a_parameter_not_the_portal() -> None:
    """A setting changed in the portal disappears on the next `azd provision` (the appsettings resource
    replaces the set). Each tunable is a main.bicep parameter, mapped from an azd variable of the setting's
    own name, empty (the code's default) unless set."""
    settings = bicep.app_settings()
    main = bicep.parse(bicep.MAIN)
    tuning = bicep.body(main["modules"]["appSettings"])["params"]["tuning"]
    mapped = json.loads((bicep.INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    for setting, parameter in TUNABLE.items():
        assert setting in SETTING_NAMES
        assert bicep.accessor(settings[setting])[0] == "tuning", setting
        key = bicep.accessor(settings[setting])[1]
        assert tuning[key] == parameter, setting
        assert main["parameters"][parameter]["default"] == "", parameter
        assert mapped[parameter]["value"] == "${" + setting + "=}", parameter


def test_storage_endpoints_come_from_the_account_not_a_suffix() -> None:
    """`__accountName` alone means core.windows.net to the host and the app: wrong in a national cloud. The
    service URIs are the account's own endpoints (the cloud's suffix)."""
    settings = bicep.app_settings()
    for service in ("blob", "queue", "table"):
        value = settings[f"AzureWebJobsStorage__{service}ServiceUri"]
        assert bicep.accessor(value) == ["storage", f"{service}Endpoint"]
    storage = bicep.body(bicep.parse(bicep.MAIN)["modules"]["appSettings"])["params"]["storage"]
    for service in ("blob", "queue", "table"):
        assert bicep.accessor(storage[f"{service}Endpoint"]) == ["storage", "outputs", f"{service}Endpoint"]


def _defaults() -> dict[str, object]:
    return dict(Settings._field_defaults)


def test_the_names_bicep_creates_are_the_names_the_code_uses() -> None:
    names = bicep.variables(bicep.MAIN)
    defaults = _defaults()
    assert names["sessionTable"] == defaults["session_table"]
    assert names["authFlowTable"] == defaults["auth_flow_table"]
    assert names["auditTable"] == defaults["audit_table"]
    assert names["tenantsTable"] == defaults["tenants_table"]
    assert names["reportContainer"] == defaults["report_container"]
    assert names["reportQueue"] == defaults["report_queue"]
    storage = bicep.body(bicep.parse(bicep.MAIN)["modules"]["storage"])["params"]
    assert names["notificationTable"] == defaults["notification_table"]
    assert names["mailNotificationQueue"] == defaults["mail_notification_queue"]
    assert names["mailEventsQueue"] == defaults["mail_events_queue"]
    assert storage["tableNames"] == [
        "sessionTable",
        "authFlowTable",
        "auditTable",
        "tenantsTable",
        "notificationTable",
    ]
    assert storage["containerNames"] == ["reportContainer"]
    # The host moves a message that failed maxDequeueCount times to `<queue>-poison`.
    assert storage["queueNames"] == [
        "reportQueue",
        "${reportQueue}-poison",
        "mailNotificationQueue",
        "${mailNotificationQueue}-poison",
        "mailEventsQueue",
    ]
    parameters = bicep.parse(bicep.MAIN)["parameters"]
    assert parameters["sessionKeyName"]["default"] == defaults["session_key_name"]
    assert parameters["reportSchedule"]["default"] == defaults["report_schedule"]


def _azure_environment(credential: str) -> dict[str, str]:
    """What the app sees in Azure with main.bicep's defaults (placeholders for generated names)."""
    client_id = "11111111-2222-3333-4444-555555555555"
    environment = {
        "AzureWebJobsStorage__credential": "managedidentity",
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={client_id};Authorization=AAD",
        "ENTRA_TENANT_ID": "66666666-7777-8888-9999-000000000000",
        "ENTRA_CLIENT_ID": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "ENTRA_TENANCY": "single",
        "TENANTS_TABLE": "tenants",
        # environment().authentication.loginEndpoint keeps its trailing slash.
        "ENTRA_AUTHORITY_HOST": "https://login.microsoftonline.com/",
        "ENTRA_CREDENTIAL": credential,
        "ENTRA_CREDENTIAL_NAME": "graph-functions-credential" if credential == "keyvault" else "",
        "KEY_VAULT_URL": "https://kv-abcdefghijklm.vault.azure.net/",
        "ENTRA_MANAGED_IDENTITY_CLIENT_ID": client_id,
        "GRAPH_ENDPOINT": "",
        "SHAREPOINT_SITE_URL": "",
        "AzureWebJobsStorage__accountName": "stabcdefghijklm",
        "AzureWebJobsStorage__clientId": client_id,
        # primaryEndpoints keep their trailing slash.
        "AzureWebJobsStorage__blobServiceUri": "https://stabcdefghijklm.blob.core.windows.net/",
        "AzureWebJobsStorage__queueServiceUri": "https://stabcdefghijklm.queue.core.windows.net/",
        "AzureWebJobsStorage__tableServiceUri": "https://stabcdefghijklm.table.core.windows.net/",
        "GRAPH_TIMEOUT_SECONDS": "",
        "GRAPH_RETRY_BUDGET_SECONDS": "",
        "GRAPH_MAX_RETRIES": "",
        "PUBLIC_BASE_URL": "https://func-abcdefghijklm.azurewebsites.net",
        "SESSION_KEY_NAME": "graph-functions-session-key",
        "SESSION_TABLE": "sessions",
        "AUTH_FLOW_TABLE": "authflows",
        "SESSION_IDLE_MINUTES": "",
        "SESSION_MAX_AGE_HOURS": "",
        "AUDIT_TABLE": "mailaudit",
        "MAILBOX_SCOPE": "",
        "MAILBOX_SCOPE_CACHE_SECONDS": "",
        "REPORT_SCHEDULE": "0 0 6 * * *",
        "REPORT_CONTAINER": "reports",
        "REPORT_QUEUE": "report-runs",
        "REPORT_RECIPIENTS": "",
        "REPORT_SENDER": "",
        "REPORT_TOP_DEPARTMENTS": "",
        "API_ALLOWED_CLIENT_APPS": "",
        "SPA_CLIENT_ID": "",
        "MAIL_INGESTION_MODE": "off",
        "MAIL_EVENTS_QUEUE": "mail-events",
        "MAIL_NOTIFICATION_QUEUE": "mail-notifications",
        "NOTIFICATION_TABLE": "mailnotifications",
        "NOTIFICATION_BASE_URL": "",
        "NOTIFICATION_CERTIFICATE_NAME": "",
    }
    assert set(environment) == set(bicep.app_settings()), "keep this example in step with function-app.bicep"
    return environment


@pytest.mark.parametrize("credential", ["managed-identity", "keyvault"])
def test_the_deployed_settings_validate(credential: str) -> None:
    try:
        settings = Settings.from_env(_azure_environment(credential))
    except ConfigurationError as error:  # pragma: no cover - the message is the diagnosis
        pytest.fail(f"the app would refuse infra/'s settings: {error}")
    assert settings.credential_mode == credential
    assert settings.authority_host == "https://login.microsoftonline.com"
    assert settings.storage_account_name == "stabcdefghijklm"
    assert settings.key_vault_url is not None
    assert settings.storage_service_uris["table"].startswith("https://stabcdefghijklm.table.")
    assert settings.graph_endpoint == "https://graph.microsoft.com"
