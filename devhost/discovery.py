"""Find the functions of a v2-model app with azure-functions' own introspection.

This mirrors what the Python worker does when it indexes an app: import the
script (``function_app.py`` unless ``PYTHON_SCRIPT_FILE_NAME`` says otherwise)
with the app directory first on ``sys.path``, take the single module-level
``FunctionRegister`` (``FunctionApp``, ``AsgiFunctionApp``, ...), and call
``get_functions()`` once (a second call raises in azure-functions 1.x).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import azure.functions as func
from azure.functions.decorators.core import Binding
from azure.functions.decorators.function_app import Function

__all__ = [
    "ALL_METHODS",
    "DiscoveryError",
    "FunctionSpec",
    "HttpSpec",
    "QueueSpec",
    "TimerSpec",
    "discover",
    "import_app_module",
]

HTTP_TRIGGER = "httpTrigger"
TIMER_TRIGGER = "timerTrigger"
QUEUE_TRIGGER = "queueTrigger"
ALL_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_DIRECTION_IN = 0
_log = logging.getLogger("devhost")


class DiscoveryError(Exception):
    """The app cannot be imported or indexed."""


@dataclass(frozen=True)
class HttpSpec:
    route: str  # template without routePrefix and without leading/trailing "/"
    methods: frozenset[str]
    auth_level: str


@dataclass(frozen=True)
class TimerSpec:
    schedule: str  # as declared, possibly with %SETTING% references
    run_on_startup: bool
    use_monitor: bool | None


@dataclass(frozen=True)
class QueueSpec:
    queue_name: str  # as declared, possibly with %SETTING% references
    connection: str  # the app setting (or setting prefix) naming the account; "" means AzureWebJobsStorage
    parameter_type: str  # "message" (func.QueueMessage), "str" or "bytes": what the parameter is annotated as


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    trigger_type: str
    trigger_arg: str
    user_function: Callable[..., Any]
    is_async: bool
    wants_context: bool
    http: HttpSpec | None = None
    timer: TimerSpec | None = None
    queue: QueueSpec | None = None
    unsupported_bindings: tuple[str, ...] = ()
    bindings: tuple[dict[str, Any], ...] = ()  # function.json "bindings"
    error: str | None = None  # why the worker would refuse to load it


def import_app_module(app_dir: Path, script_file: str = "function_app.py") -> ModuleType:
    """Import the app script the way the worker does (app dir first on sys.path)."""
    script = app_dir / script_file
    if not script.is_file():
        raise DiscoveryError(f"{script} not found")
    app_path = str(app_dir)
    if app_path in sys.path:
        sys.path.remove(app_path)
    sys.path.insert(0, app_path)
    module_name = script.stem
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise DiscoveryError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise DiscoveryError(f"importing {script} failed: {error!r}") from error
    return module


def find_function_app(module: ModuleType) -> func.FunctionRegister:
    apps = [value for value in vars(module).values() if isinstance(value, func.FunctionRegister)]
    unique = list({id(app): app for app in apps}.values())
    if not unique:
        raise DiscoveryError(f"no FunctionApp instance at the top level of {module.__file__}")
    if len(unique) > 1:
        raise DiscoveryError(f"more than one FunctionApp instance at the top level of {module.__file__}")
    return unique[0]


def discover(module: ModuleType) -> list[FunctionSpec]:
    """Index the module's FunctionApp into FunctionSpecs (calls get_functions once)."""
    app = find_function_app(module)
    try:
        functions = app.get_functions()
    except ValueError as error:  # e.g. duplicate function names
        raise DiscoveryError(str(error)) from error
    return [_to_spec(function) for function in functions]


