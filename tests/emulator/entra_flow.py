"""Helpers for the Entra tests: a scripted browser for the sign-in/consent pages, assertions, decoding."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.support.keys import private_key
from tests.support.tenant import LocalTenant

REDIRECT = "http://localhost:7071/auth/callback"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


#: Inputs a form submits as they are (checkboxes only when a test ticks them; no password is prefilled).
_FILLED = frozenset({"hidden", "text", "email", "search"})


class _Forms(HTMLParser):
    """Collects forms (action, method, id, fields) and element ids of a page (the tenant's or the app's)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "form":
            self.forms.append(
                {
                    "action": a.get("action", ""),
                    "method": a.get("method", "get"),
                    "fields": {},
                    "id": a.get("id"),
                }
            )
        elif tag == "input" and self.forms and a.get("name") and a.get("type", "text") in _FILLED:
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")


def parse_page(html: str) -> _Forms:
    parser = _Forms()
    parser.feed(html)
    return parser


def params_of(resp: requests.Response) -> dict[str, str]:
    """The parameters delivered to the redirect URI: Location query/fragment, or a form_post page."""
    if resp.status_code == 302:
        loc = urlsplit(resp.headers["Location"])
        raw = loc.fragment or loc.query
        return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    page = parse_page(resp.text)
    assert page.forms and page.forms[0]["id"] == "hiddenform", resp.text[:500]
    return dict(page.forms[0]["fields"])


@dataclass
class Browser:
    """A requests session that keeps the SSO cookie, like a browser would."""

    tenant: LocalTenant
    session: requests.Session

    @classmethod
    def open(cls, tenant: LocalTenant) -> Browser:
        s = requests.Session()
        s.verify = tenant.ca_cert
        return cls(tenant, s)

    @property
    def login(self) -> str:
        return self.tenant.env["ENTRA_AUTHORITY_HOST"]

    def get(self, url: str, **params: str) -> requests.Response:
        full = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}" if params else url
        return self.session.get(full, allow_redirects=False, timeout=30)

    def authorize(self, **params: str) -> requests.Response:
        params.setdefault("client_id", self.tenant.env["ENTRA_CLIENT_ID"])
        params.setdefault("response_type", "code")
        params.setdefault("redirect_uri", REDIRECT)
        return self.get(f"{self.tenant.authority}/oauth2/v2.0/authorize", **params)

    def post_form(
        self, page: requests.Response, extra: dict[str, str], form_index: int = 0
    ) -> requests.Response:
        form = parse_page(page.text).forms[form_index]
        data = dict(form["fields"])
        data.update(extra)
        return self.session.post(
            f"{self.login}{form['action']}", data=data, allow_redirects=False, timeout=30
        )

    def sign_in(self, page: requests.Response, username: str, password: str) -> requests.Response:
        assert "signin" in parse_page(page.text).ids, page.text[:500]
        return self.post_form(page, {"username": username, "password": password})

    def consent(
        self, page: requests.Response, *, accept: bool = True, org: bool = False
    ) -> requests.Response:
        assert "permissions" in parse_page(page.text).ids, page.text[:500]
        extra = {"action": "accept" if accept else "cancel"}
        if org:
            extra["consent_org"] = "true"
        return self.post_form(page, extra)


def pkce_pair(verifier: str | None = None) -> tuple[str, str]:
    verifier = verifier or base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


@dataclass(frozen=True)
class AppCert:
    key_pem: str
    cert_pem: str
    sha1_hex: str
    der: bytes

    def msal_credential(self, **extra: str) -> dict[str, Any]:
        """MSAL's ``client_credential`` for this certificate, the key already loaded: given the PEM, MSAL
        hands it to PyJWT, which parses and validates it again for the first assertion of every new client
        (about 60 ms of CPU; the tests build thousands of clients). Given the key object, PyJWT signs with
        it as it is; the assertion MSAL sends is the same. ``extra``: ``public_certificate`` and the like.
        """
        credential: dict[str, Any] = {"private_key": private_key(self.key_pem), **extra}
        if "public_certificate" not in extra:
            credential["thumbprint"] = self.sha1_hex
        return credential


def app_certificate(tenant: LocalTenant) -> AppCert:
    """Graph Functions' certificate, read from the state dir (the same one the vault seed holds)."""
    return _app_certificate((tenant.state_dir / "apps" / "graph-functions.pem").read_bytes())


@lru_cache(maxsize=16)  # parsing and validating the key costs about 60 ms of CPU; tests ask for it often
def _app_certificate(data: bytes) -> AppCert:
    key = private_key(data)
    cert = x509.load_pem_x509_certificate(data)
    der = cert.public_bytes(serialization.Encoding.DER)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    sha1 = hashlib.sha1(der).hexdigest()  # noqa: S324 - certificate thumbprints are SHA-1
    return AppCert(key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), sha1, der)


