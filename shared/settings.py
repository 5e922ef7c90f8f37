"""Application settings: read once from the environment, validated at start, frozen afterwards.

Every setting is documented in ``docs/settings.md`` and has a sample value in ``local.settings.sample.json``.
Validation collects *all* problems and raises one :class:`~shared.errors.ConfigurationError`, each problem
saying what to set and where, so a broken deployment is fixed in one round trip.

The Graph timeout and retry budget are also checked together against the host's limits: the retry policy
alone must never let one Graph call outlast Azure's 230 s HTTP response limit or host.json's
``functionTimeout`` (:func:`check_retry_bounds`).

This module uses only the standard library: it is imported when ``function_app`` is indexed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from shared.errors import ConfigurationError
from shared.patterns import is_guid
from shared.retry_policy import worst_case_call_seconds

CredentialMode = Literal["keyvault", "managed-identity"]
CREDENTIAL_MODES: tuple[CredentialMode, ...] = ("keyvault", "managed-identity")

DEFAULT_AUTHORITY_HOST = "https://login.microsoftonline.com"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"

#: Entra authority hosts of Microsoft's clouds (the set MSAL treats as well known). For any other host,
#: e.g. a local emulator on 127.0.0.1, instance discovery against login.microsoftonline.com must be off.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.sovcloud-identity.fr",
        "login.sovcloud-identity.de",
        "login.sovcloud-identity.sg",
    }
)

_WHERE = "in local.settings.json (locally) or the Function App's configuration (in Azure)"
# Key Vault secret names: 1-127 characters, alphanumerics and dashes.
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")

#: Azure's front end ends any HTTP request after 230 s, whatever functionTimeout says ("Function app timeout
#: duration", Azure Functions scale and hosting docs).
HTTP_RESPONSE_LIMIT_SECONDS = 230.0
#: The app's host.json, read for ``functionTimeout`` (the Functions host runs from the app root).
HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
# host.json functionTimeout: a .NET TimeSpan, [d.]hh:mm[:ss[.fffffff]] or a bare number of days (as the
# host parses it: "00:01" is one minute); "-1" means unbounded (Premium, Dedicated).
_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.\d{1,7})?)?|(\d+)")

_N = TypeVar("_N", int, float)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Validated, immutable application settings. Build with :meth:`from_env`.

    Attributes mirror the environment variables documented in ``docs/settings.md``. URLs are normalised
    (lower-case scheme and host, no trailing slash except ``key_vault_url``, which keeps exactly one).
    """

    tenant_id: str
    client_id: str
    authority_host: str = DEFAULT_AUTHORITY_HOST
    credential_mode: CredentialMode = "keyvault"
    key_vault_url: str | None = None
    credential_name: str | None = None
    managed_identity_client_id: str | None = None
    graph_endpoint: str = DEFAULT_GRAPH_ENDPOINT
    sharepoint_site_url: str | None = None
    storage_connection: str | None = dataclasses.field(default=None, repr=False)
    graph_timeout_seconds: float = 10.0
    graph_retry_budget_seconds: float = 30.0
    graph_max_retries: int = 5

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, host_json: Path | None = HOST_JSON
    ) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``); ``host_json`` gives ``functionTimeout``
        (None: check against the 230 s HTTP limit only).

        Empty or whitespace-only values count as unset. Raises:
            ConfigurationError: listing every problem found, each with the fix.
        """
        source = os.environ if env is None else env
        reader = _Reader(source)
        tenant_id = reader.guid("ENTRA_TENANT_ID", "your directory (tenant) ID")
        client_id = reader.guid("ENTRA_CLIENT_ID", "the application (client) ID of this app's registration")
        authority_host = reader.origin("ENTRA_AUTHORITY_HOST", DEFAULT_AUTHORITY_HOST)
        mode_raw = (reader.get("ENTRA_CREDENTIAL") or "keyvault").lower()
        credential_mode: CredentialMode = "keyvault"
        if mode_raw == "managed-identity":
            credential_mode = "managed-identity"
        elif mode_raw != "keyvault":
            reader.problem(
                f"ENTRA_CREDENTIAL is '{mode_raw}': set it to 'keyvault' (the client secret or certificate "
                "is read from Key Vault) or 'managed-identity' (secretless federated credential)"
            )
        key_vault_url = reader.vault_url("KEY_VAULT_URL", required=credential_mode == "keyvault")
        credential_name = reader.get("ENTRA_CREDENTIAL_NAME")
        if credential_mode == "keyvault":
            if credential_name is None:
                reader.problem(
                    "ENTRA_CREDENTIAL_NAME is missing: set it to the name of the Key Vault secret that holds "
                    f"this app's client secret or certificate, {_WHERE}"
                )
            elif not _SECRET_NAME.fullmatch(credential_name):
                reader.problem(
                    f"ENTRA_CREDENTIAL_NAME '{credential_name}' is not a Key Vault secret name: use 1-127 "
                    "letters, digits and dashes"
                )
        mi_client_id = reader.guid(
            "ENTRA_MANAGED_IDENTITY_CLIENT_ID",
            "the client ID of the user-assigned managed identity (leave empty for system-assigned)",
            required=False,
        )
        graph_endpoint = reader.origin("GRAPH_ENDPOINT", DEFAULT_GRAPH_ENDPOINT)
        sharepoint = reader.https_url("SHAREPOINT_SITE_URL")
        settings = cls(
            tenant_id=(tenant_id or "").lower(),
            client_id=(client_id or "").lower(),
            authority_host=authority_host,
            credential_mode=credential_mode,
            key_vault_url=key_vault_url,
            credential_name=credential_name,
            managed_identity_client_id=mi_client_id.lower() if mi_client_id else None,
            graph_endpoint=graph_endpoint,
            sharepoint_site_url=sharepoint,
            storage_connection=reader.get("AzureWebJobsStorage"),
            graph_timeout_seconds=reader.number("GRAPH_TIMEOUT_SECONDS", 10.0, float, 1, 120),
            graph_retry_budget_seconds=reader.number("GRAPH_RETRY_BUDGET_SECONDS", 30.0, float, 0, 300),
            graph_max_retries=reader.number("GRAPH_MAX_RETRIES", 5, int, 0, 10),
        )
        limit = check_retry_bounds(
            settings.graph_timeout_seconds,
            settings.graph_retry_budget_seconds,
            function_timeout_seconds(host_json) if host_json is not None else None,
        )
        if limit is not None:
            reader.problem(limit)
        if reader.problems:
            raise ConfigurationError(reader.problems)
        return settings

    @property
    def authority(self) -> str:
        """The tenant's Entra authority, ``{ENTRA_AUTHORITY_HOST}/{ENTRA_TENANT_ID}``."""
        return f"{self.authority_host}/{self.tenant_id}"

    @property
    def authority_is_microsoft_cloud(self) -> bool:
        """True for Microsoft's own authority hosts; False for anything else (e.g. a local tenant)."""
        return (urlsplit(self.authority_host).hostname or "") in MICROSOFT_AUTHORITY_HOSTS

    @property
    def graph_scope(self) -> str:
        """App-only scope for Graph. National clouds need their own Graph host, hence derived, not fixed."""
        return f"{self.graph_endpoint}/.default"

    @property
    def graph_base_url(self) -> str:
        """Root of Graph v1.0 calls, ``{GRAPH_ENDPOINT}/v1.0``."""
        return f"{self.graph_endpoint}/v1.0"

    @property
    def api_audiences(self) -> tuple[str, str]:
        """Audiences accepted in callers' tokens: the client id (v2 tokens) and the ``api://`` URI."""
        return (self.client_id, f"api://{self.client_id}")


