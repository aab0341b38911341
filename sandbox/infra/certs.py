"""Self-signed TLS certificates made at run time, and the kubernetes.io/tls Secret that holds one.

A scenario declares ``tls: [{secret: NAME, hosts: [...]}]``; the cluster and local targets call
``self_signed(hosts)`` and ``tls_secret(...)`` so no key is ever committed. The certificate is its
own issuer (no CA) and, like the upstream conformance suite's
``MustCreateSelfSignedCertSecret`` (gateway-api conformance/utils/kubernetes/certificate.go), is
marked as a CA so that a client can trust it directly as its anchor.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.errors import InputError

VALIDITY = datetime.timedelta(days=365)
BACKDATE = datetime.timedelta(hours=1)  # tolerate small clock skew between host and cluster


def self_signed(hosts: list[str], *, key_size: int = 2048) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``hosts`` (DNS names, wildcards or IP addresses).

    Returns ``(cert_pem, key_pem)``; the key is an unencrypted PKCS#8 RSA key.
    """
    if not hosts:
        raise InputError("a TLS certificate needs at least one host", field="tls.hosts")
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    common_name = hosts[0][:64]  # X.509 ub-common-name
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gateway-sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                key_cert_sign=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def tls_secret(
    name: str, cert_pem: bytes, key_pem: bytes, *, namespace: str | None = None
) -> dict[str, Any]:
    """A ``kubernetes.io/tls`` Secret object (data base64-encoded: ``tls.crt``, ``tls.key``)."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(cert_pem).decode("ascii"),
            "tls.key": base64.b64encode(key_pem).decode("ascii"),
        },
    }
