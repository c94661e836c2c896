"""TLS material for the embedded API server: a private CA and a serving certificate.

Keys are EC P-256 (generating one takes about a millisecond). When a state folder is given
the CA and the serving pair are cached there, so a restarted server keeps the CA that an
existing kubeconfig trusts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
CERT_FILE = "apiserver.crt"
KEY_FILE = "apiserver.key"
_VALIDITY = dt.timedelta(days=365)
_RENEW_BEFORE = dt.timedelta(days=7)
DEFAULT_HOSTS = ("127.0.0.1", "localhost", "::1", "kubernetes", "kubernetes.default", "kubernetes.default.svc")


@dataclass(frozen=True)
class TlsMaterial:
    """PEM-encoded CA certificate plus the serving certificate and key."""

    ca_pem: bytes
    ca_key_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for the server side, loaded with the serving pair."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        # load_cert_chain only reads files: write the pair to a private temporary folder.
        with tempfile.TemporaryDirectory(prefix="labkit-tls-") as tmp:
            cert, key = Path(tmp) / CERT_FILE, Path(tmp) / KEY_FILE
            _write_private(cert, self.cert_pem + self.ca_pem)
            _write_private(key, self.key_pem)
            ctx.load_cert_chain(cert, key)
        return ctx


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _san(hosts: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def generate_ca(now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """A fresh self-signed CA; returns ``(cert_pem, key_pem)``."""
    now = now or dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "labkit-embedded-ca")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY * 10)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_serving_cert(
    ca_pem: bytes, ca_key_pem: bytes, hosts: tuple[str, ...] = DEFAULT_HOSTS, now: dt.datetime | None = None
) -> tuple[bytes, bytes]:
    """A serving certificate for ``hosts`` signed by the CA; returns ``(cert_pem, key_pem)``."""
    now = now or dt.datetime.now(dt.UTC)
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the cached CA key is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_san(hosts), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _still_good(cert_pem: bytes, ca_pem: bytes, hosts: tuple[str, ...], now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem))
    except (ValueError, TypeError, InvalidSignature):
        return False
    if cert.not_valid_after_utc - _RENEW_BEFORE < now:
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} | set(san.get_values_for_type(x509.DNSName))
    return all(str(ipaddress.ip_address(h)) in have if _is_ip(h) else h in have for h in hosts)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def load_or_create(pki_dir: Path | None, hosts: tuple[str, ...] = DEFAULT_HOSTS) -> TlsMaterial:
    """The CA and serving pair, read from ``pki_dir`` when cached there and still valid, else new.

    Args:
        pki_dir: folder to cache the files in (created with mode 0700); None keeps everything in memory.
        hosts: names and addresses the serving certificate must cover.
    """
    now = dt.datetime.now(dt.UTC)
    files = None if pki_dir is None else {n: pki_dir / n for n in (CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE)}
    ca_pem = ca_key_pem = cert_pem = key_pem = None
    if files is not None and files[CA_FILE].exists() and files[CA_KEY_FILE].exists():
        ca_pem, ca_key_pem = files[CA_FILE].read_bytes(), files[CA_KEY_FILE].read_bytes()
        if not _still_good_ca(ca_pem, now):
            ca_pem = ca_key_pem = None
        elif files[CERT_FILE].exists() and files[KEY_FILE].exists():
            cert_pem, key_pem = files[CERT_FILE].read_bytes(), files[KEY_FILE].read_bytes()
            if not _still_good(cert_pem, ca_pem, hosts, now):
                cert_pem = key_pem = None
    changed = False
    if ca_pem is None or ca_key_pem is None:
        ca_pem, ca_key_pem = generate_ca(now)
        cert_pem = key_pem = None
        changed = True
    if cert_pem is None or key_pem is None:
        cert_pem, key_pem = issue_serving_cert(ca_pem, ca_key_pem, hosts, now)
        changed = True
    if files is not None and changed:
        pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # type: ignore[union-attr]
        for name, data in ((CA_FILE, ca_pem), (CA_KEY_FILE, ca_key_pem), (CERT_FILE, cert_pem), (KEY_FILE, key_pem)):
            _write_private(files[name], data)
    return TlsMaterial(ca_pem=ca_pem, ca_key_pem=ca_key_pem, cert_pem=cert_pem, key_pem=key_pem)


def _still_good_ca(ca_pem: bytes, now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(ca_pem)
    except ValueError:
        return False
    return cert.not_valid_after_utc - _RENEW_BEFORE > now
