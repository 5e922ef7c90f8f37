"""Directory reaction: a user disabled or deleted in Entra loses their sessions in this app within seconds.

The users subscription (``resource: users``, ``changeType: updated,deleted``, ``User.Read.All``) posts a
notification when a user changes; the worker brings it here. ``deleted`` (permanent deletion) ends the
person's sessions at once; ``updated`` (which also covers soft deletion) is confirmed with one read,
``GET /users/{id}?$select=id,accountEnabled``: a 404 (soft-deleted) or ``accountEnabled: false`` ends them.
A read that still fails after the Graph client's retries (an outage, throttling past its budget) ends them
too (fail closed, ``ended-unconfirmed``): the notification is not sent again, and a session must not outlive
a disabling because Graph was down; the person signs in again, through Entra, if they still may.
Sessions end through the session store's person index (:mod:`shared.signin.person_sessions`), wired in by
:mod:`shared.app` as ``end_sessions``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.core.errors import GraphFunctionsError, NotFound
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

        Returns ``ended-unconfirmed`` when the user could not be read and their sessions were ended anyway.

        Raises:
            StorageUnavailable: the sessions could not be ended; retried with the work message.
        """
        outcome = "ended"
        if change != "deleted":
            try:
                user = self._graph.get_json(f"users/{object_id}", params={"$select": "id,accountEnabled"})
            except NotFound:
                user = None
            except GraphFunctionsError as error:
                # Fail closed: the change may be a disabling, and a retry of this notification may never
                # come (the queue gives up after maxDequeueCount, Graph does not send it again). Ending the
                # sessions costs the person a sign-in, which Entra itself answers with the real state.
                logger.warning(
                    "Directory reaction: a changed user could not be read (%s); ending their sessions",
                    error.code,
                )
                user, outcome = None, "ended-unconfirmed"
            if user is not None and user.get("accountEnabled") is not False:
                return "unchanged"
        ended = self._end(self._tenant, object_id)
        logger.info("Directory reaction: a user was disabled or deleted; %d sessions ended", ended)
        return outcome
