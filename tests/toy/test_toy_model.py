"""The toy model: a smoke training writes a folder the farm loads (a two-expert t2v-a14b
model) and renders, reproducibly; bad flags name the flag."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farm.cli import main
from farm.model.loader import ModelLoader, resolve_model
from farm.toy import data

pytestmark = pytest.mark.model
SMOKE = ["--vae-steps", "2", "--dit-steps", "2", "--decoder-steps", "2", "--clips", "16"]
PARTS = ("transformer/diffusion_pytorch_model.safetensors",
         "transformer_2/diffusion_pytorch_model.safetensors",
         "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors")


def render(model: str, scenes: list[dict], steps: int) -> dict[str, np.ndarray]:
    from bench.quality import render as bench_render

    return bench_render(model, scenes, steps, 3.0)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy-smoke")
    assert main(["models", "train-toy", str(out), *SMOKE]) == 0
    return out


def test_smoke_training_writes_a_loadable_two_expert_folder(smoke):
    source = resolve_model(str(smoke))
    assert source.family == "t2v-a14b"
    loader = ModelLoader(source)
    high, low = loader.expert("high"), loader.expert("low")
    assert high.config.num_layers == low.config.num_layers == 4
    tok, _ = loader.text()
    assert tok.unk_token_id not in tok("a red circle moves left on a blue background").input_ids
    clips = render(str(smoke), [{"id": "a",
                                 "prompt": "a red circle moves left on a blue background",
                                 "frames": 17, "seed": 1}], steps=2)
    assert clips["a"].shape == (17, 64, 64, 3)


def test_smoke_training_is_reproducible(smoke, tmp_path):
    assert main(["models", "train-toy", str(tmp_path), *SMOKE]) == 0
    for part in PARTS:
        assert (tmp_path / part).read_bytes() == (smoke / part).read_bytes(), part


def test_a_run_resumed_after_its_experts_ends_with_the_weights_of_one_that_never_stopped(
        smoke, tmp_path):
    """A folder whose record ends at the expert phase (a run stopped in step 4) continues
    with `--resume` and its step count: only the decoder trains; the bytes equal the smoke run's."""
    import json

    from safetensors.torch import load_file

    vae = "vae/diffusion_pytorch_model.safetensors"
    assert main(["models", "train-toy", str(tmp_path), "--vae-steps", "2", "--dit-steps", "2",
                 "--decoder-steps", "0", "--clips", "16"]) == 0
    record = json.loads((tmp_path / "toy_training.json").read_text())
    del record["decoder_steps"]
    (tmp_path / "toy_training.json").write_text(json.dumps(record))
    before = load_file(tmp_path / vae)
    with pytest.raises(SystemExit, match="resume: --seed 5 differs from the folder's 0"):
        main(["models", "train-toy", str(tmp_path), *SMOKE, "--resume", "--seed", "5"])
    assert main(["models", "train-toy", str(tmp_path), *SMOKE, "--resume"]) == 0
    for part in PARTS:
        assert (tmp_path / part).read_bytes() == (smoke / part).read_bytes(), part
    after = load_file(tmp_path / vae)
    assert all(after[k].equal(v) for k, v in before.items()
               if k.startswith(("encoder.", "quant_conv.")))
    assert not all(after[k].equal(v) for k, v in before.items() if k.startswith("decoder."))
    with pytest.raises(SystemExit, match="already records 2 expert steps and 2 decoder steps: "
                                         "nothing to resume"):
        main(["models", "train-toy", str(tmp_path), *SMOKE, "--resume"])


def test_more_expert_steps_on_a_finished_folder_equal_a_run_that_trained_them_at_once(
        smoke, tmp_path):
    """Step 3 continues from train_state.pt after step 4 (which depends on the VAE alone):
    1 expert step, the decoder, 1 more = the smoke run's 2 expert steps then the decoder."""
    import json

    one = ["--vae-steps", "2", "--decoder-steps", "2", "--clips", "16"]
    assert main(["models", "train-toy", str(tmp_path), *one, "--dit-steps", "1"]) == 0
    assert main(["models", "train-toy", str(tmp_path), *one, "--dit-steps", "2", "--resume"]) == 0
    for part in PARTS:
        assert (tmp_path / part).read_bytes() == (smoke / part).read_bytes(), part
    record = json.loads((tmp_path / "toy_training.json").read_text())
    assert (record["dit_steps"], record["decoder_steps"], len(record["resumed"])) == (2, 2, 1)
    with pytest.raises(SystemExit, match="--dit-steps 1 is fewer than the 2 expert steps done"):
        main(["models", "train-toy", str(tmp_path), *one, "--dit-steps", "1", "--resume"])
    (tmp_path / "train_state.pt").unlink()
    with pytest.raises(SystemExit,
                       match="train_state.pt does not exist, so step 3 cannot continue"):
        main(["models", "train-toy", str(tmp_path), *one, "--dit-steps", "3", "--resume"])


