"""The emulator's whole state in one object, shared by every service app.

Handlers are ``async def`` and run on one event loop; they never await between reading and mutating
the model, so the model needs no locks. Services keep their own stores (authorization codes, refresh
tokens, throttle buckets…) in ``state.stores`` under their name, and register a reset hook.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulator.clock import CLOCK
from emulator.config import PRODUCTION_SANS, EmulatorConfig
from emulator.directory.model import ClientCertificate, Directory, Mailbox, User
from emulator.directory.seed import (
    CERTIFICATE_NAME,
    CERTIFICATE_PEM_NAME,
    SECRET_NAME,
    SESSION_KEY_NAME,
    SeededIdentities,
    build_directory,
    build_mailbox,
    session_key_value,
)
from emulator.observe import Observatory
from emulator.pki.app_certificate import AppCertificate, load_or_create
from emulator.pki.signing_keys import KeyRing
from emulator.pki.tls import TlsMaterial, ensure_tls
from emulator.tenants.registry import TenantSlot, active
from emulator.tenants.seeding import seed_organizations
from emulator.token_service import TokenService
from emulator.vault.store import VaultStore


def _identity_header(state_dir: Path) -> str:
    """The managed-identity endpoint's anti-SSRF header, kept per state dir so that settings written from
    the env file (local.settings.json) stay valid across restarts of the local tenant."""
    path = state_dir / "identity-header"
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


@dataclass
class ThrottleSettings:
    """Graph throttling budgets, scalable through the control API so tests can trip them."""

    #: Identity and access resource units per 10 s per app+tenant; None = by tenant size as documented
    #: (S < 50 users: 3,500; M 50-500: 5,000; L > 500: 8,000).
    identity_units_per_10s: int | None = None
    mail_requests_per_10min: int = 10_000  # per app + mailbox
    mail_concurrency: int = 4
    mail_concurrency_scope: str = "mailbox"  # per app + mailbox (issue 7 item 10); "app" = newer doc

    def identity_budget(self, user_count: int) -> int:
        if self.identity_units_per_10s is not None:
            return self.identity_units_per_10s
        return 3_500 if user_count < 50 else 5_000 if user_count <= 500 else 8_000


@dataclass
class EmulatorState:
    config: EmulatorConfig
    tls: TlsMaterial
    keys: KeyRing
    app_certificate: AppCertificate
    #: The home tenant (Contoso, where Graph Functions is registered); ``directory``, ``tokens`` and
    #: ``mailboxes`` below read the organisation the current request is for (emulator.tenants.registry).
    home: TenantSlot = field(init=False)
    #: The other organisations by tenant id, and by verified domain (lower case).
    organizations: dict[str, TenantSlot] = field(default_factory=dict)
    organization_domains: dict[str, TenantSlot] = field(default_factory=dict)
    ids: SeededIdentities = field(init=False)
    vault: VaultStore = field(init=False)
    obs: Observatory = field(default_factory=Observatory)
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    identity_header: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    stores: dict[str, Any] = field(default_factory=dict)
    reset_hooks: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._seed()

    @classmethod
    def create(cls, config: EmulatorConfig) -> EmulatorState:
        state_dir = config.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        return cls(
            config=config,
            identity_header=_identity_header(state_dir),
            tls=ensure_tls(state_dir, PRODUCTION_SANS if config.production_hostnames else ()),
            keys=KeyRing(state_dir / "signing-keys.json"),
            app_certificate=load_or_create(state_dir / "apps" / "graph-functions.pem"),
        )

    @property
    def slot(self) -> TenantSlot:
        """The organisation the current request is served for (the home tenant unless one was chosen)."""
        return active() or self.home

    @property
    def directory(self) -> Directory:
        return self.slot.directory

    @property
    def tokens(self) -> TokenService:
        return self.slot.tokens

    @property
    def mailboxes(self) -> dict[str, Mailbox]:
        return self.slot.mailboxes

    def _seed(self) -> None:
        directory, self.ids = build_directory(self.config)
        self.home = TenantSlot(
            directory,
            TokenService(self.config, directory, self.keys),
            mail_seed=self.config.seed,
            admin=self.ids.admin,
            member=self.ids.member,
            mail_readers=self.ids.mail_readers,
        )
        cert = self.app_certificate
        now = CLOCK.now()
        self.ids.app.certificates.append(
            ClientCertificate(
                key_id=self.ids.app.object_id[:8] + "-cert",
                display_name="CN=graph-functions",
                cert_pem=cert.cert_pem.decode(),
                thumbprint_sha1=cert.sha1,
                thumbprint_sha256=cert.sha256,
                start=now - dt.timedelta(days=1),
                end=cert.cert.not_valid_after_utc,
            )
        )
        self.vault = self._seed_vault()
        seed_organizations(self)

    def _seed_vault(self) -> VaultStore:
        vault = VaultStore(name="kv-graph-functions")
        vault.set(SECRET_NAME, self.ids.app_secret, None, tags={"app": "graph-functions"})
        kid = f"{self.config.vault_origin}/keys/{CERTIFICATE_NAME}/"
        # Key Vault mirrors the certificate's validity to its secret; the dates are given rather than parsed
        # back out of the value at every reset.
        cert = self.app_certificate.cert
        validity = {"not_before": cert.not_valid_before_utc, "expires": cert.not_valid_after_utc}
        pfx = vault.set(
            CERTIFICATE_NAME,
            self.app_certificate.pfx_base64(),
            "application/x-pkcs12",
            managed=True,
            **validity,
        )
        pfx.key_id = kid + pfx.version
        pem = vault.set(
            CERTIFICATE_PEM_NAME,
            self.app_certificate.pem_bundle(),
            "application/x-pem-file",
            managed=True,
            **validity,
        )
        pem.key_id = f"{self.config.vault_origin}/keys/{CERTIFICATE_PEM_NAME}/{pem.version}"
        vault.set("disabled-secret", "you should never read this", None, enabled=False)
        session_key = session_key_value(self.config.seed)
        vault.set(SESSION_KEY_NAME, session_key, None, tags={"app": "graph-functions"})
        everything = {"get", "list", "set"}
        vault.access[self.ids.system_identity.sp_id] = set(everything)
        vault.access[self.ids.user_identity.sp_id] = set(everything)
        vault.access[self.ids.admin.id] = set(everything)
        return vault

    def mailbox(self, user: User) -> Mailbox | None:
        """The user's mailbox, generated on first access; None for users without one."""
        if not user.has_mailbox:
            return None
        box = self.mailboxes.get(user.id)
        if box is None:
            box = build_mailbox(self.slot.mail_seed, user, self.directory)
            self.mailboxes[user.id] = box
        return box

    def reset(self) -> None:
        """Back to the seeded tenant at real time: clock, directory, vault, mailboxes, logs, faults and
        service stores."""
        CLOCK.rewind()  # first: the reseeded vault and directory are dated by it
        self._seed()
        self.obs.reset()
        self.throttle = ThrottleSettings()
        for hook in self.reset_hooks:
            hook()
