"""Token signing keys: the libtrust key id, key files, JWKS and the tokens they sign."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import shutil
import stat
import subprocess
import time
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from portus_fab.auth.keys import (
    CERT_FILE,
    KEY_FILE,
    SigningKey,
    libtrust_key_id,
    load_or_generate,
    load_signing_key,
)
from portus_fab.auth.tokens import NOT_BEFORE_SECONDS, issue_token
from portus_fab.settings import Settings

# Generated once with `openssl genrsa 2048` and `openssl ecparam -name prime256v1 -genkey`.
RSA_PEM = b"""\
-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC6KU2D4BlY2yk6
+YKr9A9X7H30xaYGNQjHANaIGjcIEcNpUYjePSSeTXOIhUyO8e8keE9HKzl7CIht
CW1//0/uw9csdmykbUVvF/ror7OydmfH5PBuOn574PMHm3+zBIfbl8gKXhMotu7R
KoMAyzjEWKuZ80jDz156L6eGPLpoUjawZ6laTqJ46IeoWqy3ON14QVs1avcJyXeO
DF48WgllLz7gQAkqjkSV645sp1u/D7mOVhImhxPv1yRq2YpULG4jnpnwO/7n67x7
xhCMO56PL6FKSdZgY1gza8o52sMTjn41uso1Z+zxaqweg4iYDttpSik6I1jVVZSL
4/ew2IABAgMBAAECggEABEr0B+S4yOkC3iKHTh5KZUlljSmqnq2F5orhJ5HNL5Ez
S6Au8wr/Z2wbTCxgu9Id5N4mW9qGEI19keAcB43UYsne0h5n+nGvnnRz235Du0uK
MJyZo70TEhm5mPUPwInL9TcejIinUfLH9ohPrYrCJBr0WBA5XxSO1ev35btMRCAJ
ILhoSiiysjJpflpC/hUMx8Ui1AQZTDEcpHB548hwPYQzfPQepT9KeLbn19DEfpDN
XAWSYno5Nf+WKVHR45aAhhRwVUBuGFYuDJSwhSzpFBENNyZ3VO0mW+VqdMjQOUbw
aSxuRFJ0Bsqo0RuX5X8KU9IdSY1GbHiXGOA56u6UsQKBgQDlWAVtsZev5+wsoEWg
a38OV0Na2b9CnuaGaKtEk9qo9tJbM1sSXpuVGpBhPua3bHpueClS4bXDoWDb/1Rx
IG+Ox/2UJyTEPnhcDa9dIdAio/kguR5AWJcJkYOa+A4ezsuYyl5rVXJZbs4zQ73/
eUfVqdNwKTzSpPUcZ6R2pTDrCQKBgQDPzGoGCK3+e/ZaI8cRPBeCKzZkyMY0WNxy
xIyfJA8QJRvh/19AVlAntbvkV97++lHi5Tsei7vlQLufofENnTSTB/QgTlxpPjf6
9bwOiAiZL5WntKucO0wx/yfGiUgAyTOY9dOit7C+B45ES+axt8C+CDqyLWQNB2xF
6955m46TOQKBgQDHap7lv6ruiFHih8Wi9HV46cWmRHm6muJFctOhAJL7ogpMxL3m
nh7YKk3qUMBaM1fNoGwGJj5fCX5oLH6nExYNZ7YFUXf1r4AGQtv9tf39cOiZXH2C
Y8WIy19Mq23TuepsQ2KQH68bNm7TQo79id49WbqA50p8unRqq2/kvkRnyQKBgQCK
z29n1nZ8kExxzIKXVcASeVFdo+0bXNzuYbPaPxk83L0yjAgSD1Z+IF2CXNyfEZKP
8jc64XdD3qk3KtO/F2veaCrBRfdfamu03mCgiGjOA8aCACO/OrFcmKj2bBBITh+E
p3qXsQOE/cEgiF90Cl7b0t161u2F8pZ2Yuj77VkhqQKBgEhgJZFBeIxwcRr5o6kj
VIZ4YLPPO6hVZCudKkXPFWFBuJ7/lymgicJZ7jky4GJ8ea1XnatKYiOgDp2vpL93
081QwNIJ4WIvhF9QDz8o7heuc4ksTjQ1gbtvB/osnl5Ij/HmknsN8NZjGpArQuwP
wg16EdNzkmZiapllx8i+1jG9
-----END PRIVATE KEY-----
"""

EC_PEM = b"""\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgxAkJdfkKxO6kZ1FU
ziU++sH7b5Cd9v5ItPUv7jPaAG+hRANCAASv50QgaxwOWioLXKa0e4K8WDJ4XqRt
IH76O4lsW7chP+4ekd/8TgGEh4za8nW8rqjAA4BTF+mdxdsC7tjoh/9V
-----END PRIVATE KEY-----
"""

# `openssl pkey -pubout -outform DER | sha256 | first 30 bytes | base32 | 4-groups`, run once.
RSA_KID = "XTPD:2UJR:BPJ7:XTZF:QHFS:LHSP:PRR7:3GER:VHLV:NNXB:JHNI:NE2K"
EC_KID = "3GVQ:NWMG:V2CX:QVI6:UKT3:63Y3:2ERL:R2FR:NP5V:JCOF:347Y:NZGO"

ISSUER = "portus.test"
AUDIENCE = "registry.test:5000"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")


def openssl_libtrust_kid(private_pem: bytes) -> str:
    """The libtrust key id, computed without the code under test: openssl extracts the DER
    SubjectPublicKeyInfo, hashlib and base64 do the rest."""
    spki = subprocess.run(
        ["openssl", "pkey", "-pubout", "-outform", "DER"],
        input=private_pem,
        capture_output=True,
        check=True,
    ).stdout
    encoded = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def self_signed(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )


def write_pair(directory: Path, key_pem: bytes, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path, cert_path = directory / "key.pem", directory / "cert.pem"
    key_path.write_bytes(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def signing_key(pem: bytes) -> SigningKey:
    private_key = serialization.load_pem_private_key(pem, password=None)
    return SigningKey(private_key, self_signed(private_key))


@pytest.fixture(params=["rsa", "ec"])
def fixed(request: pytest.FixtureRequest) -> tuple[bytes, str, str]:
    """(private key PEM, pinned kid, expected JWT algorithm)."""
    return {
        "rsa": (RSA_PEM, RSA_KID, "RS256"),
        "ec": (EC_PEM, EC_KID, "ES256"),
    }[request.param]


# --- libtrust key id ---------------------------------------------------------------------------


@needs_openssl
def test_pinned_kids_match_openssl() -> None:
    assert openssl_libtrust_kid(RSA_PEM) == RSA_KID
    assert openssl_libtrust_kid(EC_PEM) == EC_KID


@needs_openssl
def test_libtrust_key_id_of_fixed_key(fixed: tuple[bytes, str, str]) -> None:
    pem, pinned, _ = fixed
    public_key = serialization.load_pem_private_key(pem, password=None).public_key()
    kid = libtrust_key_id(public_key)
    assert kid == openssl_libtrust_kid(pem) == pinned
    groups = kid.split(":")
    assert len(kid) == 59
    assert len(groups) == 12
    assert all(len(g) == 4 and g.isalnum() and g.isupper() for g in groups)


def test_kid_is_not_the_hash_of_the_certificate(fixed: tuple[bytes, str, str]) -> None:
    pem, pinned, _ = fixed
    key = signing_key(pem)
    der = key.certificate.public_bytes(serialization.Encoding.DER)
    whole_cert = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    assert key.kid == pinned
    assert key.kid.replace(":", "") != whole_cert


def test_algorithm_follows_the_key(fixed: tuple[bytes, str, str]) -> None:
    pem, _, algorithm = fixed
    assert signing_key(pem).algorithm == algorithm


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384"), (ec.SECP521R1(), "ES512")],
)
def test_ec_curves_fix_the_algorithm(curve: ec.EllipticCurve, algorithm: str) -> None:
    private_key = ec.generate_private_key(curve)
    assert SigningKey(private_key, self_signed(private_key)).algorithm == algorithm


# --- loading and generating -------------------------------------------------------------------


def test_load_or_generate_writes_owner_only_key_and_reuses_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = load_or_generate(data_dir, "portus.test")
    key_file, cert_file = data_dir / KEY_FILE, data_dir / CERT_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert cert_file.read_bytes() == first.certificate_pem
    assert first.algorithm == "ES256"
    assert not list(data_dir.glob("*.tmp"))
    key_bytes = key_file.read_bytes()

    second = load_or_generate(data_dir, "portus.test")
    assert second.kid == first.kid
    assert second.certificate == first.certificate
    assert key_file.read_bytes() == key_bytes
    assert first.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "portus.test"
    )


def generated_with(data_dir: Path, configured: str | None) -> SigningKey:
    """The key the app starts with on `data_dir`, given PORTUS_TOKEN_ALGORITHM (None: unset)."""
    config = {"PORTUS_DATA_DIR": str(data_dir), "PORTUS_WEBHOOK_SECRET": "x"}
    settings = Settings.load(
        config | ({"PORTUS_TOKEN_ALGORITHM": configured} if configured else {})
    )
    return load_or_generate(settings.data_dir, "portus.test", algorithm=settings.token_algorithm)


@pytest.mark.parametrize(
    ("configured", "algorithm", "key_type"),
    [
        (None, "ES256", ec.EllipticCurvePrivateKey),  # the default
        ("RS256", "RS256", rsa.RSAPrivateKey),
        ("rs256", "RS256", rsa.RSAPrivateKey),
        ("ES256", "ES256", ec.EllipticCurvePrivateKey),
    ],
)
def test_new_keys_follow_the_setting_es256_by_default(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    configured: str | None,
    algorithm: str,
    key_type: type,
) -> None:
    monkeypatch.delenv("PORTUS_TOKEN_ALGORITHM", raising=False)
    key = generated_with(tmp_path, configured)
    assert key.algorithm == algorithm
    assert isinstance(key.private_key, key_type)
    if isinstance(key.private_key, ec.EllipticCurvePrivateKey):
        assert key.private_key.curve.name == "secp256r1"  # P-256
    else:
        assert key.private_key.key_size == 2048
    assert load_signing_key(tmp_path / KEY_FILE, tmp_path / CERT_FILE).kid == key.kid


@pytest.mark.parametrize("configured", [None, "ES256"])
def test_an_rsa_key_in_the_data_dir_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: str | None
) -> None:
    """Registries trust the certificate of the key they were set up with: a new default, or a
    changed setting, must not replace it."""
    monkeypatch.delenv("PORTUS_TOKEN_ALGORITHM", raising=False)
    existing = load_or_generate(tmp_path, "portus.test", algorithm="RS256")
    key_bytes = (tmp_path / KEY_FILE).read_bytes()
    kept = generated_with(tmp_path, configured)
    assert (kept.algorithm, kept.kid) == ("RS256", existing.kid)
    assert (tmp_path / KEY_FILE).read_bytes() == key_bytes


def test_load_or_generate_uses_configured_pair(
    tmp_path: Path, fixed: tuple[bytes, str, str]
) -> None:
    pem, pinned, algorithm = fixed
    private_key = serialization.load_pem_private_key(pem, password=None)
    key_path, cert_path = write_pair(tmp_path, pem, self_signed(private_key))
    key = load_or_generate(tmp_path / "data", "x", str(key_path), str(cert_path))
    assert (key.kid, key.algorithm) == (pinned, algorithm)
    assert not (tmp_path / "data" / KEY_FILE).exists()


def test_mismatched_key_and_certificate_raise(tmp_path: Path) -> None:
    rsa_key = serialization.load_pem_private_key(RSA_PEM, password=None)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_path, cert_path = write_pair(tmp_path, RSA_PEM, self_signed(other))
    with pytest.raises(ValueError, match="does not hold the public key"):
        load_signing_key(key_path, cert_path)
    with pytest.raises(ValueError, match="does not hold the public key"):
        load_or_generate(tmp_path, "x", str(key_path), str(cert_path))
    # an EC certificate for an RSA key, too
    ec_key = serialization.load_pem_private_key(EC_PEM, password=None)
    cert_path.write_bytes(self_signed(ec_key).public_bytes(serialization.Encoding.PEM))
    with pytest.raises(ValueError, match="does not hold the public key"):
        load_signing_key(key_path, cert_path)
    assert rsa_key.public_key() != ec_key.public_key()


def test_only_one_of_key_and_certificate_configured_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both"):
        load_or_generate(tmp_path, "x", key_path=str(tmp_path / "k.pem"))
    with pytest.raises(ValueError, match="both"):
        load_or_generate(tmp_path, "x", cert_path=str(tmp_path / "c.pem"))


def test_unsupported_ec_curve_raises(tmp_path: Path) -> None:
    private_key = ec.generate_private_key(ec.SECP256K1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path, cert_path = write_pair(tmp_path, pem, self_signed(private_key))
    with pytest.raises(ValueError, match="not supported"):
        load_signing_key(key_path, cert_path)


# --- JWKS ---------------------------------------------------------------------------------------


def test_jwks_rsa() -> None:
    key = signing_key(RSA_PEM)
    (jwk,) = key.jwks()["keys"]
    numbers = key.private_key.public_key().public_numbers()
    assert jwk["kty"] == "RSA"
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == (key.headers["kid"], "RS256", "sig")
    assert jwk["kid"] == RSA_KID
    n = int.from_bytes(base64.urlsafe_b64decode(jwk["n"] + "=" * (-len(jwk["n"]) % 4)), "big")
    assert n == numbers.n
    assert "d" not in jwk  # public only


def test_jwks_ec() -> None:
    key = signing_key(EC_PEM)
    (jwk,) = key.jwks()["keys"]
    assert (jwk["kty"], jwk["crv"]) == ("EC", "P-256")
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == (key.headers["kid"], "ES256", "sig")
    assert "d" not in jwk
    assert jwt.PyJWK(jwk).key.public_numbers() == key.private_key.public_key().public_numbers()


# --- issued tokens -------------------------------------------------------------------------------


def test_issued_token_verifies_with_the_certificate(fixed: tuple[bytes, str, str]) -> None:
    pem, pinned, algorithm = fixed
    key = signing_key(pem)
    access = [{"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}]
    before = int(time.time())
    issued = issue_token(
        key, issuer=ISSUER, audience=AUDIENCE, subject="alice", access=access, ttl=900
    )
    after = int(time.time())

    header = jwt.get_unverified_header(issued.token)
    assert header["alg"] == algorithm
    assert header["kid"] == pinned

    # The x5c chain: one self-signed certificate holding the signing key.
    (x5c,) = header["x5c"]
    cert = x509.load_der_x509_certificate(base64.b64decode(x5c))
    assert cert == key.certificate
    cert.verify_directly_issued_by(cert)
    assert cert.public_key() == key.private_key.public_key()

    claims = jwt.decode(
        issued.token,
        cert.public_key(),
        algorithms=[algorithm],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]},
    )
    assert claims["aud"] == AUDIENCE  # a string, never a list (registry v2.8)
    assert claims["sub"] == "alice"
    assert claims["access"] == access
    assert before <= claims["iat"] <= after
    assert claims["nbf"] < claims["iat"]
    assert claims["nbf"] == claims["iat"] - NOT_BEFORE_SECONDS
    assert claims["nbf"] < time.time()
    assert claims["exp"] == claims["iat"] + 900
    assert issued.expires_in == 900
    assert int(issued.issued_at.timestamp()) == claims["iat"]

    body = issued.response()
    assert body["token"] == body["access_token"] == issued.token
    assert body["issued_at"].endswith("Z")
    assert dt.datetime.fromisoformat(body["issued_at"]).timestamp() == claims["iat"]


def test_wrong_audience_or_issuer_is_rejected() -> None:
    key = signing_key(RSA_PEM)
    token = issue_token(key, issuer=ISSUER, audience=AUDIENCE, subject="a", access=[], ttl=60).token
    public = key.certificate.public_key()
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(token, public, algorithms=["RS256"], audience="other", issuer=ISSUER)
    with pytest.raises(jwt.InvalidIssuerError):
        jwt.decode(token, public, algorithms=["RS256"], audience=AUDIENCE, issuer="other")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other.public_key(), algorithms=["RS256"], audience=AUDIENCE)


def test_jti_is_unique() -> None:
    key = signing_key(EC_PEM)
    jtis = {
        jwt.decode(
            issue_token(
                key, issuer=ISSUER, audience=AUDIENCE, subject="a", access=[], ttl=60
            ).token,
            options={"verify_signature": False},
        )["jti"]
        for _ in range(50)
    }
    assert len(jtis) == 50


def test_the_signer_writes_what_pyjwt_would(fixed: tuple[bytes, str, str]) -> None:
    """SigningKey.sign encodes its header once instead of per token: the tokens must stay the
    ones `jwt.encode` makes (RSA's PKCS#1 v1.5 signature is deterministic, so equal byte for
    byte; ECDSA's is not, so equal up to the signature, which must verify)."""
    pem, _kid, algorithm = fixed
    key = signing_key(pem)
    claims = {"iss": "portus", "sub": "alice", "access": [{"type": "repository", "name": "a/b"}]}
    ours = key.sign(claims)
    theirs = jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers=key.headers)
    if algorithm == "RS256":
        assert ours == theirs
    else:
        assert ours.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0]
    public = key.private_key.public_key()
    assert jwt.decode(ours, public, algorithms=[algorithm], options={"verify_aud": False}) == claims
    assert jwt.get_unverified_header(ours) == {"alg": algorithm, "typ": "JWT", **key.headers}
