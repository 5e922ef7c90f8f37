"""Several organisations in one local tenant process: the home tenant (Contoso, where Graph Functions is
registered) and customer organisations with their own directories, tokens, mail and service principals.

Modules: :mod:`registry` (one :class:`~emulator.tenants.registry.TenantSlot` per organisation, the active
one per request), :mod:`scope` (the ASGI middleware choosing it), :mod:`principals` (service principals of
a multi-tenant app in other organisations), :mod:`signin` (sign-in across organisations), :mod:`control`
(control API). Documented in ``emulator/docs/multi-tenant.md``.
"""
