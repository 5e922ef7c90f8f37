"""Composition root of the Graph Functions app (Azure Functions, Python v2 programming model).

One ``FunctionApp`` registers the blueprints; nothing else happens here. HTTP auth level is ANONYMOUS
because the app authenticates callers itself (Entra bearer tokens, :mod:`shared.identity.bearer`); function
keys would add a shared secret without identifying anyone.

Import cost matters: the worker imports this module at indexing, on every cold start. Heavy libraries
(msal, azure.identity, azure.keyvault, jwt, cryptography, requests) are imported on first use inside
``shared``, never from here.
"""

import azure.functions as func

from blueprints import (
    audit,
    auth,
    health,
    mail,
    me,
    notifications,
    openapi,
    pages,
    report_pages,
    reports,
    session_cleanup,
    spa,
    tenants,
    users,
)
from shared.app import report_configuration

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for blueprint in (
    health.bp,
    users.bp,
    me.bp,
    auth.bp,
    pages.bp,
    mail.bp,
    audit.bp,
    reports.bp,
    report_pages.bp,
    openapi.bp,
    session_cleanup.bp,
    spa.bp,
    tenants.bp,
    notifications.bp,
):
    app.register_functions(blueprint)

# Log configuration problems at start (never raises: health must keep answering).
report_configuration()
