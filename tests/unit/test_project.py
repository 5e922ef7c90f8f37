"""Project-level contracts: settings samples and docs, dependency bounds, host.json, cold-start imports."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from shared.core.settings import SETTING_NAMES, Settings
from shared.version import __version__

ROOT = Path(__file__).resolve().parents[2]
#: Identity-based storage: alternatives to the AzureWebJobsStorage connection string the sample uses locally.
IDENTITY_STORAGE = {name for name in SETTING_NAMES if name.startswith("AzureWebJobsStorage__")}
LAZY_MODULES = ("msal", "jwt", "cryptography", "requests", "azure.identity", "azure.keyvault", "azure.core")


def test_version_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == __version__


def test_sample_settings_are_complete_and_valid() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())
    values = sample["Values"]
    assert sample["IsEncrypted"] is False
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsFeatureFlags"] == "EnableWorkerIndexing"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    assert set(SETTING_NAMES) - IDENTITY_STORAGE <= set(values)
    assert all(isinstance(v, str) for v in values.values())  # the host only accepts strings
    Settings.from_env(values)  # the sample itself is a valid configuration


def test_every_setting_is_documented() -> None:
    docs = (ROOT / "docs" / "settings.md").read_text()
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    for name in set(SETTING_NAMES) | set(sample):
        assert f"`{name}`" in docs, name


def test_requirements_are_bounded_and_never_name_an_index() -> None:
    for file in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / file).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if not line or line.startswith("-r "):
                continue
            assert not line.startswith("-"), f"{file}: options such as index URLs do not belong here: {line}"
            assert ">=" in line and "<" in line.replace("<=", ""), f"{file}: unbounded requirement {line}"
    names = [
        re.split(r"[<>=\[ ]", line, maxsplit=1)[0]
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and line[0].isalpha()
    ]
    assert "azure-functions-worker" not in names  # the platform provides the worker
    assert "msgraph-sdk" not in names  # about a second of cold start; shared/graph/client.py covers our needs


def test_host_json() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    assert host["extensions"]["http"]["routePrefix"] == ""
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert "Exception" in sampling["excludedTypes"]
    assert host["logging"]["logLevel"]["default"] == "Information"


def test_function_app_imports_heavy_libraries_lazily() -> None:
    """Heavy libraries stay out of the cold-start import (the time itself is measured by `make bench`)."""
    code = "import sys; import function_app; print(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    loaded = set(result.stdout.split())
    for lazy in LAZY_MODULES:
        assert lazy not in loaded, f"{lazy} is imported by function_app"
