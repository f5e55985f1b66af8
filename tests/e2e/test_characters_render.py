"""A film of 4 scenes naming one character, rendered on the toy model through `reelfarm
render`: every scene renders the character's description in its prompt and its LoRA on
every denoising phase, and the manifest says which characters each scene used and what
its family (text-to-video) could not use of them. Whether the character keeps its colour
and shape is measured by bench/quality.py with a trained character LoRA; here the LoRA is
random (the plumbing is what is tested)."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
import yaml

from farm.cli import main
from farm.model.loader import resolve_model
from farm.model.worker import TorchWorker
from tests.media_files import write_image
from tests.model.lora_helpers import random_lora, save_diffusers

pytestmark = pytest.mark.model
MARA = "a red circle"
PROMPTS = ("mara moves right on a black background", "mara moves up on a blue background",
           "mara moves left on a gray background", "mara moves down on a green background")


def test_four_scenes_bring_in_the_same_character(tmp_path, monkeypatch):
    base = TorchWorker(resolve_model("toy")).loader.expert("high")
    save_diffusers(tmp_path / "mara_lora", random_lora(base, 2, seed=1, scale=0.1), 2.0)
    write_image(tmp_path / "mara.png", 64, 64, seed=1)
    story = {"title": "mara", "fps": 16, "width": 64, "height": 64, "model": "toy", "steps": 2,
             "characters": [{"id": "mara", "name": "Mara", "description": MARA,
                             "references": ["mara.png"],
                             "loras": [{"name": "mara_lora", "weight": 0.8}]}],
             "scenes": [{"id": f"s{i}0", "prompt": p, "frames": 17, "seed": i,
                         "characters": ["mara"]} for i, p in enumerate(PROMPTS, 1)]}
    (tmp_path / "film.yaml").write_text(yaml.safe_dump(story, sort_keys=False))

    seen: dict[str, set] = defaultdict(set)
    steps = TorchWorker.denoise_steps

    def recording(self, order, prompt, state, condition):
        seen[order.scene_id].add(order.adapters)
        return steps(self, order, prompt, state, condition)

    monkeypatch.setattr(TorchWorker, "denoise_steps", recording)
    assert main(["render", str(tmp_path / "film.yaml"), "-o", str(tmp_path / "film.mp4")]) == 0

    lora = str(tmp_path / "mara_lora" / "pytorch_lora_weights.safetensors")
    assert seen == {s["id"]: {((lora, 0.8),)} for s in story["scenes"]}  # every phase
    manifest = json.loads((tmp_path / "film.mp4.provenance.json").read_text())
    assert [s["prompt"] for s in manifest["scenes"]] == [f"{p}. Mara: {MARA}." for p in PROMPTS]
    assert all([e["name"] for e in s["loras"]] == ["mara_lora"] for s in manifest["scenes"])
    assert all(s["characters"] == [{
        "id": "mara", "used": ["description", "loras"],
        "not_used": "t2v-a14b takes no images: 1 image (mara.png) not used "
                    "(its description reaches the prompt)"}] for s in manifest["scenes"])
