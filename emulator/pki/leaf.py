"""Server certificates signed by the local CA, for services the local tenant calls back (an app's webhook).

Graph only calls https URLs and the local tenant verifies them against the local CA (``tls/bundle.pem``), so
an app that receives change notifications locally serves https with a certificate from here::

    python -m emulator.pki.leaf --state-dir .local/tenant --out .local/app-tls localhost 127.0.0.1

writes ``server.pem`` and ``server.key`` (mode 0600) under ``--out``: an EC P-256 key and a certificate for
the given DNS names and IP addresses, valid for 825 days, signed by the state dir's CA (created if missing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from emulator.pki.tls import ensure_tls


def issue_leaf(state_dir: Path, names: list[str], out_dir: Path) -> tuple[Path, Path]:
    """Issue a server certificate for ``names`` (DNS names or IP addresses); returns (cert, key) paths.

    Raises:
        ValueError: no names given.
    """
    if not names:
        raise ValueError("name at least one DNS name or IP address")
    material = ensure_tls(state_dir)
    ca_cert = x509.load_pem_x509_certificate(material.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key((state_dir / "tls" / "ca.key").read_bytes(), None)
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out_dir / "server.pem", out_dir / "server.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.pki.leaf", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=Path(".local/tenant"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    cert, key = issue_leaf(args.state_dir, args.names, args.out)
    print(f"{cert}\n{key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
