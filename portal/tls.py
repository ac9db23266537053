"""TLS for telnet/ssl: the game's certificate, made on first start when it has none.

A game that names no certificate gets a self-signed one in its runtime keys folder
(`RuntimePaths.keys`, mode 0700): an ECDSA P-256 key written with mode 0600 and a
certificate for `localhost`, the loopback addresses and the listening interface, made
with the `cryptography` library and reused on every later start. A game that names
`tls_cert` and `tls_key` (paths relative to the game directory) uses those instead.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE = "telnet-ssl.crt"
KEY_FILE = "telnet-ssl.key"
VALID_DAYS = 3650


class TlsError(RuntimeError):
    """The certificate or key cannot be made or loaded; the message names the file."""


def certificate_paths(
    game_dir: Path, keys_dir: Path, cert: str, key: str, interface: str
) -> tuple[Path, Path]:
    """The certificate and key to serve: the game's own if named, else a self-signed pair.

    A named pair must exist (TlsError if not). The self-signed pair is created in
    `keys_dir` when either file is missing, and reused otherwise.
    """
    if cert or key:
        if not (cert and key):
            raise TlsError("set both portal.tls_cert and portal.tls_key, or neither")
        named = (game_dir / cert, game_dir / key)
        for path in named:
            if not path.is_file():
                raise TlsError(f"{path} (named in settings) does not exist")
        return named
    cert_path, key_path = keys_dir / CERT_FILE, keys_dir / KEY_FILE
    if not (cert_path.is_file() and key_path.is_file()):
        make_self_signed(cert_path, key_path, _names(interface))
    return cert_path, key_path


def make_self_signed(cert_path: Path, key_path: Path, names: list[str]) -> None:
    """Write a new key (0600) and a self-signed certificate for `names` (hosts or IPs)."""
    folder = cert_path.parent
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    private_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hearth (self-signed)"),
    ])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    key_pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(key_path, key_pem)
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A server-side context for the pair; TlsError names the file that does not load."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"cannot load {cert_path} with key {key_path}: {exc}") from None
    return context


def write_private(path: Path, data: bytes) -> None:
    """Write a file that is never readable by anyone but the owner, even for a moment."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def _names(interface: str) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    if interface not in ("", "0.0.0.0", "::", *names):
        names.append(interface)
    hostname = socket.gethostname()
    if hostname and hostname not in names:
        names.append(hostname)
    return names


def _general_names(names: list[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for name in names:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            result.append(x509.DNSName(name))
    return result
