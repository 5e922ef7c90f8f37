"""Start the local tenant (``python -m emulator``) as a real process for tests.

Everything talks to it over real HTTPS sockets; nothing is patched. ``LocalTenant.trust()`` points
``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE`` at the combined bundle, since this machine presets both to the
system bundle (which does not hold the local CA). In a pytest session the tenant is forked from the worker's
zygote (tests/support/spawn.py; ``PYTEST_ZYGOTE=0`` starts a plain process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from dotenv import dotenv_values

from tests.support.ports import free_port_range
from tests.support.spawn import ChildProcess, spawn_module

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("login", "graph", "vault", "sharepoint", "identity")
#: CA bundles of the tenants this process trusts now (``LocalTenant.trust``), oldest first.
_TRUSTED: list[str] = []


@dataclass
class LocalTenant:
    process: ChildProcess
    port: int
    state_dir: Path
    env_file: Path
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    startup_seconds: float = 0.0
    #: One keep-alive session for the control API: a new connection costs about 60 ms of CPU in the test
    #: (a TLS context loading the 145-certificate bundle, a handshake) against 3 ms on a pooled one, and
    #: tests call the control API thousands of times a run. It trusts exactly this tenant's bundle.
    _control_http: requests.Session | None = field(default=None, repr=False)

    @property
    def ca_bundle(self) -> str:
        """The bundle the tenant writes for the app: the system roots and its CA (``REQUESTS_CA_BUNDLE``)."""
        return self.env["EMULATOR_CA_BUNDLE"]

    @property
    def ca_cert(self) -> str:
        """The tenant's CA certificate alone: what the tests' own clients trust. Tests talk to loopback only,
        and a client without a pool loads its trust into a new TLS context on every connection, about 100 ms
        of CPU for the system roots of :attr:`ca_bundle` against 0.5 ms for one CA."""
        return str(_ca_only(self.ca_bundle))

    def origin(self, service: str) -> str:
        return f"https://127.0.0.1:{self.port + SERVICES.index(service)}"

    @property
    def authority(self) -> str:
        return f"{self.env['ENTRA_AUTHORITY_HOST']}/{self.env['ENTRA_TENANT_ID']}"

    def _control_session(self) -> requests.Session:
        session = self._control_http
        if session is None:
            session = requests.Session()
            session.trust_env = False  # the process's CA variables may name another tenant's bundle
            session.verify = self.ca_cert
            self._control_http = session
        return session

    def control(
        self, method: str, path: str, json: Any = None, expect: int | None = None, tenant: str | None = None
    ) -> Any:
        """A control-API call; ``tenant`` (an organisation's id or domain) scopes routes such as ``/users``
        or ``/graph/mailbox-scopes`` to that organisation (``X-Emulator-Tenant``)."""
        resp = self._control_session().request(
            method,
            f"{self.env['EMULATOR_URL']}/_emulator{path}",
            json=json,
            headers={"X-Emulator-Tenant": tenant} if tenant else None,
            timeout=30,
        )
        if expect is not None:
            assert resp.status_code == expect, (resp.status_code, resp.text)
        elif resp.status_code >= 400:
            raise AssertionError(f"control {method} {path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def create_organization(self, **body: Any) -> dict[str, Any]:
        """A new organisation (``POST /_emulator/tenants``): ``tenantId``, ``domain``, ``authority``,
        ``admin`` and ``member`` (``id``, ``username``, ``password``)... A reset removes it."""
        return dict(self.control("POST", "/tenants", body, expect=201))

    def authority_of(self, tenant_id: str) -> str:
        return f"{self.env['ENTRA_AUTHORITY_HOST']}/{tenant_id}"

    def reset(self) -> None:
        """Back to the seeded tenant, at real time (the clock rewinds)."""
        self.control("POST", "/reset")

    def advance_clock(self, seconds: float) -> float:
        """Move the tenant's clock forward by ``seconds`` (tokens, codes, sessions, vault dates age at once;
        see emulator/clock.py); returns the tenant's offset from real time. :meth:`reset` rewinds it."""
        return float(self.control("POST", "/clock", {"advanceSeconds": seconds})["offsetSeconds"])

    def freeze_clock(self) -> None:
        """Stop the tenant's clock (only :meth:`advance_clock` moves it), so budgets, Retry-After and
        lifetimes do not run out while a slow machine works; :meth:`reset` lets it run again."""
        self.control("POST", "/clock", {"frozen": True})

    def person_token(self, *, capabilities: list[str] | None = None, admin: bool = False) -> str:
        """A person's access token for the app's API (``api://{ENTRA_CLIENT_ID}/access_as_user``) as the
        single-page client (``SPA_CLIENT_ID``) holds it: the demo member's (or admin's), through the password
        grant (MSAL Python's username/password call first asks ``/common/userrealm`` on port 443, which the
        local tenant does not serve, so the form is posted as MSAL would post it). ``capabilities``: the
        client's declared ones (``["CP1"]`` puts ``xms_cc: ["cp1"]`` in the token)."""
        who = "ADMIN" if admin else "USER"
        data = {
            "grant_type": "password",
            "client_id": self.env["SPA_CLIENT_ID"],
            "username": self.env[f"DEMO_{who}_USERNAME"],
            "password": self.env[f"DEMO_{who}_PASSWORD"],
            "scope": f"api://{self.env['ENTRA_CLIENT_ID']}/access_as_user openid profile offline_access",
            "client_info": "1",
        }
        if capabilities:
            data["claims"] = json.dumps({"access_token": {"xms_cc": {"values": capabilities}}})
        resp = requests.post(
            f"{self.authority}/oauth2/v2.0/token", data=data, verify=self.ca_cert, timeout=30
        )
        if resp.status_code != 200:
            raise AssertionError(f"person token: {resp.status_code} {resp.text}")
        return str(resp.json()["access_token"])

    def requests_since(self, seq: int, service: str | None = None) -> list[dict[str, Any]]:
        q = f"?since={seq}" + (f"&service={service}" if service else "")
        return list(self.control("GET", "/requests" + q)["value"])

    def last_seq(self) -> int:
        entries = self.control("GET", "/requests?since=0")["value"]
        return int(entries[-1]["seq"]) if entries else 0

    def trust(self) -> dict[str, str | None]:
        """Point the process's TLS trust at a bundle of this tenant's CA and every other tenant this process
        trusts; returns the previous values. One process can hold several session tenants at once (an xdist
        worker runs the emulator, browser and integration suites' files in any order), and each must stay
        trusted while the others are.

        Only the tenants' CA certificates, not the system roots their ``bundle.pem`` adds: the tests talk
        to loopback only, and every new TLS connection of a client without a pool (a plain
        ``requests.get``) loads the bundle into a new context, about 45 ms of CPU for the 145 certificates
        of the system roots against 0.5 ms for one CA."""
        previous = {k: os.environ.get(k) for k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE")}
        _TRUSTED.append(self.ca_bundle)
        union = self.state_dir.parent / "trusted-bundle.pem"
        union.write_text("".join(_ca_only(bundle).read_text() for bundle in dict.fromkeys(_TRUSTED)))
        for key in previous:
            os.environ[key] = str(union)
        return previous

    def untrust(self, previous: dict[str, str | None]) -> None:
        """Undo :meth:`trust` (``previous``: what it returned)."""
        _TRUSTED.remove(self.ca_bundle)
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def stop(self, timeout: float = 10) -> int:
        if self._control_http is not None:  # an idle keep-alive connection would delay the shutdown
            self._control_http.close()
            self._control_http = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _ca_only(bundle: str) -> Path:
    """The tenant's CA certificate (``tls/ca.pem`` beside its ``bundle.pem``), else the bundle itself."""
    ca = Path(bundle).with_name("ca.pem")
    return ca if ca.exists() else Path(bundle)


def start_tenant(
    tmp: Path, users: int = 60, seed: int = 42, extra_args: tuple[str, ...] = (), timeout: float = 120
) -> LocalTenant:
    port = free_port_range(len(SERVICES))
    state_dir, env_file, log_file = tmp / "state", tmp / "tenant.env", tmp / "emulator.log"
    env_file.unlink(missing_ok=True)  # its appearance is the readiness signal
    started = time.perf_counter()
    environment = dict(os.environ)
    environment.pop("PYTHONDONTWRITEBYTECODE", None)  # the tenant's ~100 modules compile once, not per start
    arguments = ["--port", str(port), "--state-dir", str(state_dir), "--env-file", str(env_file)]
    arguments += ["--users", str(users), "--seed", str(seed), *extra_args]
    with log_file.open("wb") as log:
        process = spawn_module(
            "emulator", arguments, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
    tenant = LocalTenant(process, port, state_dir, env_file, log_file)
    deadline = time.monotonic() + timeout
    while not env_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            tenant.stop()
            raise RuntimeError(f"local tenant did not start:\n{log_file.read_text(errors='replace')}")
        time.sleep(0.02)
    tenant.startup_seconds = time.perf_counter() - started
    tenant.env = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return tenant


@contextmanager
def trusted_tenant(tmp: Path, users: int = 60, **kwargs: Any) -> Iterator[LocalTenant]:
    """A running local tenant trusted by this process for the duration (CA variables restored after)."""
    tenant = start_tenant(tmp, users=users, **kwargs)
    previous = tenant.trust()
    try:
        yield tenant
    finally:
        tenant.untrust(previous)
        tenant.stop()
