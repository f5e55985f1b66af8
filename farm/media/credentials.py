"""C2PA content credentials: a signed manifest embedded in the mp4 and PNG deliverables.

The sidecar manifests (farm.media.provenance) pin bytes but anyone can rewrite them; a C2PA
manifest is signed with the farm's key and travels inside the file, so any C2PA reader
(Adobe's, the CAI's verify site, c2patool) can tell the file is AI-made and by whom.
Each manifest holds a `c2pa.actions.v2` "created" action with IPTC's trainedAlgorithmicMedia
source type, and the render record under RECORD_LABEL.

Signing needs a key and a certificate chain up to an intermediate CA (C2PA refuses
self-signed signing certificates). Operators bring their own (`--signing-key`,
`--signing-cert`); without one the farm makes a local chain (`local_signing`), which
readers report as valid but untrusted: integrity, not identity.
"""

from __future__ import annotations

import datetime
import fcntl
import functools
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from farm import __version__

# IPTC's term for media made by a trained model (what C2PA and platform labels use).
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
RECORD_LABEL = "org.reelfarm.provenance"
MIME = {".mp4": "video/mp4", ".png": "image/png"}
# Root, intermediate and signing certificate names of the farm's own chain.
LOCAL_NAMES = ("reelfarm local root CA", "reelfarm local intermediate CA",
               "reelfarm local signer (not on any trust list)")
# The reader reports an unknown root as a failure code; for us that is `trusted`, not damage.
UNTRUSTED = "signingCredential.untrusted"
# Reading may not reach the network (remote manifests, OCSP): verify works offline and fast.
_READ_SETTINGS = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
# A JPEG thumbnail in every frame would cost ~50 ms and kilobytes per PNG.
_SIGN_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}


@dataclass(frozen=True)
class Signer:
    """A loaded key and chain: `native` signs any number of files."""

    native: Any  # c2pa.Signer
    alg: str
    name: str  # the signing certificate's subject and issuer, for messages


@dataclass(frozen=True)
class SigningConfig:
    key: Path
    cert_chain: Path

    def load(self) -> Signer:
        """Check key and chain here (a clear error naming the flag) and with one probe
        signature (whatever else the c2pa library refuses), before any render work."""
        key_pem, chain_pem = _read(self.key, "--signing-key"), _read(self.cert_chain,
                                                                     "--signing-cert")
        key = _load_key(key_pem, self.key)
        alg = _alg(key)
        try:
            chain = x509.load_pem_x509_certificates(chain_pem)
        except ValueError as exc:
            raise ValueError(f"--signing-cert: {self.cert_chain} holds no PEM certificates "
                             f"({exc})") from None
        _check_chain(chain, key, self.cert_chain)
        signer = Signer(c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain_pem, key_pem, None)),
                        alg, _describe(chain[0]))
        probe = io.BytesIO()
        Image.new("RGB", (1, 1)).save(probe, "PNG")
        try:
            _embed(io.BytesIO(probe.getvalue()), io.BytesIO(), "image/png", {}, "probe", signer)
        except c2pa.C2paError as exc:
            raise ValueError(
                f"--signing-key/--signing-cert: the C2PA signer refuses this key and chain "
                f"({exc}); it wants a CA-issued signing certificate with the digitalSignature "
                "key usage, an extended key usage such as emailProtection, and key "
                "identifiers") from None
        return signer


