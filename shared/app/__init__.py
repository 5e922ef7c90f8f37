"""The app assembled: the process's services (:class:`Runtime`), each tenant's services, start-up checks
and the OpenAPI document. Only the edge and the blueprints reach it."""

from shared.app.openapi import openapi_document
from shared.app.services import Runtime, current, install, report_configuration
from shared.app.tenants import TenantServices

__all__ = ["Runtime", "TenantServices", "current", "install", "openapi_document", "report_configuration"]
