"""Directory reaction: a user disabled or deleted in Entra loses their sessions in this app within seconds.

The users subscription (``resource: users``, ``changeType: updated,deleted``, ``User.Read.All``) posts a
notification when a user changes; the worker brings it here. ``deleted`` (permanent deletion) ends the
person's sessions at once; ``updated`` (which also covers soft deletion) is confirmed with one read,
``GET /users/{id}?$select=id,accountEnabled``: a 404 (soft-deleted) or ``accountEnabled: false`` ends them.
Sessions end through the session store's person index (:mod:`shared.signin.person_sessions`), wired in by
:mod:`shared.app` as ``end_sessions``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.core.errors import NotFound
from shared.graph.client import GraphClient

logger = logging.getLogger(__name__)


class DirectoryReaction:
    """Ends the sessions of users Entra disabled or deleted (module docstring). Thread-safe."""

    def __init__(self, graph: GraphClient, tenant_id: str, end_sessions: Callable[[str, str], int]) -> None:
        self._graph = graph
        self._tenant = tenant_id
        self._end = end_sessions

    def react(self, object_id: str, change: str) -> str:
        """React to ``change`` of user ``object_id``. Returns ``ended`` or ``unchanged``.

        Raises:
            UpstreamError, UpstreamThrottled, StorageUnavailable, ...: retried with the work message.
        """
        if change != "deleted":
            try:
                user = self._graph.get_json(f"users/{object_id}", params={"$select": "id,accountEnabled"})
            except NotFound:
                user = None
            if user is not None and user.get("accountEnabled") is not False:
                return "unchanged"
        ended = self._end(self._tenant, object_id)
        logger.info("Directory reaction: a user was disabled or deleted; %d sessions ended", ended)
        return "ended"
