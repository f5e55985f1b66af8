"""A throwaway PKI for TLS tests: a CA, a server certificate for 127.0.0.1 / localhost and
a client certificate, written as PEM files (the fixture `pki`, shared through tests/conftest.py)."""

from __future__ import annotations

import datetime
import ipaddress

import pytest


def _cert(subject: str, key, issuer_name, issuer_key, ca: bool, server: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .issuer_name(issuer_name or x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    root = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("reelfarm test CA", ca_key, None, None, ca=True, server=False)
    out = {}
    for name, server in (("server", True), ("client", False)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(name, key, ca.subject, ca_key, ca=False, server=server)
        (root / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (root / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        out[name] = (str(root / f"{name}.pem"), str(root / f"{name}.key"))
    (root / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["ca"] = str(root / "ca.pem")
    return out


def c2pa_chain(folder, org: str, key_type: str = "ec") -> tuple[str, str, str]:
    """A C2PA signing chain, built here (not by the farm's code): root -> intermediate CA
    (pathlen 0) -> signing certificate (digitalSignature, emailProtection). Writes
    key.pem, chain.pem (signing cert, then intermediate) and root.pem into `folder`;
    returns their paths. key_type: "ec" (P-256), "rsa" (PS256) or "ed25519"."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{org} {cn}"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])

    def usage(ca):
        return x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                             key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                             decipher_only=False)

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject, key, issuer, issuer_key, ca, pathlen=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
             .add_extension(usage(ca), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 issuer_key.public_key()), False))
        if not ca:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                                critical=False)
        return b.sign(issuer_key, hashes.SHA256())

    root_key, inter_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    key = {"ec": lambda: ec.generate_private_key(ec.SECP256R1()),
           "rsa": lambda: rsa.generate_private_key(65537, 2048),
           "ed25519": ed25519.Ed25519PrivateKey.generate}[key_type]()
    root = cert(name("root CA"), root_key, name("root CA"), root_key, True, 1)
    inter = cert(name("intermediate CA"), inter_key, root.subject, root_key, True, 0)
    leaf = cert(name("signer"), key, inter.subject, inter_key, False)
    pem = serialization.Encoding.PEM
    paths = [folder / "key.pem", folder / "chain.pem", folder / "root.pem"]
    paths[0].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[1].write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
    paths[2].write_bytes(root.public_bytes(pem))
    return tuple(str(p) for p in paths)
