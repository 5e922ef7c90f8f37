"""Caller kinds through the real host: the users endpoints accept application (app-only) tokens only.

Tokens are signed with the tenant's own current key (``forge_token``), so each case differs from an accepted
token only in the claims under test.
"""

from __future__ import annotations

import pytest

from tests.devhost.fixtures import DevHostProcess
from tests.integration.checks import assert_error, call
from tests.support.apphost import forge_token
from tests.support.tenant import LocalTenant

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("path", "code", "named"),
    [
        # /api/users serves a person's own token only for this API's scope access_as_user.
        ("/api/users", "insufficient_scope", "access_as_user"),
        ("/api/users/00000000-0000-0000-0000-000000000001", "caller_kind_not_allowed", "applications"),
    ],
)
def test_delegated_token_whose_user_holds_the_role_is_refused(
    app_host: DevHostProcess, local_tenant: LocalTenant, path: str, code: str, named: str
) -> None:
    # roles: Users.Read.All; a person's token (sub is pairwise, never the oid)
    delegated = forge_token(local_tenant, scp="User.Read", idtyp="user", sub="pairwise-subject")
    response = call(app_host, path, delegated)
    error = assert_error(response, 403, code)
    assert named in error["message"]
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="insufficient_scope"')
    # The same claims without scp (an app-only token) pass authentication.
    assert call(app_host, "/api/users", forge_token(local_tenant), {"top": "1"}).status_code == 200
