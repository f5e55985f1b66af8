"""The `reelfarm` command line, end to end on the tiny model."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from farm.cli import main
from farm.media.writers import probe_video

pytestmark = pytest.mark.model
ROOT = Path(__file__).resolve().parents[2]


def test_render_example_film_decodes_back_exactly(tmp_path):
    out = tmp_path / "trailer.mp4"
    assert main(["render", str(ROOT / "examples" / "trailer.yaml"), "-o", str(out),
                 "--frames-dir", str(tmp_path / "frames")]) == 0
    story = yaml.safe_load((ROOT / "examples" / "trailer.yaml").read_text())
    counts = [s.get("frames") or round(s["seconds"] * story["fps"]) for s in story["scenes"]]
    info = probe_video(out)
    assert info["frames"] == sum(counts)
    assert info["fps"] == Fraction(story["fps"])
    assert (info["width"], info["height"]) == (story["width"], story["height"])
    assert (info["codec"], info["pix_fmt"]) == ("h264", "yuv420p")
    for s, n in zip(story["scenes"], counts, strict=True):
        pngs = sorted((tmp_path / "frames" / s["id"]).glob("*.png"))
        assert [p.name for p in pngs] == [f"{s['id']}.{i:04d}.png" for i in range(1, n + 1)]


def test_render_rejects_bad_storyboard_before_any_work(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"title": "t", "fps": 16, "width": 60, "height": 64,
                                   "scenes": [{"id": "a", "prompt": "p", "frames": 18}]}))
    assert main(["render", str(bad), "-o", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err
    assert "width: 60 is not a multiple of 16" in err
    assert "scenes[0].frames: 18 is not 4k+1" in err and "nearest valid: 17 or 21" in err
    assert not (tmp_path / "x.mp4").exists()


def test_steps_flag_and_model_flag_are_validated(tmp_path, capsys):
    assert main(["validate", str(ROOT / "examples" / "trailer.yaml"), "--model", "nope"]) == 2
    assert "--model: 'nope' is neither a built-in model" in capsys.readouterr().err
    assert main(["render", str(ROOT / "examples" / "trailer.yaml"), "-o", str(tmp_path / "x.mp4"),
                 "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err


def test_init_tiny_writes_a_loadable_folder(tmp_path):
    from diffusers import WanImageToVideoPipeline, WanPipeline

    assert main(["models", "init-tiny", str(tmp_path / "t2v"), "--seed", "3"]) == 0
    pipe = WanPipeline.from_pretrained(tmp_path / "t2v")
    assert pipe.config.boundary_ratio == 0.875 and pipe.transformer_2 is not None
    assert main(["models", "init-tiny", str(tmp_path / "i2v"), "--kind", "i2v-a14b"]) == 0
    assert WanImageToVideoPipeline.from_pretrained(
        tmp_path / "i2v").transformer.config.in_channels == 36


def test_console_script_is_installed_and_runs():
    script = Path(sys.executable).parent / "reelfarm"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("reelfarm ")
