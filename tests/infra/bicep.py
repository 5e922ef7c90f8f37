"""Offline facts about infra/: every Bicep file parsed once with pycep-parser (Bicep to JSON, no Azure, no
network), plus the checkov runner. Shared by the tests of this directory."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
APP_REGISTRATION = INFRA / "app-registration.bicep"
MODULES = INFRA / "modules"
CHECKOV_CONFIG = INFRA / ".checkov.yaml"
#: checkov lives in its own venv (its pinned dependencies must not touch the app's); `make install` builds it.
CHECKOV = Path(os.environ.get("CHECKOV", ROOT / ".venv-tools" / "bin" / "checkov"))


def bicep_files() -> list[Path]:
    """Every .bicep file under infra/, sorted."""
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def _parser() -> BicepParser:
    """One parser per process: each BicepParser builds its Lark LALR parser (about 100 ms of CPU, from
    lark's cache), and parsing holds no state between files."""
    return BicepParser()


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    """The pycep JSON of one Bicep file. Raises (lark's UnexpectedInput, ValueError) on a parse error."""
    return _parser().parse(file_path=path)


def resources(path: Path) -> dict[str, dict[str, Any]]:
    """Resources of a file by symbolic name: {type, api_version, existing, config}."""
    return parse(path).get("resources", {})


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's body, looking through `if (...)` and `[for ...]` wrappers."""
    config = resource["config"]
    while "loop_type" in config or "condition" in config:
        config = config["config"]
    return config


def accessor(expression: Any) -> list[str]:
    """`a.b.c` as ['a', 'b', 'c'] (pycep nests property accessors); [] for anything else."""
    if isinstance(expression, str):
        return [expression]
    operator = expression.get("operator", {}) if isinstance(expression, dict) else {}
    if operator.get("type") != "property_accessor":
        return []
    operands = operator["operands"]
    return accessor(operands["operand_1"]) + accessor(operands["operand_2"])


def unquoted(mapping: dict[str, Any]) -> dict[str, Any]:
    """An object's entries with Bicep's quoted keys ('azd-env-name') unquoted."""
    return {key.strip("'"): value for key, value in mapping.items()}


def graph_extension_files() -> list[Path]:
    """The Bicep files that use the Microsoft Graph extension (checkov cannot parse them)."""
    return [path for path in bicep_files() if "microsoftGraphV1" in parse(path).get("extensions", {})]


def app_settings() -> dict[str, Any]:
    """The Function App's application settings, as app-settings.bicep's `appsettings` resource sets them."""
    (settings,) = (
        body(resource)
        for resource in resources(MODULES / "app-settings.bicep").values()
        if resource["type"] == "Microsoft.Web/sites/config" and body(resource)["name"] == "appsettings"
    )
    return dict(settings["properties"])


def variables(path: Path) -> dict[str, Any]:
    """A file's variables by name (their parsed values)."""
    return {name: variable["value"] for name, variable in parse(path).get("variables", {}).items()}


@functools.cache
def checkov(*, with_config: bool) -> dict[str, Any]:
    """checkov's JSON report on infra/ (bicep, offline). ``with_config``: with infra/.checkov.yaml (its
    skips); otherwise every check, still without the files the config skips (see the config for why)."""
    if not CHECKOV.exists():
        raise AssertionError(
            f"checkov is missing at {CHECKOV}: run `make install` (it creates .venv-tools with checkov)"
        )
    with tempfile.TemporaryDirectory() as scratch:
        if with_config:
            cwd, args = ROOT, ["--config-file", str(CHECKOV_CONFIG)]
        else:
            # checkov also reads a .checkov.yaml inside the scanned directory, so scan a copy without it.
            cwd = Path(scratch)
            shutil.copytree(INFRA, cwd / "infra", ignore=shutil.ignore_patterns(CHECKOV_CONFIG.name))
            args = ["-d", "infra", "--framework", "bicep", "--skip-download"]
            for path in [*graph_extension_files(), MAIN]:
                args += ["--skip-path", str(path.relative_to(ROOT))]
        return _run_checkov(cwd, args)


#: checkov's own entry point (its console script, run as ``__main__``) with the garbage collector off: a
#: short-lived CLI that builds large object graphs, it spent a quarter of its CPU (2.7 of 10 CPU-s a run) in
#: full collections that freed nothing; its peak memory is the same (237 MB) and its report identical.
_WITHOUT_GC = (
    "import gc, runpy, sys; gc.disable(); sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _checkov_command() -> list[str]:
    python = CHECKOV.parent / "python"  # the console script's own interpreter (its venv)
    if python.exists():
        return [str(python), "-c", _WITHOUT_GC, str(CHECKOV)]
    return [str(CHECKOV)]


def _run_checkov(cwd: Path, args: list[str]) -> dict[str, Any]:
    completed = subprocess.run(
        [*_checkov_command(), *args, "--output", "json", "--no-fail-on-crash"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        # Offline: no guideline-mapping download, no package update check.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
    )
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(
            f"checkov gave no JSON report:\n{completed.stdout}\n{completed.stderr}"
        ) from error
    if isinstance(report, list):  # one report per framework; only bicep runs
        (report,) = report
    return report
