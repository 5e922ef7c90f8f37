"""host.json and local.settings.json, read the way Azure Functions Core Tools does.

Precedence of app settings (``local.settings.json`` ``Values``): a variable
that is **already set in the environment wins** and the file's value is skipped
with a warning naming the key, exactly like ``func start`` (v4). That lets a
test, a CI job or a shell override any value without editing the file. The
values are put into ``os.environ`` before the function app is imported, so
module-level ``os.environ[...]`` reads in ``function_app.py`` see them.

Port precedence: ``--port`` on the command line, then ``Host.LocalHttpPort``
from local.settings.json, then 7071.

``functionTimeout`` (host.json) is a TimeSpan of at least one second, or ``-1``
for no limit; without it the host's non-Consumption default, 30 minutes, applies
(the host's ``ScriptHostOptionsSetup``; Core Tools runs as a non-Consumption host).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.timespan import parse_timespan

__all__ = [
    "DEFAULT_FUNCTION_TIMEOUT",
    "DEFAULT_PORT",
    "DEFAULT_ROUTE_PREFIX",
    "HostConfig",
    "LocalSettings",
    "SettingsError",
    "apply_values",
    "load_host_config",
    "load_local_settings",
    "request_body_limit",
    "resolve_port",
    "thread_count",
]

DEFAULT_PORT = 7071
DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_BODY_LIMIT = 100 * 1024 * 1024  # the Functions host's 100 MB
DEFAULT_FUNCTION_TIMEOUT = dt.timedelta(minutes=30)
_MIN_FUNCTION_TIMEOUT = dt.timedelta(seconds=1)
_log = logging.getLogger("devhost")


class SettingsError(Exception):
    """host.json or local.settings.json cannot be used."""


@dataclass(frozen=True)
class LocalSettings:
    path: Path
    exists: bool
    values: Mapping[str, str] = field(default_factory=dict)
    local_http_port: int | None = None
    cors_origins: tuple[str, ...] = ()
    cors_credentials: bool = False


@dataclass(frozen=True)
class HostConfig:
    path: Path
    route_prefix: str = DEFAULT_ROUTE_PREFIX
    functions: tuple[str, ...] | None = None  # host.json "functions" allow-list
    function_timeout: dt.timedelta | None = DEFAULT_FUNCTION_TIMEOUT  # None: no limit
    queues: object = None  # extensions.queues as written; devhost.queue_options parses it once settings apply


def load_local_settings(path: Path) -> LocalSettings:
    """Read local.settings.json; a missing file is allowed (Core Tools warns)."""
    if not path.is_file():
        return LocalSettings(path=path, exists=False)
    document = _read_json_object(path)
    if document.get("IsEncrypted") is True:
        raise SettingsError(
            f"{path}: IsEncrypted is true; devhost cannot decrypt values "
            "encrypted by 'func settings encrypt'. Decrypt them with "
            "'func settings decrypt' or keep a plain-text copy for local use."
        )
    values = _string_values(path, document.get("Values") or {})
    host = document.get("Host") or {}
    if not isinstance(host, dict):
        raise SettingsError(f"{path}: 'Host' must be an object")
    port = host.get("LocalHttpPort")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise SettingsError(f"{path}: Host.LocalHttpPort must be a port number")
    cors = host.get("CORS") or ""
    if not isinstance(cors, str):
        raise SettingsError(f"{path}: Host.CORS must be a comma-separated string")
    return LocalSettings(
        path=path,
        exists=True,
        values=values,
        local_http_port=port,
        cors_origins=tuple(o.strip() for o in cors.split(",") if o.strip()),
        cors_credentials=host.get("CORSCredentials") is True,
    )


def apply_values(values: Mapping[str, str], environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Copy app settings into the environment; existing variables win.

    Returns the names that were skipped because the environment already had
    them with a different value (the same value is no conflict worth a
    warning). Values are never logged, only names.
    """
    target = os.environ if environ is None else environ
    skipped = []
    for name, value in values.items():
        if name in target:
            if target[name] != value:
                skipped.append(name)
            continue
        target[name] = value
    # Core Tools always runs the host as Development unless told otherwise.
    target.setdefault("AZURE_FUNCTIONS_ENVIRONMENT", "Development")
    return skipped


