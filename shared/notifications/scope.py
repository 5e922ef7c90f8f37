"""The mailboxes a scope names: ``MAILBOX_SCOPE``'s group members (nested groups included), or every user.

Required Graph permission: ``GroupMember.Read.All`` for a group scope, ``User.Read.All`` for ``*``.
"""

from __future__ import annotations

from shared.graph.client import GraphClient


def scope_members(graph: GraphClient, scope: str | None) -> dict[str, str]:
    """The in-scope mailboxes: object id -> UPN (lower-cased); none for no scope. A group's members are listed
    with ``GET /groups/{id}/members`` and each nested group's in turn (each group once, cycles included).

    Raises:
        UpstreamError, UpstreamThrottled, ...: a page could not be read (the caller must not act on a
        partial list).
    """
    if scope is None:
        return {}
    found: dict[str, str] = {}
    if scope == "*":
        _collect(graph, "users", found, [])
        return found
    pending, visited = [scope], {scope}
    while pending:
        nested: list[str] = []
        _collect(graph, f"groups/{pending.pop()}/members", found, nested)
        for group in nested:
            if group not in visited:
                visited.add(group)
                pending.append(group)
    return found


def _collect(graph: GraphClient, path: str, found: dict[str, str], groups: list[str]) -> None:
    params = {"$select": "id,userPrincipalName", "$top": "999"}
    for page in graph.iter_pages(path, params=params):
        for item in page.items:
            object_id, upn = item.get("id"), item.get("userPrincipalName")
            if not isinstance(object_id, str) or not object_id:
                continue
            kind = str(item.get("@odata.type", "#microsoft.graph.user")).lower()
            if kind == "#microsoft.graph.group":
                groups.append(object_id.lower())
            elif kind == "#microsoft.graph.user":
                found[object_id.lower()] = upn.lower() if isinstance(upn, str) else ""
