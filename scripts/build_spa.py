"""Build step of the single-page client: copy Microsoft's ``@azure/msal-browser`` (installed by ``npm ci``
from package.json's pinned version) into ``shared/web/spa/vendor/``, which the app serves under
``/spa/vendor/``.

What is copied is the package's own minified browser bundle, ``lib/msal-browser.min.js`` (msal-common
included; it defines the global ``msal``), the build Microsoft's vanilla-JavaScript samples load with a
``<script>`` tag. One file of about 300 KB, where the package's ES modules are some 300 files and 2.7 MB
(each a request to the app, in Azure a function execution, and a module the browser compiles on every
visit). Nothing is changed in it. ``make install`` runs this after ``npm ci`` (CI and the azd
``prepackage`` hook too); the output is not committed (.gitignore).

Usage: ``python3 -m scripts.build_spa``. Exits 1 with a message when node_modules lacks the package.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = ROOT / "node_modules"
OUT = ROOT / "shared" / "web" / "spa" / "vendor"
BUNDLE = "msal-browser.min.js"


def build() -> dict[str, str]:
    """Rebuild ``OUT`` from node_modules; returns the version copied."""
    browser = NODE_MODULES / "@azure" / "msal-browser"
    bundle = browser / "lib" / BUNDLE
    if not bundle.is_file():
        raise SystemExit("@azure/msal-browser is not installed: run `npm ci` (package.json pins it)")
    versions = {"@azure/msal-browser": json.loads((browser / "package.json").read_text())["version"]}
    staging = OUT.with_name("vendor.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(bundle, staging / BUNDLE)
    (staging / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    shutil.rmtree(OUT, ignore_errors=True)
    staging.rename(OUT)
    return versions


if __name__ == "__main__":
    print(f"single-page client: {build()} in {OUT.relative_to(ROOT)}", file=sys.stderr)
