#!/bin/sh
# azd prepackage: the single-page client served at /spa/ needs Microsoft's @azure/msal-browser in the
# package. npm installs the version package.json pins; scripts/build_spa.py copies it into
# shared/web/spa/vendor/ (deployed with shared/; node_modules itself is not).
set -eu
cd "$(dirname "$0")/../.."
npm ci --no-audit --no-fund --loglevel=error
python3 -m scripts.build_spa
