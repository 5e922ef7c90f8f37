"""Settings of the sign-in, mailbox and report features, and the list of every setting the app reads."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from shared.core.errors import ConfigurationError
from shared.core.settings import DEFAULT_REPORT_SCHEDULE, SETTING_NAMES, Settings

from .conftest import BASE_ENV


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every name looked up."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.read.add(key)
        return self._values.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def problems_of(env: Mapping[str, str]) -> tuple[str, ...]:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    return caught.value.problems


def test_setting_names_lists_exactly_what_from_env_reads() -> None:
    env = RecordingEnv(BASE_ENV)
    Settings.from_env(env)
    assert env.read == set(SETTING_NAMES)
    assert len(SETTING_NAMES) == len(set(SETTING_NAMES))


def test_feature_defaults() -> None:
    settings = Settings.from_env(BASE_ENV)
    assert settings.public_base_url is None
    assert (settings.session_table, settings.auth_flow_table, settings.audit_table) == (
        "sessions",
        "authflows",
        "mailaudit",
    )
    assert (settings.session_idle_minutes, settings.session_max_age_hours) == (480, 24)
    assert settings.mailbox_scope is None  # default deny
    # The default documented in docs/settings.md (06:00 every day), not only the code's own constant.
    assert settings.report_schedule == DEFAULT_REPORT_SCHEDULE == "0 0 6 * * *"
    assert (settings.report_container, settings.report_queue) == ("reports", "report-runs")
    assert settings.report_recipients == () and settings.report_sender is None


def test_feature_values_are_parsed_and_normalised() -> None:
    settings = Settings.from_env(
        {
            **BASE_ENV,
            "PUBLIC_BASE_URL": "HTTPS://Graph-Functions.Contoso.com:443/",
            "MAILBOX_SCOPE": "6B1E0E8A-8B8E-4E64-9E2A-0B8C1A2D3E4F",
            "REPORT_RECIPIENTS": "a@contoso.com; b@contoso.com,",
            "REPORT_SENDER": "reports@contoso.com",
            "AzureWebJobsStorage__accountName": "graphfnstore",
            "AzureWebJobsStorage__blobServiceUri": "https://graphfnstore.blob.core.windows.net",
        }
    )
    assert settings.public_base_url == "https://graph-functions.contoso.com"
    assert settings.mailbox_scope == "6b1e0e8a-8b8e-4e64-9e2a-0b8c1a2d3e4f"
    assert settings.report_recipients == ("a@contoso.com", "b@contoso.com")
    assert settings.storage_account_name == "graphfnstore"
    assert settings.storage_service_uris == {"blob": "https://graphfnstore.blob.core.windows.net"}
    assert Settings.from_env({**BASE_ENV, "MAILBOX_SCOPE": "*"}).mailbox_scope == "*"
    assert Settings.from_env({**BASE_ENV, "PUBLIC_BASE_URL": "http://localhost:7071"}).public_base_url == (
        "http://localhost:7071"
    )


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("PUBLIC_BASE_URL", "http://app.contoso.com", "http only for localhost"),
        ("PUBLIC_BASE_URL", "https://app.contoso.com/sub", "remove the rest"),
        ("SESSION_TABLE", "my-sessions", "not an Azure table name"),
        ("AUDIT_TABLE", "1audit", "not an Azure table name"),
        ("REPORT_CONTAINER", "Reports", "not a storage container"),
        ("REPORT_QUEUE", "a--b", "not a storage container"),
        ("SESSION_IDLE_MINUTES", "1", "from 5 to 10080"),
        ("SESSION_MAX_AGE_HOURS", "0", "from 1 to 720"),
        ("SESSION_KEY_NAME", "bad_name", "not a Key Vault secret name"),
        ("MAILBOX_SCOPE", "report-readers", "object ID (a GUID)"),
        ("REPORT_SCHEDULE", "0 6 * * *", "six fields"),
        ("AzureWebJobsStorage__accountName", "Bad_Account", "storage account name"),
        ("MAIL_INGESTION_MODE", "push", "'webhook'"),
        ("MAIL_EVENTS_QUEUE", "Mail_Events", "not a storage container or queue name"),
        ("MAIL_NOTIFICATION_QUEUE", "a--b", "not a storage container or queue name"),
        ("NOTIFICATION_TABLE", "mail-notifications", "not an Azure table name"),
        ("NOTIFICATION_BASE_URL", "https://app.contoso.com/api", "remove the rest"),
    ],
)
def test_invalid_feature_values_are_rejected(name: str, value: str, fragment: str) -> None:
    assert any(fragment in problem for problem in problems_of({**BASE_ENV, name: value}))


def test_report_mail_needs_both_sender_and_recipients() -> None:
    problems = problems_of({**BASE_ENV, "REPORT_RECIPIENTS": "a@contoso.com"})
    assert any("go together" in problem for problem in problems)
    problems = problems_of(
        {**BASE_ENV, "REPORT_RECIPIENTS": "not-an-address", "REPORT_SENDER": "r@contoso.com"}
    )
    assert any("'not-an-address' is not an email address" in problem for problem in problems)


def test_mail_ingestion_is_off_by_default_and_reads_its_settings() -> None:
    default = Settings.from_env(BASE_ENV, host_json=None)
    assert (default.mail_ingestion_mode, default.mail_events_queue) == ("off", "mail-events")
    assert (default.mail_notification_queue, default.notification_table) == (
        "mail-notifications",
        "mailnotifications",
    )
    chosen = Settings.from_env(
        {**BASE_ENV, "MAIL_INGESTION_MODE": "Poll", "NOTIFICATION_BASE_URL": "https://hooks.contoso.com"},
        host_json=None,
    )
    assert chosen.mail_ingestion_mode == "poll"
    assert chosen.notifications.notification_base_url == "https://hooks.contoso.com"
