"""The reports API's part of the OpenAPI document (merged into :mod:`shared.app.openapi`)."""

from __future__ import annotations

from typing import Any

from shared.identity.roles import AppRole
from shared.report.layout import REPORT_DATE_PATTERN
from shared.web.openapi_parts import error_refs, ok_response, ref


def _json(description: str, schema: str, *, location: bool = False) -> dict[str, Any]:
    headers = {"Location": {"description": "The run's status resource.", "schema": {"type": "string"}}}
    return ok_response(description, schema, headers=headers if location else None)


def _errors(*codes: str) -> dict[str, Any]:
    return error_refs(*codes, names={"404": "ReportNotFound"})


def _read(operation_id: str, summary: str, ok: dict[str, Any], *parameters: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "description": (
                f"Services with the app role {AppRole.REPORTS_READ} (bearer token), or people signed in to "
                f"the pages whose ID token carries {AppRole.REPORTS_READ} (session cookie). A bearer token "
                "wins over a cookie."
            ),
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "x-required-app-role": AppRole.REPORTS_READ,
            "parameters": [ref("parameters", p) for p in parameters],
            "responses": {**ok, **_errors("400", "401", "403", "404", "500", "502", "503")},
        }
    }


PATHS: dict[str, Any] = {
    "/api/reports/users": {
        "post": {
            "operationId": "startUserReport",
            "summary": "Start a report run (it continues outside the request, through a Storage queue).",
            "description": (
                "202 with the queued run and Location of its status resource; 200 with the status when the "
                "date's report is already complete and force is not true. A forced re-run is audited and "
                "replaces today's report only: for a past date whose report completed it is a 409 "
                "report_completed (a past date whose report never completed runs as usual)."
            ),
            "security": [{"bearerAuth": []}],
            "x-required-app-role": AppRole.REPORTS_RUN,
            "parameters": [ref("parameters", "reportDateQuery"), ref("parameters", "force")],
            "responses": {
                "200": _json(
                    "The report of that date is already complete.", "ReportRunStatus", location=True
                ),
                "202": _json("The run is queued.", "ReportRunStatus", location=True),
                "409": ref("responses", "ReportCompleted"),
                **_errors("400", "401", "403", "500", "502", "503"),
            },
        }
    },
    "/api/reports/users/latest": _read(
        "getLatestUserReport",
        "The newest completed report's summary.",
        {"200": _json("The summary.", "ReportSummary")},
    ),
    "/api/reports/users/{date}": _read(
        "getUserReport",
        "The summary of one report date.",
        {"200": _json("The summary.", "ReportSummary")},
        "reportDate",
    ),
    "/api/reports/users/{date}/status": _read(
        "getUserReportStatus",
        "State and progress of the latest run for one date.",
        {"200": _json("The run's status.", "ReportRunStatus")},
        "reportDate",
    ),
    "/api/reports/users/{date}/{file}": _read(
        "getUserReportFile",
        "users.csv or changes.csv: a 303 to a short-lived, read-only SAS URL of the blob.",
        {
            "303": {
                "description": "See Location: the CSV in Blob Storage, readable for 5 minutes.",
                "headers": {
                    "x-request-id": ref("headers", "RequestId"),
                    "Location": {"description": "SAS URL of the blob.", "schema": {"type": "string"}},
                },
                "content": {"application/json": {"schema": ref("schemas", "ReportFileLink")}},
            }
        },
        "reportDate",
        "reportFile",
    ),
}
# The route-sync test requires a 200 on every operation; the file link answers 303 only.
PATHS["/api/reports/users/{date}/{file}"]["get"]["responses"]["200"] = {
    "description": "Never sent (see 303)."
}

