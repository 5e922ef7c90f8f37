"""Session fixtures of the integration and fuzz suites (registered in ``tests/conftest.py``).

* ``local_tenant``: ONE local tenant for the session, 250 users (so listing spans 3 pages at top=100), trusted
  by this process (``LocalTenant.trust``). Tests that mutate it use ``tenant`` (function scope) which resets
  it afterwards. Tests that rotate its signing keys (which a reset does not undo) use ``tenant_factory``.
* ``app_hosts``: starts devhost processes serving the REAL repository app with a temp settings file built
  from a tenant's env file + Azurite (``azurite`` fixture of tests/devhost/fixtures.py).
* ``app_host``: the session host for read-only tests (client-secret mode).
* ``caller`` / ``norole_caller``: real msal client-credentials clients of the tenant's caller apps.
* ``evidence``: what the log scan needs: every host log, every token issued to this process, the secrets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devhost.azurite import Azurite
from tests.devhost.fixtures import DevHostProcess
from tests.support.apphost import (
    CERTIFICATE_PEM,
    CERTIFICATE_PFX,
    CLIENT_SECRET_NAME,
    HOST_LOGS,
    Caller,
    start_app_host,
    tenant_session,
)
from tests.support.tenant import LocalTenant, start_tenant, trusted_tenant

SESSION_USERS = 250


@dataclass
class Evidence:
    """Collected during the session, checked by tests/integration/test_log_scan.py."""

    logs: list[Path] = field(default_factory=list)
    # Never in a repr: a failing test prints its fixtures, and these must not reach a CI log.
    callers: list[Caller] = field(default_factory=list, repr=False)
    tokens: list[str] = field(default_factory=list, repr=False)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def all_tokens(self) -> set[str]:
        return set(self.tokens) | {token for caller in self.callers for token in caller.issued}

    def all_logs(self) -> list[Path]:
        """The logs collected here and every app host's log this process started (each once)."""
        return list(dict.fromkeys([*self.logs, *HOST_LOGS]))

    def dump(self, path: Path) -> None:
        """Write the evidence (log paths, every token, the secrets) for the session-end scan of parallel
        runs, readable by this user only (it holds the local tenant's secrets)."""
        data = {
            "logs": [str(p) for p in self.all_logs()],
            "tokens": sorted(self.all_tokens()),
            "secrets": self.secrets,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)

    @classmethod
    def merged(cls, paths: Iterable[Path]) -> Evidence:
        """The evidence of several :meth:`dump` files (one per xdist worker) as one."""
        merged = cls()
        for path in paths:
            data = json.loads(path.read_text())
            merged.logs.extend(Path(p) for p in data["logs"])
            merged.tokens.extend(data["tokens"])
            merged.secrets.update(data["secrets"])
        return merged


_EVIDENCE = Evidence()


@pytest.fixture(scope="session")
def evidence() -> Evidence:
    return _EVIDENCE


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set process environment variables for the block (azure-identity reads IDENTITY_* from there)."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def read_vault_secrets(tenant: LocalTenant, names: tuple[str, ...]) -> dict[str, str]:
    """Read vault entries the way the app does: SecretClient + the managed identity (real SDKs)."""
    from azure.identity import ManagedIdentityCredential
    from azure.keyvault.secrets import SecretClient

    mi = {key: tenant.env[key] for key in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
    with environment(mi):
        credential = ManagedIdentityCredential()
        client = SecretClient(
            tenant.env["KEY_VAULT_URL"],
            credential,
            verify_challenge_resource=False,  # a loopback vault is never under vault.azure.net
            connection_verify=tenant.ca_cert,
        )
        try:
            return {name: str(client.get_secret(name).value) for name in names}
        finally:
            client.close()
            credential.close()


def record_tenant_secrets(tenant: LocalTenant, evidence: Evidence) -> None:
    """Secrets that must never appear in a log: the app's credential (all forms), the callers' secrets."""
    session_key = tenant.env["SESSION_KEY_NAME"]
    values = read_vault_secrets(tenant, (CLIENT_SECRET_NAME, CERTIFICATE_PFX, CERTIFICATE_PEM, session_key))
    evidence.secrets[f"{tenant.port}:app client secret"] = values[CLIENT_SECRET_NAME]
    evidence.secrets[f"{tenant.port}:session key"] = values[session_key]
    evidence.secrets[f"{tenant.port}:app certificate PFX"] = values[CERTIFICATE_PFX]
    # The PEM's private key body (the certificate part is public information).
    key_pem = values[CERTIFICATE_PEM].split("-----END PRIVATE KEY-----")[0]
    key_body = "".join(line for line in key_pem.splitlines() if line and not line.startswith("-----"))
    evidence.secrets[f"{tenant.port}:app private key (PEM body)"] = key_body
    for prefix in ("CALLER", "CALLER_NOROLE"):
        evidence.secrets[f"{tenant.port}:{prefix} secret"] = tenant.env[f"{prefix}_CLIENT_SECRET"]
    for account in ("DEMO_ADMIN", "DEMO_USER"):
        evidence.secrets[f"{tenant.port}:{account} password"] = tenant.env[f"{account}_PASSWORD"]


@pytest.fixture(scope="session")
def local_tenant(tmp_path_factory: pytest.TempPathFactory, evidence: Evidence) -> Iterator[LocalTenant]:
    with trusted_tenant(tmp_path_factory.mktemp("tenant"), users=SESSION_USERS) as tenant:
        record_tenant_secrets(tenant, evidence)
        yield tenant


@pytest.fixture
def tenant(local_tenant: LocalTenant) -> Iterator[LocalTenant]:
    """The session tenant, reset to its seeded state after a test that mutates it (faults, budgets,
    lifetimes, secrets). Signing keys survive a reset: rotate them only on a ``tenant_factory`` tenant."""
    try:
        yield local_tenant
    finally:
        local_tenant.reset()


TenantFactory = Callable[[], LocalTenant]


@pytest.fixture
def tenant_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TenantFactory]:
    """Extra, disposable tenants (own state dir, own CA): talk to them with ``apphost.tenant_session``."""
    started: list[LocalTenant] = []

    def start() -> LocalTenant:
        tenant = start_tenant(tmp_path_factory.mktemp("own-tenant"), users=30)
        started.append(tenant)
        for prefix in ("CALLER", "CALLER_NOROLE"):
            _EVIDENCE.secrets[f"{tenant.port}:{prefix} secret"] = tenant.env[f"{prefix}_CLIENT_SECRET"]
        return tenant

    yield start
    for client in _EVIDENCE.callers:  # callers of these tenants hold keep-alive connections to them
        client.close()
    for tenant in started:
        tenant.stop()


