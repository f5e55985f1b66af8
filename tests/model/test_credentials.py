"""C2PA content credentials in the mp4 and PNG deliverables: signed with a chain built here
(root -> intermediate -> signer, tests/pki.py), read back (signer, trainedAlgorithmicMedia,
c2pa.created, the reelfarm record), and `reelfarm verify` on tampered, truncated, renamed,
foreign-signed and unsigned files: exit codes and clean messages, never a traceback. Then
`reelfarm render` of a tiny film with an image input, signed end to end."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import c2pa
import numpy as np
import pytest
import yaml

from farm.cli import main
from farm.media import stills
from farm.media.credentials import (
    DIGITAL_SOURCE_TYPE,
    RECORD_LABEL,
    SigningConfig,
    local_signing,
    read_credentials,
    sign_file,
)
from farm.media.provenance import Provenance, input_media_hashes, label_tags
from farm.spec.inputs import SceneInputs
from tests.media_files import write_image, write_video
from tests.pki import c2pa_chain

pytestmark = pytest.mark.model
RECORD = {"model": {"ref": "tiny", "weights": "tiny:0"},
          "scenes": [{"id": "a", "seed": 1, "prompt": "a red kite"}],
          "inputs": [{"scene": "a", "field": "image", "location": "start.png", "sha256": "ab" * 32,
                      "rights": {"holder": "Studio A", "reference": "licence 42"}}]}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return c2pa_chain(tmp_path_factory.mktemp("chain"), "Test Studio")


@pytest.fixture(scope="module")
def signer(chain):
    return SigningConfig(*map(Path, chain[:2])).load()


@pytest.fixture
def delivered(tmp_path, signer):
    """A signed 320x192 PNG and a small signed mp4, each with its sidecar."""
    frame = np.random.default_rng(0).integers(0, 255, (192, 320, 3), dtype=np.uint8)
    png = stills.write_png(tmp_path / "frame.png", frame, label_tags("png"))
    mp4 = write_video(tmp_path / "film.mp4", 9, 16, 64, 48)
    prov = Provenance(RECORD, signer)
    for path, kind in ((png, "contact-sheet"), (mp4, "mp4")):
        prov.write_file(path, kind)
    return png, mp4


def verify_cli(capsys, *paths) -> tuple[int, str]:
    code = main(["verify", *map(str, paths)])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text
    return code, text


def test_signed_files_read_back_with_signer_source_type_and_record(delivered, chain):
    for path in delivered:
        creds = read_credentials(path)
        assert creds.present and creds.valid and not creds.trusted and not creds.problems
        assert creds.signer == "Test Studio signer (issuer Test Studio intermediate CA)"
        assert creds.source_type == DIGITAL_SOURCE_TYPE
        assert creds.record["model"] == RECORD["model"]
        assert creds.record["inputs"] == RECORD["inputs"]  # rights statements too
        assert creds.record["deliverable"] == {"kind": creds.record["deliverable"]["kind"],
                                               "file": path.name}  # no hash of itself
        assert read_credentials(path, trust_anchors=Path(chain[2])).trusted
        with c2pa.Reader(str(path)) as reader:
            manifest = reader.get_active_manifest()
        actions = {a["label"]: a["data"] for a in manifest["assertions"]}["c2pa.actions.v2"]
        created = actions["actions"][0]
        assert created["action"] == "c2pa.created"
        assert created["softwareAgent"]["name"] == "reelfarm"
        # The sidecar's sha256 covers the signed bytes.
        sidecar = json.loads(path.with_name(path.name + ".provenance.json").read_text())
        assert sidecar["deliverable"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_signing_cost_of_a_frame_and_a_small_mp4(tmp_path, signer):
    frame = np.random.default_rng(1).integers(0, 255, (192, 320, 3), dtype=np.uint8)
    png = stills.write_png(tmp_path / "f.png", frame, label_tags("png"))
    mp4 = write_video(tmp_path / "m.mp4", 17, 16, 320, 192)
    for path in (png, mp4):
        t0 = time.perf_counter()
        sign_file(path, RECORD, signer)
        ms = (time.perf_counter() - t0) * 1000
        print(f"signing {path.name} ({path.stat().st_size} bytes): {ms:.1f} ms")
        assert read_credentials(path).valid and ms < 2000


@pytest.mark.parametrize("key_type", ["rsa", "ed25519"])
def test_rsa_and_ed25519_keys_sign_too(tmp_path, key_type):
    key, cert, _ = c2pa_chain(tmp_path, f"{key_type} Studio", key_type)
    s = SigningConfig(Path(key), Path(cert)).load()
    assert s.alg == {"rsa": "ps256", "ed25519": "ed25519"}[key_type]
    png = write_image(tmp_path / "x.png", 32, 32)
    sign_file(png, {"k": 1}, s)
    assert read_credentials(png).valid and read_credentials(png).record == {"k": 1}


def test_a_flipped_pixel_byte_fails_verify(delivered, capsys):
    png, mp4 = delivered
    png.with_name(png.name + ".provenance.json").unlink()  # the credentials alone catch it
    for path, chunk, code in ((png, b"IDAT", "assertion.dataHash.mismatch"),
                              (mp4, b"mdat", "assertion.bmffHash.mismatch")):
        data = bytearray(path.read_bytes())
        data[data.index(chunk) + 40] ^= 1
        path.write_bytes(bytes(data))
        status, text = verify_cli(capsys, path)
        assert status == 1 and "MODIFIED" in text and code in text
        assert "Test Studio signer" in text
    assert "sha256 differs" in verify_cli(capsys, mp4)[1]  # and the sidecar


def test_truncated_files_fail_cleanly(delivered, capsys):
    for path in delivered:
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])
        status, text = verify_cli(capsys, path)
        assert status == 1 and "MODIFIED" in text
    delivered[0].with_name(delivered[0].name + ".provenance.json").unlink()
    status, text = verify_cli(capsys, delivered[0])
    assert status in (1, 2) and "content credentials" in text
    delivered[0].write_bytes(b"")
    assert verify_cli(capsys, delivered[0])[0] in (1, 2)


def test_credentials_travel_without_the_sidecar_and_a_renamed_pair_verifies(delivered, capsys):
    png, mp4 = delivered
    png.with_name(png.name + ".provenance.json").unlink()
    status, text = verify_cli(capsys, png)
    assert status == 0 and "content credentials valid: signed by Test Studio signer" in text
    assert "untrusted root" in text and "trainedAlgorithmicMedia" in text
    moved = mp4.with_name("x.mp4")
    mp4.rename(moved)
    mp4.with_name(mp4.name + ".provenance.json").rename(moved.with_name("x.mp4.provenance.json"))
    status, text = verify_cli(capsys, moved)
    assert status == 0 and "renamed from film.mp4" in text


def test_a_foreign_manifest_is_reported_with_its_signer(tmp_path, capsys):
    key, cert, _ = c2pa_chain(tmp_path, "Other Co")
    info = c2pa.C2paSignerInfo(b"es256", Path(cert).read_bytes(), Path(key).read_bytes(), None)
    manifest = {"claim_generator_info": [{"name": "other-tool", "version": "1"}],
                "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType":
                     "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"}]}}]}
    src = write_image(tmp_path / "src.png", 48, 32)
    out = tmp_path / "photo.png"
    with open(src, "rb") as s, open(out, "w+b") as d:
        c2pa.Builder(manifest).sign(c2pa.Signer.from_info(info), "image/png", s, d)
    creds = read_credentials(out)
    assert creds.valid and creds.record is None and creds.signer.startswith("Other Co signer")
    status, text = verify_cli(capsys, out)
    assert status == 0 and "Other Co signer" in text and "no reelfarm record" in text
    assert RECORD_LABEL not in json.dumps(c2pa.Reader(str(out)).get_active_manifest())


def test_unsigned_files_garbage_sidecars_folders_and_missing_paths(delivered, tmp_path, capsys):
    plain = write_image(tmp_path / "plain.png", 16, 16)
    status, text = verify_cli(capsys, plain)
    assert status == 2 and "no content credentials" in text
    plain.with_name("plain.png.provenance.json").write_text("{not json")
    assert verify_cli(capsys, plain)[0] == 2
    plain.with_name("plain.png.provenance.json").write_text('{"deliverable": [1]}')
    assert verify_cli(capsys, plain)[0] == 2
    png = delivered[0]
    png.with_name(png.name + ".provenance.json").write_text('["garbage"]')
    status, text = verify_cli(capsys, png)
    assert status == 0 and "not a reelfarm manifest" in text  # the credentials suffice
    assert verify_cli(capsys, tmp_path)[0] == 2
    assert verify_cli(capsys, tmp_path / "missing.mp4")[0] == 2
    assert not read_credentials(tmp_path).present


def test_signing_config_errors_name_the_flag(tmp_path, chain, pki):
    key, cert, _ = chain
    client_key = pki["client"][1]
    with pytest.raises(ValueError, match="--signing-key: cannot read"):
        SigningConfig(tmp_path / "nope.pem", Path(cert)).load()
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(ValueError, match="--signing-key: .* not an unencrypted PEM private key"):
        SigningConfig(tmp_path / "junk.pem", Path(cert)).load()
    with pytest.raises(ValueError, match="--signing-cert: .* holds no PEM certificates"):
        SigningConfig(Path(key), tmp_path / "junk.pem").load()
    with pytest.raises(ValueError, match="--signing-cert: .* is not for --signing-key's key"):
        SigningConfig(Path(client_key), Path(cert)).load()
    self_key, self_cert = _self_signed(tmp_path)
    with pytest.raises(ValueError, match="--signing-cert: .* self-signed"):
        SigningConfig(self_key, self_cert).load()


def _self_signed(folder):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "me")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "self.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (folder / "self.pem").write_bytes(cert.public_bytes(pem))
    return folder / "self.key", folder / "self.pem"


def test_local_signing_makes_one_chain_and_reuses_it(tmp_path):
    config = local_signing(tmp_path / "signing")
    first = config.key.read_bytes(), config.cert_chain.read_bytes()
    assert {os.stat(p).st_mode & 0o777 for p in (config.key, config.cert_chain)} == {0o600}
    again = local_signing(tmp_path / "signing")
    assert (again.key.read_bytes(), again.cert_chain.read_bytes()) == first
    png = write_image(tmp_path / "x.png", 16, 16)
    sign_file(png, {}, config.load())
    creds = read_credentials(png)
    assert creds.valid and not creds.trusted and "(not on any trust list)" in creds.signer


def test_input_media_hashes_read_files_and_urls(tmp_path):
    import fsspec

    img = write_image(tmp_path / "start.png", 16, 16)
    with fsspec.open("memory://bucket/ref.png", "wb") as f:
        f.write(b"ref")
    scenes = [SimpleNamespace(id="a", inputs=SceneInputs(image=str(img), references=(
                  "memory://bucket/ref.png", "memory://bucket/gone.png"))),
              SimpleNamespace(id="b", inputs=SceneInputs())]
    got = input_media_hashes(scenes)
    assert got[0] == {"scene": "a", "field": "image", "location": "start.png",
                      "sha256": hashlib.sha256(img.read_bytes()).hexdigest()}
    assert got[1]["sha256"] == hashlib.sha256(b"ref").hexdigest()
    assert got[1]["field"] == "references[0]" and got[1]["location"] == "ref.png"
    assert "sha256" not in got[2] and got[2]["note"].startswith("not hashed")


def _film(tmp_path, model="tiny-i2v-a14b", **scene):
    story = {"title": "signed", "fps": 16, "width": 32, "height": 32, "model": model, "steps": 2,
             "scenes": [{"id": "a", "prompt": "a kite", "frames": 5, "seed": 1, **scene}]}
    (tmp_path / "film.yaml").write_text(yaml.safe_dump(story))
    return str(tmp_path / "film.yaml")


def test_render_signs_the_mp4_and_frames_with_input_hashes(tmp_path, chain, capsys):
    img = write_image(tmp_path / "start.png", 32, 32, seed=3)
    out = tmp_path / "out"
    assert main(["render", _film(tmp_path, image="start.png"), "-o", str(out / "film.mp4"),
                 "--frames-dir", str(out / "frames"), "--contact-sheet", str(out / "sheet.png"),
                 "--signing-key", chain[0], "--signing-cert", chain[1]]) == 0
    capsys.readouterr()
    status, text = verify_cli(capsys, out / "film.mp4", out / "sheet.png", out / "frames" / "a",
                              out / "frames" / "a" / "a.0003.png")
    assert status == 0 and text.count("signed by Test Studio signer") == 4
    assert "valid in 5 of 5 files" in text
    record = read_credentials(out / "film.mp4").record
    assert record["inputs"] == [{"scene": "a", "field": "image", "location": "start.png",
                                 "sha256": hashlib.sha256(img.read_bytes()).hexdigest()}]
    sidecar = json.loads((out / "film.mp4.provenance.json").read_text())
    assert sidecar["inputs"] == record["inputs"] and sidecar["model"] == record["model"]


def test_render_without_a_key_signs_with_the_local_chain(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["render", _film(tmp_path, model="tiny-ti2v-5b"), "-o", "film.mp4"]) == 0
    assert (tmp_path / ".reelfarm" / "signing" / "signing-chain.pem").is_file()
    capsys.readouterr()
    status, text = verify_cli(capsys, "film.mp4")
    assert status == 0 and "reelfarm local signer (not on any trust list)" in text


def test_render_refuses_bad_signing_flags_before_any_work(tmp_path, chain, capsys):
    film = _film(tmp_path, model="tiny")
    self_key, self_cert = _self_signed(tmp_path)
    assert main(["render", film, "-o", str(tmp_path / "x.mp4"), "--signing-key", str(self_key),
                 "--signing-cert", str(self_cert)]) == 2
    err = capsys.readouterr().err
    assert "--signing-cert" in err and "self-signed" in err and "Traceback" not in err
    assert main(["render", film, "-o", str(tmp_path / "x.mp4"), "--signing-key", chain[0]]) == 2
    assert "--signing-key needs --signing-cert" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()
