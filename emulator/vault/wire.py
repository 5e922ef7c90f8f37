"""Key Vault wire shapes: SecretBundle / SecretItem JSON, request-body parsing, paging tokens, and the
certificate-secret format conversion of ``outContentType``. Pure functions; :mod:`emulator.vault.api`
serves them."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from emulator.vault.store import SecretVersion

UTC = dt.UTC
NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
PFX = "application/x-pkcs12"
PEM = "application/x-pem-file"
RECOVERY_LEVEL = "Recoverable+Purgeable"
RECOVERABLE_DAYS = 90
MAX_VALUE_BYTES = 25 * 1024  # "Secret value size: 25k bytes" (Key Vault service limits)
MAX_TAGS = 15
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
MAX_CONTENT_TYPE = 255


class BadParameterError(ValueError):
    """A request the vault rejects with 400 ``BadParameter``."""


def epoch(ts: dt.datetime) -> int:
    return int(ts.timestamp())


def attributes_json(item: SecretVersion) -> dict[str, Any]:
    attrs: dict[str, Any] = {"enabled": item.enabled}
    if item.not_before is not None:
        attrs["nbf"] = epoch(item.not_before)
    if item.expires is not None:
        attrs["exp"] = epoch(item.expires)
    attrs.update(
        {
            "created": epoch(item.created),
            "updated": epoch(item.updated),
            "recoveryLevel": RECOVERY_LEVEL,
            "recoverableDays": RECOVERABLE_DAYS,
        }
    )
    return attrs


def secret_bundle(origin: str, name: str, item: SecretVersion, *, value: str | None) -> dict[str, Any]:
    """SecretBundle: ``value`` (omitted when None, as in the update response), ``id`` with the version,
    ``contentType``, ``attributes``, ``tags``, and ``kid`` + ``managed`` for certificate-backed secrets."""
    body: dict[str, Any] = {}
    if value is not None:
        body["value"] = value
    if item.content_type is not None:
        body["contentType"] = item.content_type
    body["id"] = f"{origin}/secrets/{name}/{item.version}"
    if item.managed:
        body["managed"] = True
    body["attributes"] = attributes_json(item)
    if item.key_id:
        body["kid"] = item.key_id
    body["tags"] = dict(item.tags)
    return body


def secret_item(origin: str, name: str, item: SecretVersion, *, with_version: bool) -> dict[str, Any]:
    """SecretItem (list entries): no ``value`` and no ``kid``; ``id`` without the version for /secrets."""
    body: dict[str, Any] = {"id": f"{origin}/secrets/{name}" + (f"/{item.version}" if with_version else "")}
    body["attributes"] = attributes_json(item)
    body["tags"] = dict(item.tags)
    if item.content_type is not None:
        body["contentType"] = item.content_type
    if item.managed:
        body["managed"] = True
    return body


# ------------------------------------------------------------------------------------------- paging
def encode_skiptoken(marker: str) -> str:
    """An opaque continuation token (base64url JSON, like the service's ``{"NextMarker", ...}``)."""
    raw = json.dumps({"NextMarker": marker, "TargetLocation": 0}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_skiptoken(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        marker = json.loads(raw)["NextMarker"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadParameterError(f"The skip token '{token}' is invalid.") from exc
    if not isinstance(marker, str):
        raise BadParameterError(f"The skip token '{token}' is invalid.")
    return marker


def parse_maxresults(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= 25:
        raise BadParameterError(f"Invalid value '{raw}' for maxresults. The value must be between 1 and 25.")
    return value


# ----------------------------------------------------------------------------------- request bodies
@dataclass
class SecretFields:
    """What a PUT (set) or PATCH (update) body carries; ``present`` lists the keys that were given."""

    value: str | None = None
    content_type: str | None = None
    tags: dict[str, str] | None = None
    enabled: bool | None = None
    not_before: dt.datetime | None = None
    expires: dt.datetime | None = None
    present: frozenset[str] = frozenset()


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise BadParameterError("The request body is missing. A JSON object is required.")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadParameterError("The request body is not valid JSON.") from exc
    if not isinstance(data, dict):
        raise BadParameterError("The request body must be a JSON object.")
    return data


def _epoch_attr(attrs: dict[str, Any], key: str) -> dt.datetime | None:
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadParameterError(f"Attribute '{key}' must be an integer (seconds since 1970-01-01 UTC).")
    return dt.datetime.fromtimestamp(value, UTC)


def parse_secret_body(raw: bytes, *, require_value: bool) -> SecretFields:
    data = _json_object(raw)
    fields = SecretFields()
    present: set[str] = set()
    if require_value:
        value = data.get("value")
        if not isinstance(value, str):
            raise BadParameterError("Property 'value' is required and must be a string.")
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise BadParameterError(f"The secret value exceeds the maximum size of {MAX_VALUE_BYTES} bytes.")
        fields.value = value
    if "contentType" in data:
        ctype = data["contentType"]
        if ctype is not None and (not isinstance(ctype, str) or len(ctype) > MAX_CONTENT_TYPE):
            raise BadParameterError(
                f"Property 'contentType' must be a string of at most {MAX_CONTENT_TYPE} characters."
            )
        fields.content_type = ctype
        present.add("contentType")
    if "tags" in data:
        tags = data["tags"] or {}
        if not isinstance(tags, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
        ):
            raise BadParameterError("Property 'tags' must be an object of string values.")
        if len(tags) > MAX_TAGS:
            raise BadParameterError(f"A secret can have at most {MAX_TAGS} tags.")
        for key, val in tags.items():
            if not key or len(key) > MAX_TAG_NAME or len(val) > MAX_TAG_VALUE:
                raise BadParameterError(
                    f"Tag names are 1-{MAX_TAG_NAME} characters and tag values at most "
                    f"{MAX_TAG_VALUE} characters."
                )
        fields.tags = dict(tags)
        present.add("tags")
    attrs = data.get("attributes")
    if attrs is not None:
        if not isinstance(attrs, dict):
            raise BadParameterError("Property 'attributes' must be an object.")
        if "enabled" in attrs:
            if attrs["enabled"] is not None and not isinstance(attrs["enabled"], bool):
                raise BadParameterError("Attribute 'enabled' must be a boolean.")
            fields.enabled = attrs["enabled"]
            present.add("enabled")
        for key in ("nbf", "exp"):
            if key in attrs:
                setattr(fields, "not_before" if key == "nbf" else "expires", _epoch_attr(attrs, key))
                present.add(key)
        if fields.not_before and fields.expires and fields.expires <= fields.not_before:
            raise BadParameterError("The expiration time must be later than the not-before time.")
    fields.present = frozenset(present)
    return fields


# ------------------------------------------------------------------- certificate-backed secret formats
def convert_certificate_value(value: str, source: str | None, target: str) -> str:
    """Convert a certificate-backed secret between base64 PFX (empty password) and PEM (key + chain)."""
    if source == target:
        return value
    if source == PFX and target == PEM:
        key, cert, extra = pkcs12.load_key_and_certificates(base64.b64decode(value), None)
        if key is None or cert is None:
            raise BadParameterError("The certificate secret holds no private key or certificate.")
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        for c in (cert, *extra):
            pem += c.public_bytes(serialization.Encoding.PEM)
        return pem.decode("ascii")
    if source == PEM and target == PFX:
        data = value.encode("ascii")
        loaded = serialization.load_pem_private_key(data, None)
        if not isinstance(loaded, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise BadParameterError("The certificate secret holds an unsupported private key type.")
        chain = x509.load_pem_x509_certificates(data)
        blob = pkcs12.serialize_key_and_certificates(
            None, loaded, chain[0], chain[1:] or None, serialization.NoEncryption()
        )
        return base64.b64encode(blob).decode("ascii")
    raise BadParameterError(f"Cannot convert a secret of content type '{source}' to '{target}'.")