def test_bad_training_flags_name_the_flag(capsys):
    with pytest.raises(SystemExit, match="--minutes must be > 0"):
        main(["models", "train-toy", "x", "--minutes", "0"])


def test_two_workers_train_a_loadable_folder_reproducibly(tmp_path):
    """`--workers 2`: two data-parallel processes (Gloo on loopback through a file store);
    the same flags give the same bytes again."""
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        assert main(["models", "train-toy", str(out), *SMOKE, "--workers", "2"]) == 0
    assert resolve_model(str(runs[0])).family == "t2v-a14b"
    for part in ("transformer_2/diffusion_pytorch_model.safetensors",
                 "vae/diffusion_pytorch_model.safetensors"):
        assert (runs[0] / part).read_bytes() == (runs[1] / part).read_bytes(), part


def test_killed_training_takes_its_worker_processes_with_it(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import psutil

    cmd = [str(Path(sys.executable).parent / "reelfarm"), "models", "train-toy",
           str(tmp_path / "m"), "--vae-steps", "100000", "--dit-steps", "1", "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:  # training has begun: both ranks are past start-up
        if "vae step 0" in line:
            break
    ranks = [c for c in psutil.Process(proc.pid).children(recursive=True)
             if "spawn_main" in " ".join(c.cmdline())]
    assert len(ranks) == 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(ranks, timeout=30)
    for p in alive:
        p.kill()
    assert not alive, f"{len(alive)} worker(s) outlived the killed command"


def test_text_use_rows_swap_one_word_and_score_every_kind(smoke):
    from bench.quality import swapped, text_rows

    scene = data.held_out_scenes(0, 1)[0]
    colour, direction = swapped(scene, "colour"), swapped(scene, "direction")
    assert len(colour.split()) == len(direction.split()) == len(scene.prompt.split())
    assert scene.colour not in colour.split()[:2] and f"moves {scene.direction}" not in direction
    rows = text_rows(str(smoke), data.held_out_scenes(0, 3), draws=1)
    assert set(rows) == {"high", "low"}
    for losses in rows.values():
        assert list(losses) == ["true", "no prompt", "wrong colour", "opposite direction"]
        assert all(np.isfinite(v) and v > 0 for v in losses.values())
        assert losses["no prompt"] != losses["true"]  # the experts read their text
    assert text_rows(str(smoke), data.held_out_scenes(0, 3), draws=1) == rows


def test_more_decoder_steps_on_a_finished_folder_equal_a_run_that_trained_them_at_once(
        smoke, tmp_path):
    """Step 4 continues from decoder_state.pt (--dit-steps as done: no expert step):
    1 decoder step, then 1 more = the smoke run's 2."""
    few = ["--vae-steps", "2", "--dit-steps", "2", "--clips", "16"]
    assert main(["models", "train-toy", str(tmp_path), *few, "--decoder-steps", "1"]) == 0
    with pytest.raises(SystemExit,
                       match="--decoder-steps 0 is fewer than the 1 decoder steps done"):
        main(["models", "train-toy", str(tmp_path), *few, "--decoder-steps", "0", "--resume"])
    (tmp_path / "decoder_state.pt").rename(tmp_path / "kept.pt")
    with pytest.raises(SystemExit,
                       match="decoder_state.pt does not exist, so step 4 cannot continue"):
        main(["models", "train-toy", str(tmp_path), *few, "--decoder-steps", "2", "--resume"])
    (tmp_path / "kept.pt").rename(tmp_path / "decoder_state.pt")
    assert main(["models", "train-toy", str(tmp_path), *few, "--decoder-steps", "2",
                 "--resume"]) == 0
    for part in PARTS:
        assert (tmp_path / part).read_bytes() == (smoke / part).read_bytes(), part


def test_a_decoder_restart_trains_only_the_decoder_on_from_its_weights(smoke, tmp_path):
    """--decoder-restart: a folder without decoder_state.pt goes on to a larger
    --decoder-steps from its decoder's weights; the encoder and the experts keep their
    bytes, the record counts the steps in all and keeps the restart."""
    import json
    import shutil

    from safetensors.torch import load_file

    shutil.copytree(smoke, tmp_path, dirs_exist_ok=True)
    (tmp_path / "decoder_state.pt").unlink()
    few = ["--vae-steps", "2", "--dit-steps", "2", "--clips", "16"]
    with pytest.raises(SystemExit, match="--decoder-restart needs --resume and --decoder-steps"):
        main(["models", "train-toy", str(tmp_path), *few, "--decoder-restart"])
    with pytest.raises(SystemExit, match="--decoder-restart needs --decoder-steps larger than "
                                         "the 2 decoder steps"):
        main(["models", "train-toy", str(tmp_path), *few, "--decoder-steps", "2", "--resume",
              "--decoder-restart"])
    assert main(["models", "train-toy", str(tmp_path), *few, "--decoder-steps", "3", "--resume",
                 "--decoder-restart"]) == 0
    vae = "vae/diffusion_pytorch_model.safetensors"
    before, after = load_file(smoke / vae), load_file(tmp_path / vae)
    assert all(after[k].equal(v) for k, v in before.items()
               if k.startswith(("encoder.", "quant_conv.")))
    assert not all(after[k].equal(v) for k, v in before.items() if k.startswith("decoder."))
    for part in PARTS[:2] + PARTS[3:]:
        assert (tmp_path / part).read_bytes() == (smoke / part).read_bytes(), part
    record = json.loads((tmp_path / "toy_training.json").read_text())
    assert (record["dit_steps"], record["decoder_steps"]) == (2, 3)
    assert record["resumed"][-1]["decoder_restart"] is True
    assert (tmp_path / "decoder_state.pt").is_file()  # a plain --resume can go on from here


def test_an_expert_restart_trains_the_experts_on_from_their_weights(smoke, tmp_path):
    """--expert-restart: a folder without train_state.pt (the shipped one) goes on to a
    larger --dit-steps from its experts' and text encoder's weights; the VAE keeps its
    bytes, the record counts the steps in all and keeps the restart, the same flags give
    the same bytes."""
    import json
    import shutil

    shutil.copytree(smoke, tmp_path / "a")
    (tmp_path / "a" / "train_state.pt").unlink()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    few = ["--vae-steps", "2", "--clips", "16", "--resume"]
    with pytest.raises(SystemExit,
                       match="train_state.pt does not exist, so step 3 cannot continue"):
        main(["models", "train-toy", str(tmp_path / "a"), *few, "--dit-steps", "4"])
    with pytest.raises(SystemExit, match="--expert-restart needs --resume and --dit-steps"):
        main(["models", "train-toy", str(tmp_path / "a"), "--clips", "16", "--expert-restart"])
    with pytest.raises(SystemExit,
                       match="--expert-restart needs --dit-steps larger than the 2 expert steps"):
        main(["models", "train-toy", str(tmp_path / "a"), *few, "--dit-steps", "2",
              "--expert-restart"])
    with pytest.raises(SystemExit, match="--dit-anneal must be >= 0 and needs --dit-steps"):
        main(["models", "train-toy", str(tmp_path / "a"), *few, "--dit-anneal", "2"])
    for run in ("a", "b"):
        assert main(["models", "train-toy", str(tmp_path / run), *few, "--dit-steps", "4",
                     "--dit-anneal", "2", "--expert-restart"]) == 0
    assert (tmp_path / "a" / PARTS[2]).read_bytes() == (smoke / PARTS[2]).read_bytes()
    for part in PARTS[:2] + PARTS[3:]:
        assert (tmp_path / "a" / part).read_bytes() != (smoke / part).read_bytes(), part
    for part in PARTS:
        assert (tmp_path / "a" / part).read_bytes() == (tmp_path / "b" / part).read_bytes(), part
    record = json.loads((tmp_path / "a" / "toy_training.json").read_text())
    assert (record["dit_steps"], record["decoder_steps"]) == (4, 2)
    assert record["resumed"][-1]["expert_restart"] is True
    state = torch.load(tmp_path / "a" / "train_state.pt", weights_only=False)
    assert (state["step"], state["origin"]) == (4, 2)  # a plain --resume goes on from here
