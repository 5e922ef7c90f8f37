"""Build step of the single-page client: copy Microsoft's ``@azure/msal-browser`` (installed by ``npm ci``
from package.json's pinned version) into ``shared/web/spa/vendor/``, which the app serves under
``/spa/vendor/``.

msal-browser ships ES modules that import ``@azure/msal-common/browser``, a bare specifier a browser cannot
resolve by itself (an import map would be an inline script, which the page's CSP forbids); the copy rewrites
it to the absolute path of the copied msal-common browser build. Nothing else is changed; source maps are
left out. ``make install`` runs it after ``npm ci`` (CI too); the output is not committed (.gitignore).

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
BARE = "@azure/msal-common/browser"
COMMON_ENTRY = "/spa/vendor/msal-common/index-browser.mjs"


def _common_root(browser: Path) -> Path:
    """msal-common as msal-browser resolves it: its own nested copy first, then the top level."""
    for candidate in (
        browser / "node_modules" / "@azure" / "msal-common",
        NODE_MODULES / "@azure" / "msal-common",
    ):
        if (candidate / "dist-browser" / "index-browser.mjs").is_file():
            return candidate
    raise SystemExit("msal-common's browser build is missing under node_modules: run `npm ci`")


def _copy(source: Path, target: Path, *, rewrite: bool) -> int:
    count = 0
    for path in sorted(source.rglob("*.mjs")):
        text = path.read_text(encoding="utf-8")
        if rewrite:
            text = text.replace(f"'{BARE}'", f"'{COMMON_ENTRY}'").replace(f'"{BARE}"', f'"{COMMON_ENTRY}"')
        if BARE in text:
            raise SystemExit(f"{path}: an import of {BARE} this build does not understand")
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        count += 1
    return count


def build() -> dict[str, str]:
    """Rebuild ``OUT`` from node_modules; returns the versions copied."""
    browser = NODE_MODULES / "@azure" / "msal-browser"
    if not (browser / "dist" / "index.mjs").is_file():
        raise SystemExit("@azure/msal-browser is not installed: run `npm ci` (package.json pins it)")
    common = _common_root(browser)
    versions = {
        name: json.loads((root / "package.json").read_text())["version"]
        for name, root in (("@azure/msal-browser", browser), ("@azure/msal-common", common))
    }
    staging = OUT.with_name("vendor.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    _copy(browser / "dist", staging / "msal-browser", rewrite=True)
    _copy(common / "dist-browser", staging / "msal-common", rewrite=False)
    (staging / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    shutil.rmtree(OUT, ignore_errors=True)
    staging.rename(OUT)
    return versions


if __name__ == "__main__":
    print(f"single-page client: {build()} in {OUT.relative_to(ROOT)}", file=sys.stderr)
