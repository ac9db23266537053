"""Unit tests for telnet/ssl certificates (portal/tls.py), with an in-memory handshake."""

from __future__ import annotations

import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from ipc.settings import PortalSettings, load_settings
from portal.tls import (
    CERT_FILE,
    KEY_FILE,
    TlsError,
    certificate_paths,
    make_self_signed,
    server_context,
)

REPO = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def handshake(server: ssl.SSLContext, client: ssl.SSLContext, hostname: str) -> str:
    """Run a TLS handshake between two contexts over memory BIOs; return the version."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_obj = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    server_obj = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, obj in (("client", client_obj), ("server", server_obj)):
            if done[name]:
                continue
            try:
                obj.do_handshake()
                done[name] = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return str(client_obj.version())
    raise AssertionError("handshake did not finish")


def test_first_start_makes_a_private_self_signed_pair(tmp_path: Path) -> None:
    keys = tmp_path / ".hearth" / "keys"
    cert, key = certificate_paths(tmp_path, keys, "", "", "127.0.0.1")
    assert (cert, key) == (keys / CERT_FILE, keys / KEY_FILE)
    assert mode(keys) == 0o700
    assert mode(key) == 0o600
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)


def test_later_starts_reuse_the_pair(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    cert, key = certificate_paths(tmp_path, keys, "", "", "127.0.0.1")
    before = cert.read_bytes(), key.read_bytes()
    assert certificate_paths(tmp_path, keys, "", "", "127.0.0.1") == (cert, key)
    assert (cert.read_bytes(), key.read_bytes()) == before


def test_a_missing_key_makes_a_new_pair(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    cert, key = certificate_paths(tmp_path, keys, "", "", "127.0.0.1")
    old = cert.read_bytes()
    key.unlink()
    certificate_paths(tmp_path, keys, "", "", "127.0.0.1")
    assert cert.read_bytes() != old
    server_context(cert, key)  # the new pair belongs together


def test_named_pair_is_used_as_is(tmp_path: Path) -> None:
    make_self_signed(tmp_path / "mine.crt", tmp_path / "mine.key", ["mud.example"])
    keys = tmp_path / "keys"
    cert, key = certificate_paths(tmp_path, keys, "mine.crt", "mine.key", "127.0.0.1")
    assert (cert, key) == (tmp_path / "mine.crt", tmp_path / "mine.key")
    assert not keys.exists()


def test_named_pair_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TlsError, match=r"nope\.crt"):
        certificate_paths(tmp_path, tmp_path / "keys", "nope.crt", "nope.key", "127.0.0.1")
    with pytest.raises(TlsError, match="both"):
        certificate_paths(tmp_path, tmp_path / "keys", "x.crt", "", "127.0.0.1")


def test_a_key_that_does_not_match_is_a_clear_error(tmp_path: Path) -> None:
    make_self_signed(tmp_path / "a.crt", tmp_path / "a.key", ["localhost"])
    make_self_signed(tmp_path / "b.crt", tmp_path / "b.key", ["localhost"])
    with pytest.raises(TlsError, match=r"a\.crt"):
        server_context(tmp_path / "a.crt", tmp_path / "b.key")


def test_a_client_that_trusts_the_certificate_completes_a_handshake(tmp_path: Path) -> None:
    cert, key = certificate_paths(tmp_path, tmp_path / "keys", "", "", "127.0.0.1")
    server = server_context(cert, key)
    for hostname in ("localhost", "127.0.0.1"):
        client = ssl.create_default_context(cafile=str(cert))
        assert handshake(server, client, hostname) in ("TLSv1.2", "TLSv1.3")
    stranger = ssl.create_default_context()  # does not trust a self-signed certificate
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(server, stranger, "localhost")


def test_settings_want_both_cert_and_key() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="tls_key"):
        msgspec.convert({"tls_cert": "a.crt"}, PortalSettings)


def test_default_game_has_telnet_ssl_on() -> None:
    portal = load_settings(REPO / "game").portal
    assert portal.telnet_ssl_port == 4003
    assert portal.tls_cert == portal.tls_key == ""
