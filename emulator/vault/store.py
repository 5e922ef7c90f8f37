"""Key Vault data: secrets with versions, and the access rule (which identities may do what)."""

from __future__ import annotations

import datetime as dt
import secrets as _secrets
from dataclasses import dataclass, field

from emulator.clock import CLOCK
from emulator.vault.certificates import certificate_validity

UTC = dt.UTC


@dataclass(slots=True)
class SecretVersion:
    version: str
    value: str
    content_type: str | None
    enabled: bool
    created: dt.datetime
    updated: dt.datetime
    tags: dict[str, str] = field(default_factory=dict)
    not_before: dt.datetime | None = None
    expires: dt.datetime | None = None
    managed: bool = False  # certificate-backed
    key_id: str | None = None


@dataclass
class VaultStore:
    """One vault. ``access`` maps a principal object id to its secret permissions (get/list/set)."""

    name: str
    secrets: dict[str, list[SecretVersion]] = field(default_factory=dict)  # name -> versions, oldest first
    access: dict[str, set[str]] = field(default_factory=dict)
    #: lower-cased name -> the name as first created (names are case-insensitive, ids keep the case)
    names: dict[str, str] = field(default_factory=dict)

    def display_name(self, name: str) -> str:
        return self.names.get(name.lower(), name)

    def latest(self, name: str) -> SecretVersion | None:
        versions = self.secrets.get(name.lower())
        return versions[-1] if versions else None

    def version(self, name: str, version: str) -> SecretVersion | None:
        return next((v for v in self.secrets.get(name.lower(), []) if v.version == version), None)

    def set(
        self,
        name: str,
        value: str,
        content_type: str | None = None,
        *,
        tags: dict[str, str] | None = None,
        enabled: bool = True,
        managed: bool = False,
        key_id: str | None = None,
        expires: dt.datetime | None = None,
        not_before: dt.datetime | None = None,
    ) -> SecretVersion:
        """Create a new version (rotation never overwrites: the old versions stay readable).

        A certificate-backed (``managed``) version without explicit dates takes ``nbf``/``exp`` from
        its certificate's validity, as Key Vault mirrors them; ValueError when ``value`` holds none."""
        if managed and not_before is None and expires is None:
            not_before, expires = certificate_validity(value, content_type)
        now = CLOCK.now().replace(microsecond=0)
        item = SecretVersion(
            version=_secrets.token_hex(16),
            value=value,
            content_type=content_type,
            enabled=enabled,
            created=now,
            updated=now,
            tags=dict(tags or {}),
            managed=managed,
            key_id=key_id,
            expires=expires,
            not_before=not_before,
        )
        self.names.setdefault(name.lower(), name)
        self.secrets.setdefault(name.lower(), []).append(item)
        return item

    def allowed(self, principal_id: str, permission: str) -> bool:
        return permission in self.access.get(principal_id, set())