class AppHosts:
    """Starts devhost processes serving the repository app; stops them at the end of the session."""

    def __init__(self, tmp: pytest.TempPathFactory, storage: str, evidence: Evidence) -> None:
        self._tmp = tmp
        self._storage = storage
        self._evidence = evidence
        self.hosts: list[DevHostProcess] = []

    def start(
        self,
        tenant: LocalTenant,
        name: str = "app",
        *,
        overrides: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        dev_clock: bool = False,
    ) -> DevHostProcess:
        workdir = self._tmp.mktemp(f"host-{name}")
        log_path = workdir / "devhost.log"
        self._evidence.logs.append(log_path)
        host = start_app_host(
            workdir, tenant.env, self._storage, overrides=overrides, env=env, dev_clock=dev_clock
        )
        self.hosts.append(host)
        return host

    def stop(self, hosts: list[DevHostProcess]) -> None:
        """Stop ``hosts`` together (SIGTERM to all, then wait): each drains for a moment."""
        for host in hosts:
            if host.process.poll() is None:
                host.process.send_signal(signal.SIGTERM)
        for host in hosts:
            host.stop()

    def stop_all(self) -> None:
        self.stop(self.hosts)


@pytest.fixture(scope="session")
def app_hosts(
    tmp_path_factory: pytest.TempPathFactory, azurite: Azurite, evidence: Evidence, local_tenant: LocalTenant
) -> Iterator[AppHosts]:
    # Depends on local_tenant so that the hosts (and their pooled connections to it) stop before it does.
    hosts = AppHosts(tmp_path_factory, azurite.connection_string, evidence)
    try:
        yield hosts
    finally:
        hosts.stop_all()


class FreshHosts:
    """Cold app hosts for one test (cold start, own settings), stopped when the test ends."""

    def __init__(self, hosts: AppHosts) -> None:
        self._hosts = hosts
        self.started: list[DevHostProcess] = []

    def start(
        self,
        tenant: LocalTenant,
        name: str = "fresh",
        *,
        overrides: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        dev_clock: bool = False,
    ) -> DevHostProcess:
        host = self._hosts.start(tenant, name, overrides=overrides, env=env, dev_clock=dev_clock)
        self.started.append(host)
        return host


@pytest.fixture
def fresh_hosts(app_hosts: AppHosts) -> Iterator[FreshHosts]:
    hosts = FreshHosts(app_hosts)
    try:
        yield hosts
    finally:
        app_hosts.stop(hosts.started)


@pytest.fixture(scope="module")
def module_hosts(app_hosts: AppHosts) -> Iterator[FreshHosts]:
    """App hosts that one module's tests share, stopped when the module ends rather than with the session:
    an idle host still polls its two queues about once a second (devhost as the Functions host in
    Development), some 14 ms of CPU a second between it and Azurite, and a module's host otherwise idled
    for the rest of the session (over 4,000 host-seconds a run)."""
    hosts = FreshHosts(app_hosts)
    try:
        yield hosts
    finally:
        app_hosts.stop(hosts.started)


@pytest.fixture(scope="session")
def app_host(app_hosts: AppHosts, local_tenant: LocalTenant) -> DevHostProcess:
    """The session's app host (client secret from the vault, default retry budget). Read-only tests."""
    return app_hosts.start(local_tenant, "session")


@pytest.fixture(scope="session")
def caller(local_tenant: LocalTenant, evidence: Evidence) -> Iterator[Caller]:
    client = Caller(local_tenant)
    evidence.callers.append(client)
    yield client
    client.close()


@pytest.fixture(scope="session")
def norole_caller(local_tenant: LocalTenant, evidence: Evidence) -> Iterator[Caller]:
    client = Caller(local_tenant, "CALLER_NOROLE")
    evidence.callers.append(client)
    yield client
    client.close()


def own_caller(tenant: LocalTenant, evidence: Evidence, prefix: str = "CALLER") -> Caller:
    """A caller of a ``tenant_factory`` tenant (trusting that tenant's CA explicitly)."""
    client = Caller(tenant, prefix, http_client=tenant_session(tenant))
    evidence.callers.append(client)
    return client
