"""The key that signs registry tokens: loading or generating it, and the ways registries find it.

Registry v2.8 finds the verification key through the `x5c` chain (checked against its
rootcertbundle) or the libtrust `kid`; v3 uses `x5c` or a JWKS file. Tokens carry both header
fields so either version accepts them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import Algorithm, ECAlgorithm, RSAAlgorithm, get_default_algorithms
from jwt.utils import base64url_encode

from portus_fab.settings import make_data_dir

KEY_FILE = "token_signing.key"
CERT_FILE = "token_signing.crt"
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

SigningPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def libtrust_key_id(public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, first 30 bytes, base32, 12 groups of 4."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, 48, 4))


@dataclass(frozen=True)
class SigningKey:
    """Derived values are cached: the token endpoint uses them on every request."""

    private_key: SigningPrivateKey
    certificate: x509.Certificate

    @cached_property
    def algorithm(self) -> str:
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return _EC_ALGORITHMS[self.private_key.curve.name]
        return "RS256"

    @cached_property
    def kid(self) -> str:
        return libtrust_key_id(self.private_key.public_key())

    @cached_property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @cached_property
    def headers(self) -> dict[str, Any]:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return {"kid": self.kid, "x5c": [base64.b64encode(der).decode()]}

    @cached_property
    def _signed_header(self) -> bytes:
        # The header PyJWT would write (sorted keys, no spaces), encoded once: with the x5c
        # certificate it is most of the token, and the same in every one.
        header = {"alg": self.algorithm, "typ": "JWT", **self.headers}
        return base64url_encode(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())

    @cached_property
    def _signer(self) -> Algorithm:
        return get_default_algorithms()[self.algorithm]

    def sign(self, claims: dict[str, Any]) -> str:
        """A compact JWS of `claims` (RFC 7515), as `jwt.encode` makes it with this key's
        headers; PyJWT's algorithm still signs (an ECDSA signature as r||s, not DER)."""
        payload = base64url_encode(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = self._signed_header + b"." + payload
        signature = self._signer.sign(signing_input, self.private_key)
        return (signing_input + b"." + base64url_encode(signature)).decode()

    def jwks(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.algorithm})
        return {"keys": [jwk]}


def load_signing_key(key_path: Path, cert_path: Path) -> SigningKey:
    private_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: token signing key must be RSA or EC")
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and (
        private_key.curve.name not in _EC_ALGORITHMS
    ):
        raise ValueError(f"{key_path}: EC curve {private_key.curve.name} is not supported")
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if certificate.public_key() != private_key.public_key():
        raise ValueError(f"{cert_path} does not hold the public key of {key_path}")
    return SigningKey(private_key, certificate)


GENERATED_ALGORITHMS = ("ES256", "RS256")


def generate_signing_key(common_name: str, algorithm: str = "ES256") -> SigningKey:
    """A new key and self-signed certificate. ES256 (P-256) signs about ten times faster than
    RS256 (RSA 2048), which caps tokens/s; registry 2.8 and 3 accept both."""
    if algorithm == "ES256":
        private_key: SigningPrivateKey = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"cannot generate a {algorithm} key: use one of {GENERATED_ALGORITHMS}")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    return SigningKey(private_key, certificate)


def _write_owner_only(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def load_or_generate(
    data_dir: Path,
    common_name: str,
    key_path: str | None = None,
    cert_path: str | None = None,
    algorithm: str = "ES256",
) -> SigningKey:
    """Configured key and certificate, else the ones generated into the data dir on first start.
    `algorithm` only says what to generate: a key already in the data dir is kept, whatever it is,
    so that the registries which trust its certificate go on accepting tokens."""
    if key_path or cert_path:
        if not (key_path and cert_path):
            raise ValueError("set both PORTUS_TOKEN_KEY and PORTUS_TOKEN_CERT, or neither")
        return load_signing_key(Path(key_path), Path(cert_path))
    key_file, cert_file = data_dir / KEY_FILE, data_dir / CERT_FILE
    if key_file.exists() and cert_file.exists():
        return load_signing_key(key_file, cert_file)
    key = generate_signing_key(common_name, algorithm)
    make_data_dir(data_dir)
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Write-then-rename so that two processes starting together never read half a key.
    tmp = key_file.with_name(f"{key_file.name}.{os.getpid()}.tmp")
    _write_owner_only(tmp, pem)
    cert_tmp = cert_file.with_name(f"{cert_file.name}.{os.getpid()}.tmp")
    # The certificate is public, but kept like every file of the data dir: a registry running as
    # another user gets its own copy (`portus registry-config --write-cert`).
    _write_owner_only(cert_tmp, key.certificate_pem)
    if key_file.exists():  # another process won the race: use its key
        tmp.unlink()
        cert_tmp.unlink()
        return load_signing_key(key_file, cert_file)
    os.replace(cert_tmp, cert_file)
    os.replace(tmp, key_file)
    return key
