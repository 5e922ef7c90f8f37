"""Helpers of the Graph emulator tests.

* :class:`InProcess` drives ``emulator.graph.build_app(state)`` directly over ASGI (no sockets): fast handler
  tests with tokens minted by the state's own :class:`~emulator.token_service.TokenService`.
* :func:`mint` signs a Graph access token for a running tenant with the tenant's own signing key (read from
  its state dir), so end-to-end tests can exercise any permission set over the real socket; tokens from the
  real token endpoint (msal) are used where the permission set of a seeded app fits.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import jwt

from emulator.config import GRAPH_APP_ID, EmulatorConfig
from emulator.directory.model import User
from emulator.pki.signing_keys import KeyRing
from emulator.state import EmulatorState
from tests.support.keys import private_key
from tests.support.tenant import LocalTenant

# consented to Graph Functions
GRAPH_APP_ROLES = ("User.Read.All", "Mail.Read", "GroupMember.Read.All", "Mail.Send")
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll ``probe`` until it returns something other than None, as a client of an asynchronous service
    (sendMail delivery) must; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing came within {timeout} s")
        time.sleep(interval)


@dataclass
class Reply:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")


def _scope(method: str, url: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    parts = urlsplit(url)
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "server": ("127.0.0.1", 443),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": unquote(parts.path),
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode("latin-1"),
        "headers": raw,
        "state": {},
    }


async def asgi_call(
    app: Any,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    body: bytes = b"",
) -> Reply:
    hdrs = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    out: dict[str, Any] = {"headers": {}}
    chunks: list[bytes] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(_scope(method, url, hdrs, body), receive, send)
    return Reply(out["status"], out["headers"], b"".join(chunks))


@dataclass
class InProcess:
    state: EmulatorState
    app: Any
    tokens: dict[Any, str] = field(default_factory=dict)

    @classmethod
    def create(cls, state_dir: Path, users: int = 60) -> InProcess:
        from emulator.graph import build_app

        state = EmulatorState.create(EmulatorConfig(state_dir=state_dir, users=users))
        return cls(state, build_app(state))

    @property
    def origin(self) -> str:
        return self.state.config.graph_origin

    def advance_clock(self, seconds: float) -> None:
        """Move the tenant's clock (this process's ``emulator.clock.CLOCK``) forward; ``state.reset()``
        rewinds it."""
        from emulator.clock import CLOCK

        CLOCK.advance(seconds)

    def freeze_clock(self) -> None:
        """Stop this process's tenant clock (only :meth:`advance_clock` moves it); ``state.reset()``
        restarts it."""
        from emulator.clock import CLOCK

        CLOCK.freeze()

    def token(
        self,
        *,
        roles: tuple[str, ...] = (),
        scopes: tuple[str, ...] = (),
        user: User | None = None,
        client: Any = None,
        audience: str | None = None,
    ) -> str:
        state = self.state
        graph = state.directory.app(GRAPH_APP_ID)
        assert graph is not None
        minted = state.tokens.access_token(
            resource=graph,
            audience=audience or state.config.graph_origin,
            client=client or state.ids.app,
            user=user,
            scopes=scopes,
            roles=roles,
        )
        return minted.token

    def app_token(self, *roles: str) -> str:
        return self.token(roles=roles)

    def user_token(self, user: User, *scopes: str) -> str:
        return self.token(user=user, scopes=scopes)

    def request(
        self,
        method: str,
        url: str,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if url.startswith(self.origin):
            url = url[len(self.origin) :]
        return asyncio.run(asgi_call(self.app, method, url, hdrs, json_body))

    def get(self, url: str, token: str | None = None, **headers: str) -> Reply:
        return self.request("GET", url, token, {k.replace("_", "-"): v for k, v in headers.items()})

    def post(self, url: str, token: str | None, json_body: Any, **headers: str) -> Reply:
        return self.request(
            "POST", url, token, {k.replace("_", "-"): v for k, v in headers.items()}, json_body
        )

    def collect(self, url: str, token: str, **headers: str) -> tuple[list[dict[str, Any]], list[Reply]]:
        """Follow ``@odata.nextLink`` to the end; the items and every page's reply."""
        items: list[dict[str, Any]] = []
        replies: list[Reply] = []
        next_url: str | None = url
        while next_url:
            reply = self.get(next_url, token, **headers)
            assert reply.status_code == 200, reply.text
            replies.append(reply)
            items.extend(reply.json()["value"])
            next_url = reply.json().get("@odata.nextLink")
            assert len(replies) < 1000
        return items, replies


def assert_graph_error(reply: Reply, status: int, code: str, message: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, (reply.status_code, reply.text)
    err = reply.json()["error"]
    assert err["code"] == code, err
    if message is not None:
        assert err["message"] == message, err
    inner = err["innerError"]
    assert inner["request-id"] == reply.headers["request-id"]
    assert inner["client-request-id"] == reply.headers["client-request-id"]
    assert "date" in inner
    return dict(err)


# ------------------------------------------------------------------------------ end-to-end helpers
def mint(
    tenant: LocalTenant,
    *,
    roles: tuple[str, ...] = (),
    scopes: tuple[str, ...] = (),
    oid: str | None = None,
    appid: str | None = None,
    aud: str | None = None,
    lifetime: int = 3600,
    extra: dict[str, Any] | None = None,
) -> str:
    """A v1 Graph access token signed by the running tenant's current key (as its token endpoint would)."""
    keys = KeyRing(tenant.state_dir / "signing-keys.json")
    tid = tenant.env["ENTRA_TENANT_ID"]
    now = int(time.time())
    app = appid or tenant.env["ENTRA_CLIENT_ID"]
    claims: dict[str, Any] = {
        "aud": aud or tenant.env["GRAPH_ENDPOINT"],
        "iss": f"https://sts.windows.net/{tid}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "tid": tid,
        "appid": app,
        "appidacr": "1",
        "ver": "1.0",
        "uti": uuid.uuid4().hex,
        "oid": oid or str(uuid.uuid4()),
        "sub": oid or str(uuid.uuid4()),
        "idtyp": "user" if scopes else "app",
    }
    if scopes:
        claims["scp"] = " ".join(scopes)
    if roles:
        claims["roles"] = list(roles)
    claims.update(extra or {})
    key = keys.current
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "x5t": key.x5t})


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **{k.replace("_", "-"): v for k, v in headers.items()}}


def app_certificate(tenant: LocalTenant) -> dict[str, str]:
    """Graph Functions' certificate as msal's ``client_credential`` (private key PEM + SHA-1 thumbprint)."""
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    pem = (tenant.state_dir / "apps" / "graph-functions.pem").read_text()
    cert = x509.load_pem_x509_certificate(pem.encode())
    thumb = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()  # noqa: S324 - thumbprint
    return {"private_key": pem, "thumbprint": thumb}


def client_assertion(tenant: LocalTenant) -> str:
    """An RFC 7523 client assertion of Graph Functions signed with its certificate (what msal sends)."""
    import base64

    cred = app_certificate(tenant)
    client_id = tenant.env["ENTRA_CLIENT_ID"]
    now = int(time.time())
    x5t = base64.urlsafe_b64encode(bytes.fromhex(cred["thumbprint"])).decode().rstrip("=")
    claims = {
        "aud": f"{tenant.authority}/oauth2/v2.0/token",
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, private_key(cred["private_key"]), algorithm="RS256", headers={"x5t": x5t})