def load_host_config(app_dir: Path) -> HostConfig:
    """Read host.json, which both the real host and Core Tools require."""
    path = app_dir / "host.json"
    if not path.is_file():
        raise SettingsError(
            f"{path} not found: an Azure Functions project needs host.json "
            "(func start refuses to run without it too)"
        )
    document = _read_json_object(path)
    if document.get("version") != "2.0":
        _log.warning("%s: 'version' should be \"2.0\" for Functions v4", path)
    extensions = document.get("extensions") or {}
    http = extensions.get("http") if isinstance(extensions, dict) else None
    prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX) if isinstance(http, dict) else DEFAULT_ROUTE_PREFIX
    if not isinstance(prefix, str):
        raise SettingsError(f"{path}: extensions.http.routePrefix must be a string")
    functions = document.get("functions")
    if functions is not None and (
        not isinstance(functions, list) or not all(isinstance(name, str) for name in functions)
    ):
        raise SettingsError(f"{path}: 'functions' must be a list of function names")
    return HostConfig(
        path=path,
        route_prefix=prefix.strip("/"),
        functions=tuple(functions) if functions is not None else None,
        function_timeout=_function_timeout(path, document.get("functionTimeout")),
        queues=extensions.get("queues") if isinstance(extensions, dict) else None,
    )


def _function_timeout(path: Path, raw: object) -> dt.timedelta | None:
    if raw is None:
        return DEFAULT_FUNCTION_TIMEOUT
    if not isinstance(raw, str):
        raise SettingsError(f'{path}: functionTimeout must be a TimeSpan string such as "00:05:00"')
    if raw.strip() == "-1":
        return None
    try:
        timeout = parse_timespan(raw)
    except ValueError as error:
        raise SettingsError(f"{path}: functionTimeout: {error}") from error
    if timeout < _MIN_FUNCTION_TIMEOUT:
        # The host refuses to start with such a value, so devhost does too.
        raise SettingsError(f"{path}: functionTimeout must be at least 00:00:01 (or -1 for no limit)")
    return timeout


def resolve_port(cli_port: int | None, local: LocalSettings) -> int:
    """``--port``, else ``Host.LocalHttpPort``, else 7071 (Core Tools' order)."""
    if cli_port is not None:
        return cli_port
    return local.local_http_port if local.local_http_port is not None else DEFAULT_PORT


def request_body_limit(environ: Mapping[str, str] | None = None) -> int:
    """Largest request body in bytes: ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT``, else 100 MB."""
    values = os.environ if environ is None else environ
    raw = values.get("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    if raw:
        _log.warning("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT=%r is not a positive integer", raw)
    return DEFAULT_BODY_LIMIT


def thread_count(environ: Mapping[str, str] | None = None) -> int:
    """Size of the pool that runs sync functions (``PYTHON_THREADPOOL_THREAD_COUNT``).

    The default is the Python worker's on Python 3.9+: the standard
    ThreadPoolExecutor default, ``min(32, cpu_count + 4)``.
    """
    values = os.environ if environ is None else environ
    default = min(32, (os.cpu_count() or 1) + 4)
    raw = values.get("PYTHON_THREADPOOL_THREAD_COUNT")
    if raw is None or raw == "":
        return default
    try:
        count = int(raw)
    except ValueError:
        count = 0
    if count < 1:
        _log.warning(
            "PYTHON_THREADPOOL_THREAD_COUNT=%r is not a positive integer; using %d",
            raw,
            default,
        )
        return default
    return count


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as error:
        raise SettingsError(f"{path}: cannot read JSON: {error}") from error
    if not isinstance(document, dict):
        raise SettingsError(f"{path}: the top level must be a JSON object")
    return document


def _string_values(path: Path, raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: 'Values' must be an object")
    values: dict[str, str] = {}
    for name, value in raw.items():
        if not name:
            _log.warning("%s: skipping a value with an empty name", path)
        elif value is None:
            continue  # Core Tools skips nulls
        elif isinstance(value, bool):
            values[name] = "True" if value else "False"  # as .NET prints them
        elif isinstance(value, (str, int, float)):
            values[name] = str(value)
        else:
            raise SettingsError(f"{path}: Values.{name} must be a string")
    return values
