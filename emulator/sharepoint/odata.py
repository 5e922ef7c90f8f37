"""SharePoint REST (``/_api``) response formats: content negotiation and the OData serialisations.

One typed entity model (:class:`Entity`, :class:`Complex`, :class:`Prop`) rendered as:

* ``verbose`` (``application/json;odata=verbose``): ``{"d": {"__metadata": {id, uri, type}, nav:
  {"__deferred": {uri}}, ..., complex: {"__metadata": {type}, ...}, collection: {"results": [...]}}}``;
* JSON light (OData v3) ``nometadata`` / ``minimalmetadata`` (the default for ``application/json``) /
  ``fullmetadata``: ``odata.metadata``, ``odata.type``, ``odata.id``, ``odata.editLink`` as metadata grows;
* OData v4 (``odata.metadata=none|minimal|full``, or any JSON request with ``OData-Version: 4.0``):
  ``@odata.context``, ``@odata.type``, ``@odata.id``, ``@odata.editLink``;
* Atom XML (no ``Accept``, ``*/*``, ``application/atom+xml``, ``application/xml``), SharePoint's default.

Quirk reproduced: ``OData-Version: 4.0`` with an OData v3 ``odata=...`` parameter is 406
(SharePoint/sp-dev-docs#644). Errors follow the format: ``{"error": ...}`` (verbose), ``{"odata.error": ...}``
(JSON light and v4), ``<m:error>`` (Atom). Inferred shapes are listed in
``emulator/docs/vault-identity-sharepoint.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from starlette.responses import Response

from emulator.clock import CLOCK

VERBOSE, LIGHT, V4, ATOM = "verbose", "light", "v4", "atom"
NONE, MINIMAL, FULL = "none", "minimal", "full"
_LIGHT_LEVELS = {"nometadata": NONE, "minimalmetadata": MINIMAL, "fullmetadata": FULL}
_V4_LEVELS = {"none": NONE, "minimal": MINIMAL, "full": FULL}
_XML_TYPES = ("*/*", "application/*", "application/atom+xml", "application/xml", "text/xml")
DS = "http://schemas.microsoft.com/ado/2007/08/dataservices"
DSM = "http://schemas.microsoft.com/ado/2007/08/dataservices/metadata"
ACCEPT_INVALID = "The HTTP header ACCEPT is missing or its value is invalid."
CLIENT_SERVICE_EXCEPTION = "-1, Microsoft.SharePoint.Client.ClientServiceException"


@dataclass(frozen=True)
class Format:
    kind: str  # verbose | light | v4 | atom
    metadata: str = MINIMAL  # none | minimal | full (light and v4)

    @property
    def content_type(self) -> str:
        if self.kind == VERBOSE:
            return "application/json;odata=verbose;charset=utf-8"
        if self.kind == LIGHT:
            level = {NONE: "nometadata", MINIMAL: "minimalmetadata", FULL: "fullmetadata"}[self.metadata]
            return f"application/json;odata={level};streaming=true;charset=utf-8"
        if self.kind == V4:
            return (
                f"application/json;odata.metadata={self.metadata};odata.streaming=true;"
                "IEEE754Compatible=false;charset=utf-8"
            )
        return "application/atom+xml;type=entry;charset=utf-8"

    @property
    def version_headers(self) -> dict[str, str]:
        return {"OData-Version": "4.0"} if self.kind == V4 else {"DataServiceVersion": "3.0"}


class NotAcceptableError(ValueError):
    """The Accept header names no format SharePoint serves (or the v4 + ``odata=`` quirk)."""


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    """The media ranges of an Accept header, by decreasing ``q`` (stable: ties keep their order);
    ``q=0`` ranges are dropped."""
    ranges: list[tuple[float, str, dict[str, str]]] = []
    for part in accept.split(","):
        pieces = [p.strip() for p in part.split(";") if p.strip()]
        if not pieces:
            continue
        params = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip().lower()] = value.strip().strip('"').lower()
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            ranges.append((quality, pieces[0].lower(), params))
    ranges.sort(key=lambda r: -r[0])
    return [(media, params) for _, media, params in ranges]


def negotiate(accept: str | None, odata_version: str | None) -> Format:
    """The response format for an ``Accept`` header (the most preferred acceptable range wins) and
    ``OData-Version``."""
    v4_requested = (odata_version or "").strip().split(";")[0].strip() == "4.0"
    if not accept or not accept.strip():
        return Format(ATOM)
    for media, params in _media_ranges(accept):
        if media == "application/json":
            if "odata" in params:
                if v4_requested:  # SPHttpClient's OData-Version: 4.0 turns odata=... into a 406
                    raise NotAcceptableError(ACCEPT_INVALID)
                if params["odata"] == "verbose":
                    return Format(VERBOSE)
                if params["odata"] in _LIGHT_LEVELS:
                    return Format(LIGHT, _LIGHT_LEVELS[params["odata"]])
                continue
            if "odata.metadata" in params:
                if params["odata.metadata"] in _V4_LEVELS:
                    return Format(V4, _V4_LEVELS[params["odata.metadata"]])
                continue
            return Format(V4 if v4_requested else LIGHT, MINIMAL)
        if media in _XML_TYPES:
            return Format(ATOM)
    raise NotAcceptableError(ACCEPT_INVALID)


# ------------------------------------------------------------------------------------------- model
@dataclass
class Complex:
    type: str
    props: list[Prop]


@dataclass
class Prop:
    name: str
    edm: str  # Edm.String, Edm.Int32, Edm.Boolean, a complex type name, or Collection(...)
    value: Any  # scalar, Complex, list of scalars or of Complex, or None


@dataclass
class Entity:
    type: str  # e.g. SP.User
    path: str  # relative to {site}/_api/, e.g. Web/GetUserById(9)
    entity_set: str  # for the metadata URL fragment
    props: list[Prop]
    navigation: list[str] = field(default_factory=list)  # deferred navigation properties


def _json_value(prop: Prop, fmt: Format) -> Any:
    value = prop.value
    if isinstance(value, Complex):
        return _complex_json(value, fmt)
    if isinstance(value, list):
        items = [_complex_json(v, fmt) if isinstance(v, Complex) else v for v in value]
        if fmt.kind == VERBOSE:
            result: dict[str, Any] = {"results": items}
            if not items or not isinstance(value[0], Complex):
                result = {"__metadata": {"type": prop.edm}, "results": items}
            return result
        return items
    return value


def _complex_json(value: Complex, fmt: Format) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if fmt.kind == VERBOSE:
        body["__metadata"] = {"type": value.type}
    elif fmt.kind == LIGHT and fmt.metadata == FULL:
        body["odata.type"] = value.type
    elif fmt.kind == V4 and fmt.metadata == FULL:
        body["@odata.type"] = f"#{value.type}"
    for p in value.props:
        body[p.name] = _json_value(p, fmt)
    return body


def entity_json(entity: Entity, fmt: Format, api_base: str) -> dict[str, Any]:
    """``api_base`` is the absolute ``.../_api/`` URL of the site the request addressed."""
    uri = api_base + entity.path
    body: dict[str, Any] = {}
    if fmt.kind == VERBOSE:
        body["__metadata"] = {"id": uri, "uri": uri, "type": entity.type}
        for nav in entity.navigation:
            body[nav] = {"__deferred": {"uri": f"{uri}/{nav}"}}
    elif fmt.kind == LIGHT and fmt.metadata != NONE:
        body["odata.metadata"] = f"{api_base}$metadata#{entity.entity_set}/@Element"
        body.update({"odata.type": entity.type, "odata.id": uri, "odata.editLink": entity.path})
    elif fmt.kind == V4 and fmt.metadata != NONE:
        body["@odata.context"] = f"{api_base}$metadata#{entity.entity_set}/$entity"
        body.update({"@odata.type": f"#{entity.type}", "@odata.id": uri, "@odata.editLink": entity.path})
    for prop in entity.props:
        if fmt.metadata == FULL and isinstance(prop.value, list) and fmt.kind in (LIGHT, V4):
            body[f"{prop.name}@odata.type"] = prop.edm if fmt.kind == LIGHT else f"#{prop.edm}"
        body[prop.name] = _json_value(prop, fmt)
    if fmt.metadata == FULL and fmt.kind in (LIGHT, V4):
        suffix = "@odata.navigationLinkUrl" if fmt.kind == LIGHT else "@odata.navigationLink"
        for nav in entity.navigation:
            body[f"{nav}{suffix}"] = f"{entity.path}/{nav}"
    return {"d": body} if fmt.kind == VERBOSE else body


# ---------------------------------------------------------------------------------------- Atom XML
def _xml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


def _xml_prop(prop: Prop) -> str:
    name, value = f"d:{prop.name}", prop.value
    typed = "" if prop.edm == "Edm.String" else f" m:type={quoteattr(prop.edm)}"
    if value is None:
        return f'<{name} m:null="true" />'
    if isinstance(value, Complex):
        inner = "".join(_xml_prop(p) for p in value.props)
        return f"<{name}{typed}>{inner}</{name}>"
    if isinstance(value, list):
        elements = []
        for item in value:
            if isinstance(item, Complex):
                elements.append("<d:element>" + "".join(_xml_prop(p) for p in item.props) + "</d:element>")
            else:
                elements.append(f"<d:element>{_xml_scalar(item)}</d:element>")
        return f"<{name}{typed}>{''.join(elements)}</{name}>"
    return f"<{name}{typed}>{_xml_scalar(value)}</{name}>"


def entity_atom(entity: Entity, api_base: str) -> str:
    updated = CLOCK.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    links = [f'<link rel="edit" href={quoteattr(entity.path)} />']
    for nav in entity.navigation:
        links.append(
            f'<link rel="{DS}/related/{nav}" type="application/atom+xml;type=feed" title="{nav}" '
            f"href={quoteattr(entity.path + '/' + nav)} />"
        )
    props = "".join(_xml_prop(p) for p in entity.props)
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<entry xml:base={quoteattr(api_base)} xmlns="http://www.w3.org/2005/Atom" xmlns:d="{DS}" '
        f'xmlns:m="{DSM}" xmlns:georss="http://www.georss.org/georss" xmlns:gml="http://www.opengis.net/gml">'
        f"<id>{escape(api_base + entity.path)}</id>"
        f'<category term={quoteattr(entity.type)} scheme="{DS}/scheme" />'
        f"{''.join(links)}<title /><updated>{updated}</updated><author><name /></author>"
        f'<content type="application/xml"><m:properties>{props}</m:properties></content></entry>'
    )


# ---------------------------------------------------------------------------------------- responses
def render(entity: Entity, fmt: Format, api_base: str, headers: dict[str, str]) -> Response:
    all_headers = {**fmt.version_headers, **headers}
    if fmt.kind == ATOM:
        return Response(entity_atom(entity, api_base), media_type=fmt.content_type, headers=all_headers)
    payload = json.dumps(entity_json(entity, fmt, api_base), ensure_ascii=False, separators=(",", ":"))
    return Response(payload, media_type=fmt.content_type, headers=all_headers)


def odata_error(
    status: int, code: str, message: str, fmt: Format | None, headers: dict[str, str] | None = None
) -> Response:
    """A SharePoint REST error in the request's format (JSON light when the format is unknown)."""
    all_headers = dict(headers or {})
    if fmt is not None and fmt.kind == ATOM:
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><m:error xmlns:m="{DSM}">'
            f"<m:code>{escape(code)}</m:code>"
            f'<m:message xml:lang="en-US">{escape(message)}</m:message></m:error>'
        )
        return Response(
            body,
            status_code=status,
            media_type="application/xml;charset=utf-8",
            headers={"DataServiceVersion": "3.0", **all_headers},
        )
    error = {"code": code, "message": {"lang": "en-US", "value": message}}
    if fmt is not None and fmt.kind == VERBOSE:
        payload, ctype = {"error": error}, "application/json;odata=verbose;charset=utf-8"
    else:
        payload, ctype = {"odata.error": error}, (fmt or Format(LIGHT)).content_type
    return Response(
        json.dumps(payload, ensure_ascii=False), status_code=status, media_type=ctype, headers=all_headers
    )


def not_acceptable(message: str, headers: dict[str, str] | None = None) -> Response:
    payload = {"error": {"code": CLIENT_SERVICE_EXCEPTION, "message": {"lang": "en-US", "value": message}}}
    return Response(
        json.dumps(payload),
        status_code=406,
        media_type="application/json;charset=utf-8",
        headers=headers or {},
    )