def graph_functions_app(tenant: LocalTenant) -> msal.ConfidentialClientApplication:
    """Graph Functions as a web app, authenticating with its certificate (its secret lives in the vault)."""
    cert = app_certificate(tenant)
    return msal.ConfidentialClientApplication(
        tenant.env["ENTRA_CLIENT_ID"],
        client_credential=cert.msal_credential(),
        authority=tenant.authority,
        instance_discovery=False,
    )


def assertion(
    tenant: LocalTenant,
    *,
    key_pem: str | None = None,
    cert: AppCert | None = None,
    alg: str = "RS256",
    headers: dict[str, Any] | None = None,
    **overrides: Any,
) -> str:
    """A client assertion for Graph Functions signed with its certificate (overridable pieces)."""
    cert = cert or app_certificate(tenant)
    now = time.time()
    client_id = tenant.env["ENTRA_CLIENT_ID"]
    payload: dict[str, Any] = {
        "aud": f"{tenant.authority}/oauth2/v2.0/token",
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 600,
    }
    payload.update(overrides)
    payload = {k: v for k, v in payload.items() if v is not None}
    hdr: dict[str, Any] = {"x5t": base64.urlsafe_b64encode(bytes.fromhex(cert.sha1_hex)).decode()}
    if alg == "PS256":
        hdr = {"x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(cert.der).digest()).decode().rstrip("=")}
    hdr.update(headers or {})
    return jwt.encode(payload, private_key(key_pem or cert.key_pem), algorithm=alg, headers=hdr)


def token_post(
    tenant: LocalTenant,
    data: dict[str, str],
    *,
    tenant_segment: str | None = None,
    auth: tuple[str, str] | None = None,
) -> requests.Response:
    segment = tenant_segment or tenant.env["ENTRA_TENANT_ID"]
    url = f"{tenant.env['ENTRA_AUTHORITY_HOST']}/{segment}/oauth2/v2.0/token"
    return requests.post(url, data=data, auth=auth, verify=tenant.ca_cert, timeout=30)


def assert_aadsts(resp: requests.Response, status: int, error: str, code: int) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert body["error"] == error, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}: "), body
    for key in ("timestamp", "trace_id", "correlation_id"):
        assert key in body
    return dict(body)


def verify_with_jwks(tenant: LocalTenant, token: str, audience: str) -> dict[str, Any]:
    """Verify a token exactly as a resource server would: via discovery and the published JWKS."""
    meta = requests.get(
        f"{tenant.authority}/v2.0/.well-known/openid-configuration", verify=tenant.ca_cert, timeout=30
    ).json()
    jwks = requests.get(meta["jwks_uri"], verify=tenant.ca_cert, timeout=30).json()
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    key = jwt.PyJWK(jwk).key
    return dict(jwt.decode(token, key, algorithms=["RS256"], audience=audience))


def graph_token_claims(tenant: LocalTenant, token: str) -> dict[str, Any]:
    """The claims of a Microsoft Graph access token, checked the way the cloud's behave: a ``nonce`` in the
    header makes verification against the published JWKS fail for everyone but Graph, which accepts the
    token (its answer may still be 403 for a missing permission, never 401)."""
    header = jwt.get_unverified_header(token)
    assert isinstance(header.get("nonce"), str) and header["nonce"], header
    assert list(header) == ["typ", "nonce", "alg", "x5t", "kid"], header
    body = claims(token)
    try:
        verify_with_jwks(tenant, token, str(body["aud"]))
    except jwt.InvalidSignatureError:
        pass
    else:  # pragma: no cover - the assertion below reports it
        raise AssertionError("a Graph access token verified against the JWKS")
    path = "/v1.0/me" if "scp" in body else "/v1.0/users?$top=1"
    answer = requests.get(
        f"{tenant.env['GRAPH_ENDPOINT']}{path}",
        headers={"Authorization": f"Bearer {token}"},
        verify=tenant.ca_cert,
        timeout=30,
    )
    assert answer.status_code != 401, answer.text
    return body


def ropc(tenant: LocalTenant, **over: str) -> dict[str, str]:
    """A password-grant form for the demo user with the app's certificate assertion; ``over`` replaces
    fields (``"<drop>"`` removes one)."""
    data = {
        "grant_type": "password",
        "client_id": tenant.env["ENTRA_CLIENT_ID"],
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion(tenant),
        "username": tenant.env["DEMO_USER_USERNAME"],
        "password": tenant.env["DEMO_USER_PASSWORD"],
        "scope": "User.Read offline_access openid profile",
        "client_info": "1",
    }
    data.update(over)
    return {k: v for k, v in data.items() if v != "<drop>"}
