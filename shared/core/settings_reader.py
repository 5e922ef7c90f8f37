"""Reading raw setting values: each reader checks one kind of value and collects problems instead of
stopping at the first, so :meth:`shared.core.settings.Settings.from_env` can report every problem at once."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from shared.core.patterns import is_guid
from shared.core.records import Record

WHERE = "in local.settings.json (locally) or the Function App's configuration (in Azure)"
# Azure Table names: 3-63 alphanumerics, starting with a letter. Container and queue names: 3-63 lower-case
# letters, digits and single dashes, starting and ending with a letter or digit.
_TABLE_NAME = r"^[A-Za-z][A-Za-z0-9]{2,62}$"
_CONTAINER_NAME = r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$"

# Key Vault secret names: 1-127 characters, alphanumerics and dashes.
_SECRET_NAME = r"^[0-9A-Za-z-]{1,127}$"  # noqa: S105 - the pattern of a vault secret name, not a secret

_N = TypeVar("_N", int, float)


class Reader:
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
                self.problem(f"{name} is missing: set it to {meaning}, a GUID, {WHERE}")
            return None
        if not is_guid(value):
            self.problem(
                f"{name} is not a GUID: set it to {meaning}, e.g. 00000000-0000-0000-0000-000000000000"
            )
            return None
        return value

    def secret_name(self, name: str, value: str) -> bool:
        """Whether ``value`` (of setting ``name``) is a Key Vault secret name; a problem if not."""
        if re.fullmatch(_SECRET_NAME, value):
            return True
        self.problem(f"{name} '{value}' is not a Key Vault secret name: use 1-127 letters, digits and dashes")
        return False

    def guid_list(self, name: str, meaning: str) -> tuple[str, ...]:
        """A comma-separated list of GUIDs (lower-cased); empty when unset."""
        values = tuple(part.strip().lower() for part in (self.get(name) or "").split(",") if part.strip())
        for value in values:
            if not is_guid(value):
                self.problem(f"{name}: '{value}' is not a GUID: list {meaning}, separated by commas")
        return tuple(value for value in values if is_guid(value))

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
        return origin_of(parts.hostname or "", parts.port)

    def vault_url(self, name: str, *, required: bool) -> str | None:
        value = self.get(name)
        if value is None:
            if required:
                self.problem(
                    f"{name} is missing: set it to the vault URI, e.g. https://my-vault.vault.azure.net/, "
                    f"{WHERE} (required when ENTRA_CREDENTIAL=keyvault)"
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
        return origin_of(parts.hostname or "", parts.port) + "/"

    def https_url(self, name: str) -> str | None:
        value = self.get(name)
        if value is None:
            return None
        parts = self._parse_https(name, value)
        if parts is None:
            return None
        return value.rstrip("/")

    def base_url(self, name: str) -> str | None:
        """The public origin the app is reached at (scheme, host, port; no path), for redirect URIs behind
        a reverse proxy. https, or http for a loopback host only (local development)."""
        value = self.get(name)
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            self.problem(f"{name} '{value}' is not a valid URL")
            return None
        host = (parts.hostname or "").lower()
        loopback = host in ("localhost", "127.0.0.1", "::1")
        if (
            parts.scheme.lower() not in ("https", "http")
            or not host
            or (parts.scheme.lower() == "http" and not loopback)
        ):
            self.problem(
                f"{name} '{value}' must be the https:// origin people reach the app at, e.g. "
                "https://graph-functions.contoso.com (http only for localhost)"
            )
            return None
        if parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password:
            self.problem(f"{name} '{value}' must be only scheme, host and optional port: remove the rest")
            return None
        scheme = parts.scheme.lower()
        shown = f"[{host}]" if ":" in host else host
        default_port = 443 if scheme == "https" else 80
        return f"{scheme}://{shown}" if port in (None, default_port) else f"{scheme}://{shown}:{port}"

    def table_name(self, name: str, default: str) -> str:
        value = self.get(name) or default
        if not re.fullmatch(_TABLE_NAME, value):
            self.problem(
                f"{name} '{value}' is not an Azure table name: use 3-63 letters and digits, starting with a "
                "letter"
            )
            return default
        return value

    def container_name(self, name: str, default: str) -> str:
        value = self.get(name) or default
        if not re.fullmatch(_CONTAINER_NAME, value):
            self.problem(
                f"{name} '{value}' is not a storage container or queue name: use 3-63 lower-case letters, "
                "digits and single dashes, starting and ending with a letter or digit"
            )
            return default
        return value

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


class _Split(Record):
    hostname: str
    port: int | None
    path: str
    query: str
    fragment: str


def origin_of(hostname: str, port: int | None) -> str:
    host = f"[{hostname}]" if ":" in hostname else hostname  # IPv6 literals keep their brackets
    return f"https://{host}" if port in (None, 443) else f"https://{host}:{port}"


def notification_certificate(reader: Reader, key_vault_url: str | None) -> str | None:
    """``NOTIFICATION_CERTIFICATE_NAME``: the Key Vault secret holding the certificate and private key (PEM)
    Graph encrypts rich notifications for; None (unset): basic notifications. It is read from
    ``KEY_VAULT_URL`` with the app's identity, so that must be set too."""
    name = reader.get("NOTIFICATION_CERTIFICATE_NAME")
    if name is None or not reader.secret_name("NOTIFICATION_CERTIFICATE_NAME", name):
        return None
    if key_vault_url is None:
        reader.problem(
            "NOTIFICATION_CERTIFICATE_NAME is set but KEY_VAULT_URL is not: the notification certificate is "
            f"read from Key Vault, so set KEY_VAULT_URL {WHERE}, or unset NOTIFICATION_CERTIFICATE_NAME for "
            "basic notifications"
        )
        return None
    return name
