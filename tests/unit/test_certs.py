from __future__ import annotations

import base64
import ipaddress
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sandbox.errors import InputError
from sandbox.infra.certs import self_signed, tls_secret


def test_self_signed_names_every_host() -> None:
    cert_pem, key_pem = self_signed(["a.example.com", "*.example.org", "127.0.0.1"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["a.example.com", "*.example.org"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.issuer == cert.subject
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]


def test_python_ssl_accepts_the_pair_and_trusts_the_cert() -> None:
    cert_pem, key_pem = self_signed(["www.example.com"])
    with tempfile.TemporaryDirectory() as d:
        c, k = Path(d, "tls.crt"), Path(d, "tls.key")
        c.write_bytes(cert_pem)
        k.write_bytes(key_pem)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(c, k)  # raises if key and cert do not match
        client = ssl.create_default_context(cafile=str(c))
        assert client.cert_store_stats()["x509_ca"] == 1


def test_no_hosts_is_an_input_error() -> None:
    with pytest.raises(InputError):
        self_signed([])


def test_tls_secret_shape() -> None:
    obj = tls_secret("web-cert", b"CERT", b"KEY", namespace="ns1")
    assert obj["type"] == "kubernetes.io/tls"
    assert obj["metadata"] == {"name": "web-cert", "namespace": "ns1"}
    assert base64.b64decode(obj["data"]["tls.crt"]) == b"CERT"
    assert base64.b64decode(obj["data"]["tls.key"]) == b"KEY"
    assert "namespace" not in tls_secret("x", b"", b"")["metadata"]
