# azd prepackage (Windows): see prepackage.sh.
$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..' '..')
npm ci --no-audit --no-fund --loglevel=error
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
python -m scripts.build_spa
exit $LASTEXITCODE