def _read(path: Path, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{flag}: cannot read {path} ({exc.strerror or exc})") from None


def _load_key(pem: bytes, path: Path) -> Any:
    try:
        return serialization.load_pem_private_key(pem, None)
    except (ValueError, TypeError) as exc:  # TypeError: it needs a password
        raise ValueError(f"--signing-key: {path} is not an unencrypted PEM private key "
                         f"({exc})") from None


def _alg(key: Any) -> str:
    """The C2PA algorithm for a key: its type decides (EC curve, RSA-PSS, Ed25519)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
        raise ValueError(f"--signing-key: EC curve {key.curve.name} is not one C2PA signs with "
                         "(P-256, P-384, P-521)")
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise ValueError(f"--signing-key: a {type(key).__name__} cannot sign C2PA manifests "
                     "(use EC P-256, RSA or Ed25519)")


def _check_chain(chain: list, key: Any, path: Path) -> None:
    def spki(k: Any) -> bytes:
        return k.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)

    leaf = chain[0]
    if spki(leaf.public_key()) != spki(key.public_key()):
        raise ValueError(f"--signing-cert: the first certificate of {path} "
                         f"({_describe(leaf)}) is not for --signing-key's key")
    if leaf.issuer == leaf.subject:
        raise ValueError(f"--signing-cert: {path} starts with a self-signed certificate "
                         f"({_describe(leaf)}); C2PA needs a signing certificate issued by a "
                         "CA: give the signing certificate first, then its intermediate(s)")


def _describe(cert: Any) -> str:
    return f"{_cn(cert.subject)} (issuer {_cn(cert.issuer)})"


def _cn(name: Any) -> str:
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        if attrs := name.get_attributes_for_oid(oid):
            return str(attrs[0].value)
    return name.rfc4514_string()


def local_signing(folder: Path) -> SigningConfig:
    """The farm's own root -> intermediate -> signing chain in `folder`, made once (0600
    files, under a lock: parallel renders share it) and reused afterwards."""
    folder = Path(folder)
    config = SigningConfig(folder / "signing-key.pem", folder / "signing-chain.pem")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with os.fdopen(os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (config.key.is_file() and config.cert_chain.is_file()):
            key_pem, chain_pem = make_chain(LOCAL_NAMES)
            for path, data in ((config.key, key_pem), (config.cert_chain, chain_pem)):
                _write_private(path, data)
    return config


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def make_chain(names: tuple[str, str, str], days: int = 3650) -> tuple[bytes, bytes]:
    """(signing key PEM, chain PEM: signing cert then intermediate) under a new root (CNs:
    root, intermediate, signer). The root's key is thrown away: nothing more is issued."""
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    root = _cert(names[0], keys[0], None, days, ca=True, pathlen=1)
    inter = _cert(names[1], keys[1], (root, keys[0]), days, ca=True, pathlen=0)
    # emailProtection: an EKU the c2pa library accepts (documentSigning it refuses).
    leaf = _cert(names[2], keys[2], (inter, keys[1]), days, ca=False,
                 eku=ExtendedKeyUsageOID.EMAIL_PROTECTION)
    pem = serialization.Encoding.PEM
    key_pem = keys[2].private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return key_pem, leaf.public_bytes(pem) + inter.public_bytes(pem)


def _cert(cn: str, key: Any, issuer: tuple | None, days: int, ca: bool, pathlen: int | None = None,
          eku: Any = None) -> Any:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reelfarm")])
    issuer_cert, issuer_key = issuer or (None, key)
    now = datetime.datetime.now(datetime.UTC)
    usage = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment",
                           "key_agreement", "encipher_only", "decipher_only"), False)
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer_cert.subject if issuer_cert else subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=5))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca,
                                      **usage), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             issuer_key.public_key()), False))
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


@functools.cache
def _context(kind: str) -> Any:
    return c2pa.Context.from_dict(_SIGN_SETTINGS if kind == "sign" else _READ_SETTINGS)


def _manifest(record: dict[str, Any], title: str) -> dict[str, Any]:
    agent = {"name": "reelfarm", "version": __version__}
    created = {"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE,
               "softwareAgent": agent}
    actions = [created] + _conform_actions(record, agent)
    return {"claim_generator_info": [agent], "title": title,
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": actions}},
                           {"label": RECORD_LABEL, "data": record}]}


def _conform_actions(record: dict[str, Any], agent: dict[str, str]) -> list[dict[str, Any]]:
    """A conformed deliverable (farm.media.conform) was made from the render by a
    non-editorial conversion: C2PA's `c2pa.transcoded`, saying what changed."""
    conform = (record.get("deliverable") or {}).get("conform")
    if not conform:
        return []
    rate, size = conform["fps"], conform["size"]
    what = (f"conformed from {rate['from']} to {rate['to']} fps ({conform['fps_method']}), "
            f"{size['from']} to {size['to']} ({conform['scale']}, fit {conform['fit']})")
    return [{"action": "c2pa.transcoded", "softwareAgent": agent, "description": what,
             "parameters": {"filters": conform["filters"]}}]