def function_timeout_seconds(host_json: Path) -> float | None:
    """host.json's ``functionTimeout`` in seconds; None when the file or the value is absent, unbounded
    (``-1``) or unreadable (the 230 s HTTP limit then applies alone; it is below every plan's default)."""
    try:
        value = json.loads(host_json.read_text(encoding="utf-8")).get("functionTimeout")
    except (OSError, ValueError, AttributeError):
        return None
    match = _TIMESPAN.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    days, hours, minutes, seconds, whole_days = (int(part or 0) for part in match.groups())
    return float((((days + whole_days) * 24 + hours) * 60 + minutes) * 60 + seconds)


def check_retry_bounds(timeout: float, budget: float, function_timeout: float | None) -> str | None:
    """The problem, if any, with GRAPH_TIMEOUT_SECONDS and GRAPH_RETRY_BUDGET_SECONDS together: the longest
    one Graph call can take (:func:`~shared.retry_policy.worst_case_call_seconds`, ``budget + 2 x timeout``)
    must stay under both Azure's 230 s HTTP response limit and host.json's ``functionTimeout``."""
    limit, name = HTTP_RESPONSE_LIMIT_SECONDS, "Azure's 230 s HTTP response limit"
    if function_timeout is not None and function_timeout < limit:
        limit, name = function_timeout, f"host.json functionTimeout ({function_timeout:g} s)"
    worst = worst_case_call_seconds(timeout, budget)
    if worst < limit:
        return None
    fixes = [f"keep GRAPH_RETRY_BUDGET_SECONDS + 2 x GRAPH_TIMEOUT_SECONDS under {limit:g}"]
    if limit - 2 * timeout > 0:
        fixes.append(f"with this timeout, a budget below {limit - 2 * timeout:g}")
    if (limit - budget) / 2 > 1:
        fixes.append(f"with this budget, a timeout below {(limit - budget) / 2:g}")
    return (
        f"GRAPH_RETRY_BUDGET_SECONDS ({budget:g}) + 2 x GRAPH_TIMEOUT_SECONDS ({timeout:g}) = {worst:g} s, "
        f"the longest one Graph call may take with its retries, reaches {name}, so callers could be cut off "
        f"before the app answers: {'; '.join(fixes)} ({_WHERE})"
    )


