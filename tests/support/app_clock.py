"""Preloaded by devhost (``--preload tests.support.app_clock``) in test hosts that move the app's time.

The composition root of such a host: the app's :class:`~shared.app.services.Runtime` is built exactly as
``shared.app.services.current()`` builds it (from ``os.environ``), except that its services wait on devhost's
clock (:data:`devhost.clock.CLOCK`), which a test moves forward through ``POST /admin/devhost/clock``
(:func:`advance_app_clock`). Production never imports this module: the app's clock stays ``time.monotonic``.
"""

from __future__ import annotations

import os

from devhost.clock import CLOCK
from shared.app import services

services.install(services.Runtime(env=os.environ, clock=CLOCK.monotonic, sleep=CLOCK.sleep))
