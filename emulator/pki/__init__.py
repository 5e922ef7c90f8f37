"""The local tenant's keys and certificates: the local CA and server certificate (:mod:`tls`), the
token-signing keys (:mod:`signing_keys`), the app's own certificate (:mod:`app_certificate`), and the
self-signed X.509 helper they share (:mod:`x509`). Everything is generated once per state dir."""
