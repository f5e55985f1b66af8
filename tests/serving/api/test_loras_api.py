"""LoRA adapters and drafts through the API (127.0.0.1, tiny model): the SDK uploads the
LoRA files a storyboard names (an adapter resource), the film renders as a draft with
them, the render log says so, and RerenderFilm(final) renders the same seeds as a new,
final film; a LoRA of another model is INVALID_ARGUMENT naming the scene and the file."""

from __future__ import annotations

import hashlib

import pytest
import torch
from safetensors.torch import save_file

from farm.api import convert
from farm.api.protos import pb
from farm.client import InvalidArgumentError
from farm.model.loader import resolve_model
from farm.model.worker import TorchWorker
from tests.model.lora_helpers import random_lora, save_diffusers, save_wan
from tests.serving.api.helpers import tiny_board, wait_final

pytestmark = [pytest.mark.grpc, pytest.mark.model]


@pytest.fixture(scope="module")
def lora_dir(tmp_path_factory):
    base = TorchWorker(resolve_model("tiny")).loader.expert("high")
    out = tmp_path_factory.mktemp("loras")
    save_diffusers(out / "mira", random_lora(base, 4, seed=1, scale=0.6), 4.0)
    save_wan(out / "fast_high.safetensors", random_lora(base, 2, seed=2, scale=0.6), 2.0)
    save_wan(out / "fast_low.safetensors", random_lora(base, 2, seed=3, scale=0.6), 2.0)
    return out


def test_a_draft_with_loras_renders_and_its_final_follows(connect, lora_dir):
    client = connect("alice")
    data = tiny_board(scenes=2, steps=6, loras=[{"name": "mira", "weight": 0.7}],
                      draft={"loras": [{"name": "fast_high.safetensors", "high": 1},
                                       {"name": "fast_low.safetensors", "low": 1}],
                             "steps": 2, "guidance": 1})
    handle = client.submit(data, base_dir=lora_dir)
    film = handle.film
    assert film.steps == 2 and film.draft.steps == 2 and len(film.draft.loras) == 2
    assert all(lo.name.startswith("media/") for lo in film.draft.loras)
    assert [(lo.name.startswith("media/"), lo.weight) for lo in film.scenes[0].loras] == [
        (True, pytest.approx(0.7))]
    media = {m.name: m for m in client.list_media()}
    assert media[film.scenes[0].loras[0].name].kind == pb.Media.KIND_ADAPTER
    assert convert.state_word(wait_final(handle).state) == "SUCCEEDED"
    notes = [e.message for e in handle.executions() if e.kind == pb.Execution.KIND_PHASE]
    assert notes and all("draft: 2 steps, guidance 1" in n for n in notes)
    assert all("LoRA media/" in n and "@0.7" in n for n in notes)

    final = client.rerender_final(film.name)
    assert final.name != film.name and final.steps == 6 and not final.HasField("draft")
    assert [s.seed for s in final.scenes] == [s.seed for s in film.scenes]
    assert [lo.name for lo in final.scenes[0].loras] == [film.scenes[0].loras[0].name]
    done = wait_final(client.film(final.name))
    assert convert.state_word(done.state) == "SUCCEEDED"
    notes = [e.message for e in client.executions(final.name)
             if e.kind == pb.Execution.KIND_PHASE]
    assert notes and not any("draft" in n for n in notes)
    with pytest.raises(Exception, match="not a draft"):
        client.rerender_final(final.name)


def test_a_lora_of_another_model_is_named(connect, tmp_path):
    wide = {"transformer.blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 5120),
            "transformer.blocks.0.attn1.to_q.lora_B.weight": torch.zeros(5120, 4)}
    save_file(wide, str(tmp_path / "a14b.safetensors"))
    data = tiny_board(scenes=2)
    data["scenes"][1]["loras"] = [{"name": "a14b.safetensors", "weight": 1}]
    with pytest.raises(InvalidArgumentError) as info:
        connect("alice").submit(data, base_dir=tmp_path)
    text = str(info.value)  # over the API the file is the media name it was uploaded as
    sha = hashlib.sha256((tmp_path / "a14b.safetensors").read_bytes()).hexdigest()
    assert f"film.scenes[1].loras: media/{sha}: " in text
    assert "maps 5120 -> 5120 features (rank 4), the model's layer 24 -> 24" in text