PARAMETERS: dict[str, Any] = {
    "reportDate": {
        "name": "date",
        "in": "path",
        "required": True,
        "description": "Report date, YYYY-MM-DD (a calendar date).",
        "schema": {"type": "string", "format": "date", "pattern": f"^{REPORT_DATE_PATTERN}$"},
    },
    "reportDateQuery": {
        "name": "date",
        "in": "query",
        "required": False,
        "description": "Report date, YYYY-MM-DD (default: today in the schedule's zone; not in the future).",
        "schema": {"type": "string", "format": "date", "pattern": f"^{REPORT_DATE_PATTERN}$"},
    },
    "force": {
        "name": "force",
        "in": "query",
        "required": False,
        "description": "true re-runs a completed report (audited).",
        "schema": {"type": "string", "enum": ["true", "false"], "default": "false"},
    },
    "reportFile": {
        "name": "file",
        "in": "path",
        "required": True,
        "description": "users.csv or changes.csv.",
        "schema": {"type": "string", "enum": ["users.csv", "changes.csv"]},
    },
}

_COUNT = {"type": "integer", "minimum": 0}
SCHEMAS: dict[str, Any] = {
    "ReportSummary": {
        "type": "object",
        "required": ["reportDate", "totals", "departments", "changes", "graph", "signInActivity"],
        "properties": {
            "reportDate": {"type": "string", "format": "date"},
            "runId": {"type": "string"},
            "blobPrefix": {
                "type": "string",
                "description": "Where this report's files are stored (the run that produced it).",
            },
            "trigger": {"type": "string", "enum": ["timer", "on-demand"]},
            "forced": {"type": "boolean"},
            "startedAt": {"type": "string", "format": "date-time"},
            "generatedAt": {"type": "string", "format": "date-time"},
            "durationSeconds": {"type": "number"},
            "totals": {
                "type": "object",
                "properties": {
                    name: _COUNT
                    for name in (
                        "users",
                        "enabled",
                        "disabled",
                        "members",
                        "guests",
                        "createdLast24h",
                        "createdLast7d",
                    )
                },
            },
            "departments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "users": _COUNT, "departments": _COUNT},
                },
            },
            "signInActivity": {
                "type": "object",
                "properties": {
                    "included": {"type": "boolean"},
                    "reason": {"type": "string", "nullable": True},
                },
            },
            "changes": {
                "type": "object",
                "properties": {
                    "since": {"type": "string", "format": "date", "nullable": True},
                    "mode": {"type": "string", "enum": ["baseline", "delta", "resync"]},
                    "added": _COUNT,
                    "changed": _COUNT,
                    "removed": _COUNT,
                    "disabled": _COUNT,
                    "enabled": _COUNT,
                    "note": {"type": "string", "nullable": True},
                },
            },
            "graph": {"type": "object"},
            "files": {"type": "object"},
        },
    },
    "ReportRunStatus": {
        "type": "object",
        "required": ["reportDate", "state"],
        "properties": {
            "reportDate": {"type": "string", "format": "date"},
            "runId": {"type": "string"},
            "state": {
                "type": "string",
                "enum": ["queued", "running", "interrupted", "completed", "failed", "unknown"],
            },
            "trigger": {"type": "string"},
            "forced": {"type": "boolean"},
            "pages": _COUNT,
            "users": _COUNT,
            "retries": _COUNT,
            "reason": {"type": "string", "nullable": True},
        },
    },
    "ReportFileLink": {
        "type": "object",
        "required": ["location"],
        "properties": {"location": {"type": "string"}},
    },
}

RESPONSES: dict[str, Any] = {
    "ReportCompleted": {
        "description": "force=true for a past date whose report completed (code report_completed).",
        "headers": {"x-request-id": ref("headers", "RequestId")},
        "content": {"application/json": {"schema": ref("schemas", "Error")}},
    },
    "ReportNotFound": {
        "description": "No completed report (or run) for that date (code report_not_found).",
        "headers": {"x-request-id": ref("headers", "RequestId")},
        "content": {"application/json": {"schema": ref("schemas", "Error")}},
    },
}
