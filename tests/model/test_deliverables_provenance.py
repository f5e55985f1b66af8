"""Provenance manifests: written beside every deliverable, checked by hash; a modified,
missing, unlisted or unmanifested file is caught."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from farm.media import stills
from farm.media.provenance import Provenance, label_tags, verify, weight_hashes

pytestmark = pytest.mark.model


@pytest.fixture()
def delivered(tmp_path):
    frame = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    seq = [stills.write_png(stills.frame_path(tmp_path / "frames", "s1", i, ".png"), frame + i,
                            label_tags("png")) for i in range(3)]
    sheet = stills.write_png(tmp_path / "sheet.png", frame, label_tags("png"))
    prov = Provenance({"model": {"ref": "tiny", "weights": "tiny:0"}})
    prov.write_sequence(tmp_path / "frames" / "s1", "png8-sequence", seq)
    prov.write_file(sheet, "contact-sheet")
    return tmp_path, seq, sheet


def test_untouched_deliverables_verify(delivered):
    root, seq, sheet = delivered
    for path in (sheet, root / "frames" / "s1", seq[1]):
        verdict = verify(path)
        assert verdict.ok and verdict.status == "ok", verdict.lines
    manifest = json.loads((root / "sheet.png.provenance.json").read_text())
    assert manifest["label"] == "AI-generated" and manifest["model"]["weights"] == "tiny:0"
    assert manifest["deliverable"]["sha256"] == hashlib.sha256(sheet.read_bytes()).hexdigest()


def test_a_changed_byte_a_lost_frame_and_an_extra_file_are_caught(delivered):
    root, seq, sheet = delivered
    data = bytearray(sheet.read_bytes())
    data[-20] ^= 1
    sheet.write_bytes(bytes(data))
    verdict = verify(sheet)
    assert verdict.status == "modified" and "MODIFIED" in verdict.lines[0]
    seq[2].unlink()
    assert verify(root / "frames" / "s1").status == "modified"
    assert verify(seq[0]).ok  # the frames still there still match
    (root / "frames" / "s1" / "s1.0099.png").write_bytes(seq[0].read_bytes())
    lines = verify(root / "frames" / "s1").lines
    assert any("files not in the manifest: s1.0099.png" in line for line in lines)


def test_a_file_without_manifest_cannot_be_verified(delivered, tmp_path):
    root, _, sheet = delivered
    (root / "sheet.png.provenance.json").unlink()
    verdict = verify(sheet)
    assert verdict.status == "no-manifest" and "no provenance manifest" in verdict.lines[0]
    (root / "bad.png").write_bytes(b"x")
    (root / "bad.png.provenance.json").write_text("{not json")
    assert verify(root / "bad.png").status == "no-manifest"
    assert verify(root / "missing.mp4").status == "no-manifest"


def test_weight_hashes_cover_every_weight_file_of_a_folder(tmp_path):
    (tmp_path / "transformer").mkdir()
    (tmp_path / "transformer" / "w.safetensors").write_bytes(b"abc")
    (tmp_path / "vae.bin").write_bytes(b"def")
    (tmp_path / "model_index.json").write_text("{}")
    assert weight_hashes(str(tmp_path)) == {
        "transformer/w.safetensors": hashlib.sha256(b"abc").hexdigest(),
        "vae.bin": hashlib.sha256(b"def").hexdigest()}
    assert weight_hashes("tiny-ti2v-5b", seed=4) == "tiny:4"


def test_a_renamed_pair_and_odd_sidecars_verify_without_a_traceback(delivered):
    root, _, sheet = delivered
    moved = root / "renamed.png"
    sheet.rename(moved)
    (root / "sheet.png.provenance.json").rename(root / "renamed.png.provenance.json")
    verdict = verify(moved)
    assert verdict.ok and "renamed from sheet.png" in verdict.lines[0]
    for body in ('["a list"]', '{"schema": "reelfarm.provenance/1", "deliverable": 3}',
                 '{"schema": "reelfarm.provenance/1", "deliverable": {"file": "x"}}'):
        (root / "renamed.png.provenance.json").write_text(body)
        verdict = verify(moved)
        assert verdict.status == "no-manifest" and "not a reelfarm manifest" in verdict.lines[0]
