"""``python -m devhost``: serve a v2-model function app like ``func start``.

Order of start-up, as in Core Tools: read host.json and local.settings.json,
put the settings into the environment (existing variables win), import and
index ``function_app.py``, print the functions, then serve until SIGINT or
SIGTERM. Shutdown is graceful: stop accepting connections, let in-flight
requests and timer invocations finish (up to ``--graceful-timeout`` seconds),
stop the timers, exit 0.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from devhost.discovery import DiscoveryError, discover, import_app_module
from devhost.host import banner_lines, build_state
from devhost.queue_options import QueueOptionsError, parse_queue_options
from devhost.schedule_status import create_store, host_id
from devhost.server import HostState, TlsListener, build_app, serve
from devhost.settings import (
    DEFAULT_PORT,
    SettingsError,
    apply_values,
    load_host_config,
    load_local_settings,
    request_body_limit,
    resolve_port,
    thread_count,
)
from devhost.timers import resolve_timezone, timezone_warning

_log = logging.getLogger("devhost")
EXIT_CONFIG = 2
EXIT_INDEXING = 3


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devhost",
        description="Serve an Azure Functions (Python v2 model) app locally.",
    )
    parser.add_argument("--app-dir", default=".", help="the function app directory (default: .)")
    parser.add_argument(
        "--port",
        type=_port_number,
        help=f"HTTP port (default: Host.LocalHttpPort from local.settings.json, else {DEFAULT_PORT})",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument(
        "--settings",
        help="local settings file (default: <app-dir>/local.settings.json)",
    )
    parser.add_argument(
        "--no-timers",
        action="store_true",
        help="do not schedule timer triggers (the admin API can still run them)",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=int,
        default=10,
        help="seconds to let in-flight work finish on shutdown (default: 10)",
    )
    parser.add_argument(
        "--https-port",
        type=_port_number,
        help="also serve HTTPS on this port (dev only: Graph calls https only); needs --tls-cert, --tls-key",
    )
    parser.add_argument("--tls-cert", help="PEM certificate chain of the HTTPS listener")
    parser.add_argument("--tls-key", help="PEM private key of the HTTPS listener")
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE after the settings are applied and before the app (repeatable); tests wire the "
        "app to devhost's clock this way (devhost.clock)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: info)",
    )
    return parser.parse_args(argv)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    # The Azure SDKs log request and response headers at INFO: never show them.
    logging.getLogger("azure").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    app_dir = Path(args.app_dir).resolve()
    settings_path = Path(args.settings).resolve() if args.settings else app_dir / "local.settings.json"
    try:
        host_config = load_host_config(app_dir)
        local = load_local_settings(settings_path)
    except SettingsError as error:
        _log.error("%s", error)
        return EXIT_CONFIG
    if not local.exists:
        _log.warning("%s not found; using the environment only", settings_path)
    for name in apply_values(local.values):
        _log.warning(
            "Skipping '%s' from %s: it is already set in the environment",
            name,
            settings_path.name,
        )
    try:  # after the settings: the defaults depend on AZURE_FUNCTIONS_ENVIRONMENT and WEBSITE_SKU
        queue_options = parse_queue_options(host_config.path, host_config.queues)
    except QueueOptionsError as error:
        _log.error("%s", error)
        return EXIT_CONFIG
    runtime = os.environ.get("FUNCTIONS_WORKER_RUNTIME")
    if runtime and runtime.lower() != "python":
        _log.warning("FUNCTIONS_WORKER_RUNTIME is %r; devhost runs Python apps", runtime)

    os.chdir(app_dir)  # the worker's working directory is the app root
    for name in args.preload:
        try:
            importlib.import_module(name)
        except Exception:  # the module's own traceback: a typo or a failing import
            _log.exception("Preloading %s failed", name)
            return EXIT_INDEXING
    try:
        module = import_app_module(app_dir, os.environ.get("PYTHON_SCRIPT_FILE_NAME", "function_app.py"))
        specs = discover(module)
    except DiscoveryError as error:
        # Show the app's own traceback (an import error, a bad decorator...).
        _log.error("Indexing the function app failed: %s", error, exc_info=error.__cause__)
        return EXIT_INDEXING

    tz = resolve_timezone(os.environ)
    the_host_id = host_id(os.environ, app_dir)
    state = build_state(
        specs,
        host_config=host_config,
        environ=os.environ,
        app_dir=app_dir,
        host_id=the_host_id,
        store=create_store(os.environ, the_host_id, tz),
        tz=tz,
        thread_count=thread_count(),
        body_limit=request_body_limit(),
        schedule_timers=not args.no_timers,
        graceful_timeout=args.graceful_timeout,
        queue_options=queue_options,
    )
    port = resolve_port(args.port, local)
    _report(state, args, port)
    app = build_app(state, cors_origins=local.cors_origins, cors_credentials=local.cors_credentials)
    tls = None
    if args.https_port is not None:
        if not args.tls_cert or not args.tls_key:
            _log.error("--https-port needs --tls-cert and --tls-key")
            return EXIT_CONFIG
        tls = TlsListener(port=args.https_port, cert_file=args.tls_cert, key_file=args.tls_key)
        shown = "localhost" if _is_local_or_any(args.host) else args.host
        print(f"HTTPS: https://{shown}:{args.https_port} (the same functions)", flush=True)
    if not serve(app, host=args.host, port=port, graceful_timeout=args.graceful_timeout, tls=tls):
        return 1
    stuck = state.invoker.threads_running
    if stuck:
        # Worker threads are not daemons: exit without waiting for them.
        _log.warning("Exiting with %d sync invocation(s) still running", stuck)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)
    return 0


def _report(state: HostState, args: argparse.Namespace, port: int) -> None:
    shown_host = "localhost" if _is_local_or_any(args.host) else args.host
    for line in banner_lines(state, f"http://{shown_host}:{port}", timers_enabled=not args.no_timers):
        print(line)
    sys.stdout.flush()
    for spec in state.functions.values():
        if spec.unsupported_bindings:
            _log.warning(
                "Function '%s': bindings not supported by devhost are not passed: %s",
                spec.name,
                ", ".join(spec.unsupported_bindings),
            )
    guarded = [s.name for s in state.functions.values() if s.http and s.http.auth_level != "anonymous"]
    if guarded:
        _log.info(
            "Auth levels are not enforced locally (as with Core Tools); %d function(s) need a key in Azure",
            len(guarded),
        )
    for name, error in state.errors.items():
        _log.error("Function '%s' is in error and will not run: %s", name, error)
    zone_warning = timezone_warning(os.environ, state.scheduler.tz)
    if state.scheduler.timers and zone_warning:
        _log.warning("%s", zone_warning)
    if state.queues.queues:
        _log.info("Queue triggers: %s", state.queues.options.describe())
    _log.info(
        "Host %s: sync functions run on %d thread(s); timer status %s",
        state.host_id,
        state.invoker.thread_count,
        state.scheduler.store_description,
    )


def _port_number(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{text} is not a port number")
    return port


def _is_local_or_any(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    return address.is_loopback or address.is_unspecified


if __name__ == "__main__":
    sys.exit(main())
