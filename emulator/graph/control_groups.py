"""Control routes for groups and memberships, mounted with the other Graph control routes (see docs/graph.md).

* ``POST /groups`` — create a group, optionally with members (users by id or UPN, groups by id).
* ``POST /groups/{id}/members`` ``{"id"}`` — add a user or a group as a direct member (nesting).
* ``DELETE /groups/{id}/members/{memberId}`` — remove a direct member (a user by id or UPN, or a group).

Each change notifies ``groups`` subscriptions (``updated``; docs/notifications.md).

Membership rules are Graph's own (:func:`emulator.graph.membership.add_member`): a duplicate or a cycle is
409 here, an unknown object 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from emulator.clock import CLOCK
from emulator.directory.model import Group
from emulator.graph.control import BadInput, _body, _error, _slug
from emulator.graph.http import GraphError
from emulator.graph.membership import add_member, direct_members
from emulator.graph.notify_events import record_group_change
from emulator.state import EmulatorState

GROUP_KEYS = frozenset(
    {"displayName", "mailNickname", "description", "securityEnabled", "mailEnabled", "groupTypes", "members"}
)


def group_control_routes(state: EmulatorState) -> list[BaseRoute]:
    def group_json(group: Group) -> dict[str, Any]:
        members = direct_members(state.directory, group)
        return {
            **group.to_graph(),
            "members": [{"id": m.id, "type": "group" if isinstance(m, Group) else "user"} for m in members],
        }

    def add(group: Group, key: Any) -> None:
        if not isinstance(key, str) or not key:
            raise BadInput("a member is a user id, a userPrincipalName or a group id")
        user = state.directory.user(key)
        try:
            add_member(state.directory, group, user.id if user is not None else key)
        except GraphError as exc:
            raise BadInput(exc.message, 404 if exc.status == 404 else 409) from exc

    async def create_group(request: Request) -> Response:
        try:
            body = await _body(request)
            unknown = set(body) - GROUP_KEYS
            if unknown:
                raise BadInput(f"unknown property '{sorted(unknown)[0]}'")
            name = body.get("displayName")
            if not isinstance(name, str) or not name.strip():
                raise BadInput("displayName is required")
            types = body.get("groupTypes", [])
            if types not in ([], ["Unified"]):
                raise BadInput("groupTypes is [] or ['Unified']")
            flags = {
                k: body.get(k, d) for k, d in (("securityEnabled", not types), ("mailEnabled", bool(types)))
            }
            if not all(isinstance(v, bool) for v in flags.values()):
                raise BadInput("securityEnabled and mailEnabled are booleans")
            members = body.get("members", [])
            if not isinstance(members, list):
                raise BadInput("members is a list of user ids, userPrincipalNames or group ids")
            nick = body.get("mailNickname") or _slug(name).replace(".", "-")
            group = Group(
                id=str(uuid.uuid4()),
                display_name=name.strip(),
                mail_nickname=str(nick),
                description=str(body.get("description") or ""),
                security_enabled=flags["securityEnabled"],
                mail_enabled=flags["mailEnabled"],
                group_types=tuple(types),
                created=CLOCK.now().replace(microsecond=0),
            )
            state.directory.groups.append(group)
            try:
                for key in members:
                    add(group, key)
            except BadInput:
                state.directory.groups.remove(group)
                raise
        except BadInput as exc:
            return _error(exc)
        record_group_change(state, group.id)
        return JSONResponse(group_json(group), status_code=201)

    async def add_group_member(request: Request) -> Response:
        try:
            body = await _body(request)
            group = state.directory.group(request.path_params["gid"])
            if group is None:
                raise BadInput(f"no group '{request.path_params['gid']}'", 404)
            add(group, body.get("id"))
        except BadInput as exc:
            return _error(exc)
        record_group_change(state, group.id)
        return JSONResponse(group_json(group))

    async def remove_group_member(request: Request) -> Response:
        group = state.directory.group(request.path_params["gid"])
        if group is None:
            return _error(BadInput(f"no group '{request.path_params['gid']}'", 404))
        user = state.directory.user(request.path_params["mid"])
        member = user.id if user is not None else request.path_params["mid"]
        if member in group.members:
            group.members.remove(member)
        elif member in group.member_groups:
            group.member_groups.remove(member)
        else:
            return _error(BadInput(f"'{member}' is not a direct member of the group", 404))
        record_group_change(state, group.id)
        return Response(status_code=204)

    return [
        Route("/groups", create_group, methods=["POST"]),
        Route("/groups/{gid}/members", add_group_member, methods=["POST"]),
        Route("/groups/{gid}/members/{mid}", remove_group_member, methods=["DELETE"]),
    ]
