"""Directory collections (``/users``, ``/groups``): query options, advanced-query rules, keyset paging.

Listing stays cheap with 100,000 users: each sort order has a sorted index (keys + objects) built once and
rebuilt only when the directory changes (``change_seq``, the object count, or a reset); a page is a bisect
into it plus a forward scan. ``$skiptoken`` is an HMAC-signed, opaque token carrying the whole query and the
sort key of the last object served, so a page never repeats or skips an object that existed throughout.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from emulator.graph.entity import EntitySchema, compile_directory_filter, compile_search, require_advanced
from emulator.graph.http import Ctx, GraphError, json_response
from emulator.graph.query import (
    build_url,
    decode_token,
    encode_token,
    parse_count,
    parse_int_option,
    parse_orderby,
)
from emulator.graph.store import graph_store


# --------------------------------------------------------------------------------- sorted indexes
@dataclass
class SortedIndex:
    keys: list[tuple[int, str, str]]
    items: list[Any]


def sort_key(value: Any, obj_id: str) -> tuple[int, str, str]:
    if value is None:
        return (1, "", obj_id)
    text = (
        value.casefold()
        if isinstance(value, str)
        else (value.isoformat() if hasattr(value, "isoformat") else str(value))
    )
    return (0, text, obj_id)


def sorted_index(ctx: Ctx, schema: EntitySchema, objects: list[Any], prop: str) -> SortedIndex:
    directory = ctx.state.directory
    cache = graph_store(ctx.state).indexes
    version = (id(directory), directory.change_seq, len(objects))
    entry = cache.get((schema.entity_set, prop))
    if entry is not None and entry[0] == version and entry[1] is directory:
        return entry[2]  # type: ignore[no-any-return]
    getter = schema.sort_values[prop]
    pairs = sorted(((sort_key(getter(o), o.id), o) for o in objects), key=lambda p: p[0])
    index = SortedIndex([p[0] for p in pairs], [p[1] for p in pairs])
    cache[(schema.entity_set, prop)] = (version, directory, index)
    return index


# ----------------------------------------------------------------------------------------- listing
@dataclass
class ListQuery:
    top: int
    select: str | None
    filter: str | None
    search: str | None
    orderby: str | None
    count: bool
    advanced: bool
    #: An advanced query (ConsistencyLevel: eventual with $search, $count or $orderby): every page of it
    #: must carry the header again, since Graph does not carry headers into nextLinks.
    eventual: bool = False


def _read_query(
    ctx: Ctx, schema: EntitySchema, max_top: int, default_top: int
) -> tuple[ListQuery, Any, bool]:
    """The query of this request, or of the ``$skiptoken`` it presents (which then wins)."""
    q = ctx.query
    token = q.get("$skiptoken")
    if token is not None:
        payload = decode_token(graph_store(ctx.state).page_secret, token)
        if payload is None or payload.get("e") != schema.entity_set:
            raise GraphError(
                400,
                "Directory_ExpiredPageToken",
                "The specified page token value has expired and can no longer be included in your request.",
            )
        if payload.get("h") and not ctx.advanced_header:
            # An advanced query's token names the eventual-consistency index: a page requested without
            # ConsistencyLevel is served from the other index, where the token means nothing.
            raise GraphError(
                400, "Request_UnsupportedQuery", "Unable to execute query; invalid page token specified."
            )
        lq = ListQuery(
            payload["t"],
            payload.get("sel"),
            payload.get("f"),
            payload.get("s"),
            payload.get("o"),
            bool(payload.get("c")),
            bool(payload.get("a")),
            bool(payload.get("h")),
        )
        return lq, tuple(payload["k"]), False
    if "$skip" in q:
        raise GraphError(400, "Request_BadRequest", "'$skip' is not supported by the service.")
    if "$expand" in q:
        raise schema.unknown(q["$expand"].split("(")[0].split(",")[0].strip())
    top = default_top
    if "$top" in q:
        top = parse_int_option("$top", q["$top"])
        if not 1 <= top <= max_top:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Invalid page size specified: '{top}'. Must be between 1 and {max_top} inclusive.",
            )
    count = parse_count(q.get("$count"))
    if count and not ctx.advanced_header:
        raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
    if "$search" in q and not ctx.advanced_header:
        raise GraphError(
            400,
            "Request_UnsupportedQuery",
            "Request with $search query parameter only works "
            "through MSGraph with a special request header: "
            "'ConsistencyLevel: eventual'",
        )
    lq = ListQuery(
        top,
        q.get("$select"),
        q.get("$filter"),
        q.get("$search"),
        q.get("$orderby"),
        count,
        ctx.advanced_header and count,
        ctx.advanced_header and ("$search" in q or count or "$orderby" in q),
    )
    return lq, None, True


def _order(schema: EntitySchema, lq: ListQuery) -> tuple[str, bool]:
    items = parse_orderby(lq.orderby)
    if not items:
        return "id", False
    if len(items) > 1:
        raise GraphError(400, "Request_UnsupportedQuery", "Sorting not supported for current query.")
    raw, desc = items[0]
    prop = schema.lookup.get(raw.lower())
    if prop is None:
        raise schema.unknown(raw)
    if prop not in schema.sort_basic | schema.sort_advanced:
        raise GraphError(
            400, "Request_UnsupportedQuery", f"Unsupported sort property '{prop}' for '{schema.resource}'."
        )
    if not lq.advanced:
        if prop not in schema.sort_basic:
            raise GraphError(
                400,
                "Request_UnsupportedQuery",
                f"Unsupported sort property '{prop}' for '{schema.resource}'.",
            )
        if desc or lq.filter:
            raise GraphError(400, "Request_UnsupportedQuery", "Sorting not supported for current query.")
    return prop, desc


def _walk(index: SortedIndex, after: tuple[Any, ...] | None, desc: bool) -> Iterator[Any]:
    keys, items = index.keys, index.items
    if not desc:
        start = 0 if after is None else bisect.bisect_right(keys, after)
        for i in range(start, len(items)):
            yield items[i]
    else:
        start = len(items) - 1 if after is None else bisect.bisect_left(keys, after) - 1
        for i in range(start, -1, -1):
            yield items[i]


def list_directory(
    ctx: Ctx,
    schema: EntitySchema,
    objects: list[Any],
    path: str,
    *,
    basic_only: bool = False,
    max_top: int = 999,
    default_top: int = 100,
    check_filter: Callable[[list[str]], None] | None = None,
) -> Any:
    lq, after, first_page = _read_query(ctx, schema, max_top, default_top)
    select = schema.select(lq.select)
    if select and first_page:
        refused = [p for p in select if p in schema.not_in_collections]
        if refused:
            raise GraphError(501, "NotImplemented", "This operation target is not yet supported.")
    predicate: Callable[[Any], bool] | None = None
    if lq.filter is not None:
        predicate, features, used = compile_directory_filter(schema, lq.filter)
        if features and not lq.advanced:
            raise require_advanced(features)
        if check_filter is not None:
            check_filter(used)
    if lq.search is not None:
        search = compile_search(schema, lq.search)
        predicate = search if predicate is None else (lambda o, a=predicate, b=search: a(o) and b(o))
    prop, desc = _order(schema, lq)
    index = sorted_index(ctx, schema, objects, prop)
    page: list[Any] = []
    more = False
    for obj in _walk(index, after, desc):
        if predicate is not None and not predicate(obj):
            continue
        if len(page) == lq.top:
            more = True
            break
        page.append(obj)
    body: dict[str, Any] = {"@odata.context": schema.context_url(ctx.origin, select)}
    if lq.count and first_page:
        body["@odata.count"] = len(objects) if predicate is None else sum(1 for o in objects if predicate(o))
    body["value"] = [schema.project(o, select, basic_only) for o in page]
    if more:
        last = page[-1]
        token = encode_token(
            graph_store(ctx.state).page_secret,
            {
                "e": schema.entity_set,
                "t": lq.top,
                "sel": lq.select,
                "f": lq.filter,
                "s": lq.search,
                "o": lq.orderby,
                "c": lq.count,
                "a": lq.advanced,
                "h": lq.eventual,
                "k": list(sort_key(schema.sort_values[prop](last), last.id)),
            },
        )
        params = [
            (k, v)
            for k, v in (
                ("$top", str(lq.top) if lq.top != default_top else None),
                ("$select", lq.select),
                ("$filter", lq.filter),
                ("$search", lq.search),
                ("$orderby", lq.orderby),
                ("$count", "true" if lq.count else None),
            )
            if v is not None
        ]
        body["@odata.nextLink"] = build_url(ctx.origin, path, [*params, ("$skiptoken", token)])
    return json_response(body)


def count_directory(ctx: Ctx, schema: EntitySchema, objects: list[Any]) -> Any:
    """``/users/$count``: text/plain, ConsistencyLevel required; ``$filter``/``$search`` apply."""
    from starlette.responses import PlainTextResponse

    if not ctx.advanced_header:
        raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
    predicate: Callable[[Any], bool] | None = None
    if "$filter" in ctx.query:
        predicate, _, _ = compile_directory_filter(schema, ctx.query["$filter"])
    if "$search" in ctx.query:
        search = compile_search(schema, ctx.query["$search"])
        predicate = search if predicate is None else (lambda o, a=predicate, b=search: a(o) and b(o))
    total = len(objects) if predicate is None else sum(1 for o in objects if predicate(o))
    return PlainTextResponse(str(total), media_type="text/plain")