class _Reader:
    """Reads and checks raw values, collecting problems instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self.problems: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def get(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def guid(self, name: str, meaning: str, *, required: bool = True) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                self.problem(f"{name} is missing: set it to {meaning}, a GUID, {_WHERE}")
            return None
        if not is_guid(value):
            self.problem(
                f"{name} is not a GUID: set it to {meaning}, e.g. 00000000-0000-0000-0000-000000000000"
            )
            return None
        return value

    def origin(self, name: str, default: str) -> str:
        """An https origin (scheme, host, optional port), no path; returned without trailing slash."""
        value = self.get(name) or default
        parts = self._parse_https(name, value)
        if parts is None:
            return default
        if parts.path.strip("/") or parts.query or parts.fragment:
            self.problem(
                f"{name} '{value}' must be only scheme, host and optional port (e.g. {default}); "
                "remove the path"
            )
            return default
        return _origin_of(parts.hostname or "", parts.port)

    def vault_url(self, name: str, *, required: bool) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                self.problem(
                    f"{name} is missing: set it to the vault URI, e.g. https://my-vault.vault.azure.net/, "
                    f"{_WHERE} (required when ENTRA_CREDENTIAL=keyvault)"
                )
            return None
        parts = self._parse_https(name, value)
        if parts is None:
            return None
        if parts.path.strip("/") or parts.query or parts.fragment:
            self.problem(
                f"{name} '{value}' must be the vault URI only, e.g. https://my-vault.vault.azure.net/"
            )
            return None
        return _origin_of(parts.hostname or "", parts.port) + "/"

    def https_url(self, name: str) -> str | None:
        value = self.get(name)
        if value is None:
            return None
        parts = self._parse_https(name, value)
        if parts is None:
            return None
        return value.rstrip("/")

    def _parse_https(self, name: str, value: str) -> _Split | None:
        try:
            parts = urlsplit(value)
            port = parts.port  # raises ValueError for a non-numeric or out-of-range port
        except ValueError:
            self.problem(f"{name} '{value}' is not a valid URL")
            return None
        if parts.scheme.lower() != "https" or not parts.hostname:
            self.problem(f"{name} '{value}' must be an https:// URL with a host name")
            return None
        if parts.username or parts.password:
            self.problem(f"{name} must not contain user information")
            return None
        return _Split(parts.hostname.lower(), port, parts.path, parts.query, parts.fragment)

    def number(self, name: str, default: _N, kind: Callable[[str], _N], low: float, high: float) -> _N:
        raw = self.get(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            self.problem(f"{name} '{raw}' is not a number: use a value from {low:g} to {high:g}")
            return default
        if (isinstance(value, float) and not math.isfinite(value)) or not low <= value <= high:
            self.problem(f"{name} is {raw}: use a value from {low:g} to {high:g}")
            return default
        return value


@dataclasses.dataclass(frozen=True)
class _Split:
    hostname: str
    port: int | None
    path: str
    query: str
    fragment: str


def _origin_of(hostname: str, port: int | None) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname  # IPv6 literals keep their brackets
    return f"https://{host}" if port in (None, 443) else f"https://{host}:{port}"