def _embed(src: Any, dst: Any, mime: str, record: dict, title: str, signer: Signer) -> None:
    c2pa.Builder(_manifest(record, title), _context("sign")).sign(signer.native, mime, src, dst)


def sign_file(path: Path, record: dict[str, Any], signer: Signer, *,
              title: str | None = None) -> None:
    """Embed a signed manifest in the mp4 or PNG at `path`, in place (a temp file beside
    it, then a rename: a crash never leaves half a deliverable)."""
    path = Path(path)
    mime = MIME.get(path.suffix.lower())
    if mime is None:
        raise ValueError(f"{path.name}: C2PA credentials are embedded in mp4 and PNG files only")
    tmp = path.with_name(f".{path.name}.c2pa-tmp")
    try:
        with open(path, "rb") as src, open(tmp, "w+b") as dst:
            _embed(src, dst, mime, record, title or path.name, signer)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Credentials:
    present: bool
    valid: bool = False  # nothing hashed or signed fails (an unknown root is no failure)
    trusted: bool = False  # the chain ends at a trust anchor the reader was given
    signer: str = ""  # "<subject CN> (issuer <issuer CN>)"
    problems: tuple[str, ...] = ()  # "code: explanation" of every failure
    source_type: str | None = None  # the created action's digitalSourceType
    record: dict[str, Any] | None = None  # ours (RECORD_LABEL), None in foreign manifests


def read_credentials(path: Path, *, trust_anchors: Path | None = None) -> Credentials:
    """The embedded manifest of an mp4 or PNG, checked. Never raises: a damaged or
    unparseable file is present=False, or valid=False with the reader's complaint."""
    path = Path(path)
    mime = MIME.get(path.suffix.lower())
    if mime is None or not path.is_file():
        return Credentials(False)
    try:
        context = (_context("read") if trust_anchors is None else c2pa.Context.from_dict(
            {**_READ_SETTINGS, "trust": {"trust_anchors": Path(trust_anchors).read_text()}}))
        with open(path, "rb") as f:
            reader = c2pa.Reader.try_create(mime, f, None, context)
            if reader is None:
                return Credentials(False)
            with reader:
                store, cr = json.loads(reader.json()), json.loads(reader.crjson())
    except Exception as exc:  # noqa: BLE001 - the reader's complaint is the answer
        # A file cut short still shows its manifest store near the start.
        return Credentials(_has_store(path), problems=(f"unreadable: {exc}",))
    return _summarise(store, cr)


def _has_store(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return False
    return b"jumb" in head and b"c2pa" in head


def _summarise(store: dict[str, Any], cr: dict[str, Any]) -> Credentials:
    active = store.get("active_manifest")
    manifest = store.get("manifests", {}).get(active, {})
    state = store.get("validation_state")
    statuses = store.get("validation_status") or []
    problems = tuple(f"{s.get('code')}: {s.get('explanation', '')}" for s in statuses
                     if s.get("code") != UNTRUSTED)
    assertions = {a.get("label"): a.get("data") for a in manifest.get("assertions", [])}
    actions = (assertions.get("c2pa.actions.v2") or assertions.get("c2pa.actions") or {})
    created = [a for a in actions.get("actions", []) if a.get("action") == "c2pa.created"]
    record = assertions.get(RECORD_LABEL)
    return Credentials(
        True, valid=state in ("Valid", "Trusted") and not problems, trusted=state == "Trusted",
        signer=_signer_name(manifest, cr, active), problems=problems,
        source_type=created[0].get("digitalSourceType") if created else None,
        record=record if isinstance(record, dict) else None)


def _signer_name(manifest: dict[str, Any], cr: dict[str, Any], active: str | None) -> str:
    """Subject and issuer of the signing certificate (crJSON has the issuer's names; the
    manifest JSON only the subject's)."""
    info = manifest.get("signature_info") or {}
    subject = info.get("common_name") or info.get("issuer") or "an unnamed signer"
    for m in cr.get("manifests", []):
        if m.get("label") == active:
            cert = (m.get("signature") or {}).get("certificateInfo") or {}
            issuer = cert.get("issuer") or {}
            if name := issuer.get("CN") or issuer.get("O"):
                return f"{subject} (issuer {name})"
    return subject