def _to_spec(function: Function) -> FunctionSpec:
    name = function.get_function_name() or function.get_user_function().__name__
    trigger = function.get_trigger()
    if trigger is None:
        raise DiscoveryError(f"function {name!r} has no trigger")
    user_function = function.get_user_function()
    trigger_type = str(trigger.type)
    return FunctionSpec(
        name=name,
        trigger_type=trigger_type,
        trigger_arg=trigger.name,
        user_function=user_function,
        is_async=inspect.iscoroutinefunction(user_function),
        wants_context=_declares_context(user_function),
        http=_http_spec(name, trigger) if trigger_type == HTTP_TRIGGER else None,
        timer=_timer_spec(trigger) if trigger_type == TIMER_TRIGGER else None,
        queue=_queue_spec(trigger, user_function) if trigger_type == QUEUE_TRIGGER else None,
        unsupported_bindings=_unsupported_bindings(function.get_bindings(), trigger),
        bindings=tuple(json.loads(raw) for raw in function.get_raw_bindings()),
        error=_parameter_mismatch(user_function, function.get_bindings()),
    )


def _http_spec(name: str, trigger: Binding) -> HttpSpec:
    route = getattr(trigger, "route", None)
    methods = getattr(trigger, "methods", None)
    auth_level = getattr(trigger, "auth_level", None)
    return HttpSpec(
        route=(route if route is not None else name).strip("/"),
        methods=_methods(methods),
        auth_level=str(_enum_value(auth_level) or "function").lower(),
    )


def _methods(methods: Iterable[object] | None) -> frozenset[str]:
    if methods is None:
        return ALL_METHODS
    names = frozenset(str(_enum_value(method)).upper() for method in methods)
    return names or ALL_METHODS


def _timer_spec(trigger: Binding) -> TimerSpec:
    run_on_startup = getattr(trigger, "run_on_startup", None)
    use_monitor = getattr(trigger, "use_monitor", None)
    return TimerSpec(
        schedule=str(getattr(trigger, "schedule", "")),
        run_on_startup=bool(run_on_startup),
        use_monitor=None if use_monitor is None else bool(use_monitor),
    )


def _queue_spec(trigger: Binding, user_function: Callable[..., Any]) -> QueueSpec:
    return QueueSpec(
        queue_name=str(getattr(trigger, "queue_name", "") or ""),
        connection=str(getattr(trigger, "connection", "") or ""),
        parameter_type=_queue_parameter_type(user_function, trigger.name),
    )


def _queue_parameter_type(user_function: Callable[..., Any], name: str) -> str:
    """The worker passes the body as ``str``/``bytes`` to a parameter so annotated, else a QueueMessage."""
    try:
        annotation = inspect.signature(user_function, eval_str=True).parameters[name].annotation
    except (KeyError, NameError, TypeError, ValueError):
        return "message"
    if annotation is str:
        return "str"
    if annotation is bytes:
        return "bytes"
    return "message"


def _unsupported_bindings(bindings: Iterable[Binding], trigger: Binding) -> tuple[str, ...]:
    unsupported = []
    for binding in bindings:
        if binding is trigger:
            continue
        if binding.type == "http" and binding.name == "$return":
            continue  # the HTTP response is the function's return value
        direction = "in" if binding.direction == _DIRECTION_IN else "out"
        unsupported.append(f"{binding.name} ({binding.type}, {direction})")
    return tuple(unsupported)


def _parameter_mismatch(user_function: Callable[..., Any], bindings: Iterable[Binding]) -> str | None:
    """The worker's check: parameters and binding names must correspond."""
    try:
        signature = inspect.signature(user_function)
    except (TypeError, ValueError):
        return None
    named = {
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    }
    bound = {binding.name for binding in bindings if binding.name != "$return"}
    if extra := sorted(named - bound - {"context"}):
        return f"parameters {extra} are declared in Python but not bound (binding names: {sorted(bound)})"
    if missing := sorted(bound - named):
        return f"bindings {missing} have no parameter of that name in the Python function"
    return None


def _declares_context(user_function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(user_function).parameters
    except (TypeError, ValueError):
        return False
    return "context" in parameters


def _enum_value(value: object) -> object:
    return getattr(value, "value", value)
