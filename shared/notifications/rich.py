"""Rich notifications (``includeResourceData``): the ``validationTokens`` check and the decryption of
``encryptedContent``, in the worker (never on the request path: Graph says to answer 202 first).

* **Tokens**: each JWT must be signed by a key of Microsoft's tenant-independent signing keys, issued by
  ``https://sts.windows.net/{tenant}/`` for a tenant the app serves, for this app (``aud`` = the client id),
  by the Graph change-notification publisher (``appid`` ``0bf30f3b-4a52-48df-9a82-234910c4a086``), and
  current (``exp``/``nbf``). The .NET helper skips the ``appid`` check; this one does not.
* **Content**: the one-time key is unwrapped with RSA-OAEP (SHA-1, MGF1-SHA-1) by the app's encryption
  key; ``dataSignature`` must be HMAC-SHA256 (keyed with that key) of the base64-decoded ``data``
  (compared in constant time) before anything is decrypted; the data is AES-CBC with PKCS7 padding and the
  IV the key's first 16 bytes. The result is the resource's JSON.

Sources: Microsoft Graph "Set up change notifications that include resource data" and the SDKs' decrypt
and token helpers, cited in ``../shared/reference/change-notifications.md`` §4.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Collection
from typing import Any

from shared.core.errors import GraphFunctionsError

GRAPH_PUBLISHER_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"


class RichContentError(GraphFunctionsError):
    """A rich notification whose tokens or content do not verify: the item is not trusted (400)."""

    status = 400
    default_code = "rich_notification_rejected"


def _b64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise RichContentError(f"encryptedContent has no {name}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RichContentError(f"encryptedContent.{name} is not base64") from exc


def load_key(private_key_pem: bytes) -> Any:
    """The RSA private key of a PEM (loading checks the key: about 100 ms, so callers keep the result).

    Raises:
        RichContentError: not an RSA private key.
    """
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)

    try:
        private_key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise RichContentError("The encryption key is not a PEM private key") from exc
    if not isinstance(private_key, RSAPrivateKey):
        raise RichContentError("The encryption key is not an RSA key")
    return private_key


def decrypt(encrypted: dict[str, Any], private_key: bytes | Any) -> dict[str, Any]:
    """The resource JSON of ``encrypted`` (module docstring); ``private_key`` is PEM bytes or a key
    :func:`load_key` returned.

    Raises:
        RichContentError: malformed, wrong key, signature mismatch, bad padding or not JSON.
    """
    from cryptography.hazmat.primitives import hashes, padding  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)
    from cryptography.hazmat.primitives.asymmetric import padding as asymmetric  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415 - cryptography is heavy: imported on first use (cold start)

    data = _b64(encrypted.get("data"), "data")
    wrapped = _b64(encrypted.get("dataKey"), "dataKey")
    signature = _b64(encrypted.get("dataSignature"), "dataSignature")
    if isinstance(private_key, bytes):
        private_key = load_key(private_key)
    # SHA-1 OAEP is what Graph wraps the key with (its documentation; SHA-256 fails to unwrap).
    sha1 = hashes.SHA1()  # noqa: S303 - Graph's OAEP parameters, not a choice
    try:
        key = private_key.decrypt(
            wrapped, asymmetric.OAEP(mgf=asymmetric.MGF1(algorithm=sha1), algorithm=sha1, label=None)
        )
    except ValueError as exc:
        raise RichContentError("The data key does not unwrap with the app's encryption key") from exc
    if not hmac.compare_digest(hmac.new(key, data, hashlib.sha256).digest(), signature):
        raise RichContentError("The content's signature does not match")
    if len(key) not in (16, 24, 32) or len(data) % 16:
        raise RichContentError("The content is not AES-CBC ciphertext")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
        document = json.loads(plain)
    except ValueError as exc:
        raise RichContentError("The content does not decrypt to JSON") from exc
    if not isinstance(document, dict):
        raise RichContentError("The content is not a JSON object")
    return document


#: Clock skew allowed on ``exp``/``nbf`` (Entra's own validators allow five minutes).
LEEWAY_SECONDS = 300


def check_tokens(
    tokens: list[str] | tuple[str, ...],
    *,
    signing_key: Callable[[str], Any],
    client_id: str,
    tenant_ids: Collection[str],
    issuer_host: str = "sts.windows.net",
) -> frozenset[str]:
    """The tenants the tokens vouch for; raise unless every token is valid (module docstring) and there is
    at least one.

    ``signing_key(kid)`` returns the public key of the token's ``kid`` (Microsoft's published keys), None
    for a kid Microsoft does not publish; it raises ``CredentialUnavailable`` when no keys can be fetched
    (that propagates: the tokens were not judged).

    Raises:
        RichContentError: no token, or one that does not verify.
    """
    import jwt  # noqa: PLC0415 - PyJWT is heavy: imported on first use (cold start)

    if not tokens:
        raise RichContentError("A rich notification came without validationTokens")
    vouched: set[str] = set()
    for token in tokens:
        try:
            header = jwt.get_unverified_header(token)
            key = signing_key(str(header.get("kid", "")))
            if key is None:
                raise RichContentError("A validation token names a key Microsoft does not publish")
            claims = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                audience=client_id,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "nbf", "iss", "aud"]},
            )
        except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
            raise RichContentError("A validation token does not verify") from exc
        issuer = str(claims.get("iss", ""))
        tenant = next((t for t in tenant_ids if issuer == f"https://{issuer_host}/{t}/"), None)
        if tenant is None:
            raise RichContentError("A validation token has another issuer")
        if claims.get("appid") != GRAPH_PUBLISHER_APP_ID:
            raise RichContentError("A validation token was not issued to Graph's notification publisher")
        vouched.add(tenant)
    return frozenset(vouched)


class RichContent:
    """Checks rich items' tokens (the webhook, on the request path, with cached keys) and decrypts their
    content (the worker) with the version of the app's certificate the item names. Wired by
    :mod:`shared.app` when ``NOTIFICATION_CERTIFICATE_NAME`` is set."""

    def __init__(
        self,
        *,
        private_key: Callable[[str], bytes | None],
        signing_key: Callable[[str], Any],
        client_id: str,
        serves: Callable[[str], bool],
        issuer_host: str = "sts.windows.net",
    ) -> None:
        """``private_key(version)``: the PEM key of a certificate version, None when retired;
        ``issuer_host``: the v1 token issuer of the app's cloud (``sts.chinacloudapi.cn`` in 21Vianet's)."""
        self._issuer_host = issuer_host
        self._key = private_key
        self._loaded: dict[tuple[str, bytes], Any] = {}  # (version, PEM) -> loaded key
        self._signing_key = signing_key
        self._client_id = client_id
        self._serves = serves

    def verify(self, tokens: list[str] | tuple[str, ...], tenant_ids: Collection[str]) -> frozenset[str]:
        """The tenants (of ``tenant_ids`` the app serves) the post's tokens vouch for.

        Raises:
            RichContentError: a token does not verify (nothing of the post is trusted).
            CredentialUnavailable: Microsoft's signing keys cannot be fetched (the tokens are not judged).
        """
        served = [tenant for tenant in tenant_ids if self._serves(tenant)]
        return check_tokens(
            tokens, signing_key=self._signing_key, client_id=self._client_id, tenant_ids=served
        )

    def open(self, encrypted: dict[str, Any]) -> dict[str, Any]:
        """The decrypted resource of ``encrypted`` with the key version it names.

        Raises:
            RichContentError: unknown or retired certificate id, tampered or malformed content.
            CredentialUnavailable: the vault cannot be read now (retry).
        """
        version = encrypted.get("encryptionCertificateId")
        pem = self._key(version) if isinstance(version, str) else None
        if pem is None or not isinstance(version, str):
            raise RichContentError("The content names no certificate version of this app")
        key = self._loaded.get((version, pem))
        if key is None:
            key = load_key(pem)
            if len(self._loaded) >= 16:  # versions come and go: a small cache, never unbounded
                self._loaded.clear()
            self._loaded[(version, pem)] = key
        return decrypt(encrypted, key)
