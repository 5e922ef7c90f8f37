"""devhost: a small local Azure Functions host for development and tests.

Azure Functions Core Tools cannot be installed everywhere (its installer
downloads a binary), so ``python -m devhost`` serves a v2-model
``function_app.py`` over HTTP and fires its timers, reading the same
``host.json`` and ``local.settings.json`` as ``func start``.

Development only: production code never imports this package.
See ``python -m devhost --help`` and docs in each module.
"""
