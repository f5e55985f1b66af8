"""LoRA adapters on resident experts (farm.model.adapters, adapter_cache).

- A film with a character LoRA on both experts (diffusers layout, alpha 8, weights 0.8 /
  0.5) and a Wan2.2-style pair (original Wan layout, one file per expert) renders the
  frames of diffusers' WanPipeline with the same LoRAs, within the equivalence tests'
  tolerance (uint8 rounding). The reference loads them with diffusers' LoRA loader
  (`load_lora_weights`, `load_into_transformer_2`, `set_adapters` per expert).
- Switching adapters between phases on one worker leaves no trace (A, B, A == A, A), a
  phase without adapters runs the bare expert bit for bit, phases with different adapters
  stepped in turn on one expert each equal their solo run, and the cache keeps its byte
  budget (evicted adapters leave the expert: delete_adapters).
"""

from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from farm.cli import main
from farm.engine.executor import run_gang
from farm.engine.orders import DenoiseOrder, ModelRef, PromptOrder
from farm.model import adapters
from farm.model.adapter_cache import AdapterCache, AdapterCacheConfig
from farm.model.adapters import AdapterError, adapter_checks, read_lora, scoped
from farm.model.loader import resolve_model
from farm.model.noise import initial_noise
from farm.model.worker import TorchWorker
from farm.plan.segments import Window
from farm.spec.film import resolve_film
from farm.spec.profiles import profile_for
from farm.spec.storyboard import parse_storyboard
from tests.model.lora_helpers import fuse, random_lora, save_diffusers, save_wan

pytestmark = pytest.mark.model
W, H, FRAMES, STEPS = 64, 48, 9, 6
PROMPT, NEGATIVE = "a red fox runs through snow", "blurry"


@pytest.fixture(scope="module")
def loras(tiny_dirs, tmp_path_factory):
    """The tiny model folder and its test LoRAs: (folder, dir, {name: (layers, alpha)})."""
    folder = tiny_dirs("t2v-a14b")
    base = TorchWorker(resolve_model(folder)).loader.expert("high")
    out = tmp_path_factory.mktemp("loras")
    made = {"char": (random_lora(base, 4, seed=1, scale=0.6), 8.0),
            "pair_high.safetensors": (random_lora(base, 2, seed=2, scale=0.6), 1.0),
            "pair_low.safetensors": (random_lora(base, 2, seed=3, scale=0.6), 2.0)}
    save_diffusers(out / "char", *made["char"])
    for name in ("pair_high.safetensors", "pair_low.safetensors"):
        save_wan(out / name, *made[name])
    return folder, out, made


def test_lora_film_matches_wan_pipeline_with_the_loras(loras, tmp_path):
    folder, lora_dir, made = loras
    story = {"title": "lora", "fps": 16, "width": W, "height": H, "model": folder,
             "steps": STEPS, "loras": [{"name": str(lora_dir / "char"), "high": 0.8, "low": 0.5}],
             "scenes": [{"id": "s010", "prompt": PROMPT, "negative_prompt": NEGATIVE,
                         "frames": FRAMES, "seed": 7, "guidance": {"high": 4.0, "low": 3.0},
                         "loras": [{"name": str(lora_dir / "pair_high.safetensors"), "high": 1},
                                   {"name": str(lora_dir / "pair_low.safetensors"), "low": 1}]}]}
    (tmp_path / "film.yaml").write_text(yaml.safe_dump(story))
    assert main(["render", str(tmp_path / "film.yaml"), "-o", str(tmp_path / "out.mp4"),
                 "--frames-dir", str(tmp_path / "frames")]) == 0
    farm = np.stack([np.asarray(Image.open(tmp_path / "frames" / "s010" / f"s010.{i + 1:04d}.png"))
                     for i in range(FRAMES)]).astype(np.int16)

    experts = {"high": [("char", 0.8), ("pair_high.safetensors", 1.0)],
               "low": [("char", 0.5), ("pair_low.safetensors", 1.0)]}
    ref = _reference(folder, lora_dir, experts)
    plain = _reference(folder, lora_dir, {"high": [], "low": []})
    assert farm.shape == ref.shape == (FRAMES, H, W, 3)
    diff = int(np.abs(farm - ref).max())
    print(f"farm vs WanPipeline with LoRAs: max abs diff {diff} (uint8); "
          f"LoRAs moved the frames by up to {int(np.abs(ref - plain).max())}")
    assert np.abs(ref - plain).max() >= 3  # the LoRAs matter (the tiny VAE's range is narrow)
    assert diff <= 1  # only uint8 rounding, as in test_farm_equals_diffusers
    # the manifest (and the credentials, which carry the same record) pins the adapters
    manifest = json.loads((tmp_path / "out.mp4.provenance.json").read_text())
    got = [(e["name"].rsplit("/", 1)[-1], e["sha256"], e["weights"])
           for e in manifest["scenes"][0]["loras"]]
    sha = {n: hashlib.sha256((lora_dir / n).read_bytes()).hexdigest()
           for n in ("char/pytorch_lora_weights.safetensors", "pair_high.safetensors",
                     "pair_low.safetensors")}
    assert got == [("char", sha["char/pytorch_lora_weights.safetensors"],
                    {"high": 0.8, "low": 0.5}),
                   ("pair_high.safetensors", sha["pair_high.safetensors"],
                    {"high": 1.0, "low": 0.0}),
                   ("pair_low.safetensors", sha["pair_low.safetensors"], {"high": 0.0, "low": 1.0})]
    assert manifest["draft"] is None


def test_a_draft_renders_and_says_so(loras, tmp_path):
    folder, lora_dir, _ = loras
    story = {"title": "draft", "fps": 16, "width": W, "height": H, "model": folder, "steps": 8,
             "draft": {"loras": [{"name": str(lora_dir / "pair_high.safetensors"), "high": 1},
                                 {"name": str(lora_dir / "pair_low.safetensors"), "low": 1}],
                       "steps": 2},
             "scenes": [{"id": "s010", "prompt": PROMPT, "frames": 5, "seed": 7}]}
    (tmp_path / "film.yaml").write_text(yaml.safe_dump(story))
    assert main(["render", str(tmp_path / "film.yaml"), "-o", str(tmp_path / "out.mp4")]) == 0
    manifest = json.loads((tmp_path / "out.mp4.provenance.json").read_text())
    assert manifest["film"]["steps"] == 2 and manifest["scenes"][0]["guidance"] == [1.0, 1.0]
    draft = manifest["draft"]
    assert (draft["steps"], draft["guidance"], draft["final_steps"]) == (2, 1.0, 8)
    assert [e["weights"] for e in draft["loras"]] == [{"high": 1.0, "low": 0.0},
                                                      {"high": 0.0, "low": 1.0}]


def _reference(folder, lora_dir, experts) -> np.ndarray:
    """WanPipeline with the LoRAs loaded by diffusers: each file into its expert
    (`load_into_transformer_2` for the low-noise one), then that expert's weights."""
    from diffusers import WanPipeline

    p = profile_for("t2v-a14b")
    noise = initial_noise(7, "s010", (FRAMES - 1) // 4 + 1, p.latent_channels, H // 8, W // 8)
    pipe = WanPipeline.from_pretrained(folder)
    for expert, module in (("high", pipe.transformer), ("low", pipe.transformer_2)):
        names = []
        for name, _ in experts[expert]:
            path = lora_dir / name
            where, file = (path, None) if path.is_dir() else (path.parent, path.name)
            names.append(f"{expert}_{name.split('.')[0]}")
            pipe.load_lora_weights(str(where), weight_name=file, adapter_name=names[-1],
                                   load_into_transformer_2=expert == "low")
        if names:
            module.set_adapters(names, [w for _, w in experts[expert]])
            assert module.active_adapters() == names  # the reference really runs them
    out = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, height=H, width=W, num_frames=FRAMES,
               num_inference_steps=STEPS, guidance_scale=4.0, guidance_scale_2=3.0,
               latents=noise, output_type="np").frames[0]
    return (out * 255).round().astype(np.int16)


def test_expert_with_adapters_equals_fused_weights(loras):
    """One forward of an expert with two adapters active == the same expert with them
    fused into its weights: the latent-space check behind the frames above; with none
    active, the expert that has PEFT layers equals one that never had an adapter."""
    folder, lora_dir, made = loras
    worker = TorchWorker(resolve_model(folder))
    model = worker.loader.expert("high")
    fused = TorchWorker(resolve_model(folder)).loader.expert("high")
    bare = TorchWorker(resolve_model(folder)).loader.expert("high")
    for name, weight in (("char", 0.8), ("pair_high.safetensors", -1.0)):
        fuse(fused, made[name][0], weight, made[name][1])
    active = worker.adapters.activate(model, (
        (str(lora_dir / "char" / "pytorch_lora_weights.safetensors"), 0.8),
        (str(lora_dir / "pair_high.safetensors"), -1.0)))
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn((1, 16, 3, 6, 8), generator=g), torch.randn((1, 512, 32), generator=g)
    kw = {"hidden_states": x, "timestep": torch.tensor([700.0]), "encoder_hidden_states": text,
          "return_dict": False}

    def forward():
        yield model(**kw)[0]
    with torch.no_grad():
        got = next(scoped(forward(), active))
        none = next(scoped(forward(), worker.adapters.activate(model, ())))
        want, plain = fused(**kw)[0], bare(**kw)[0]
    diff = (got - want).abs().max().item()
    print(f"expert + adapters vs fused weights: max abs diff {diff:.2e}, "
          f"adapter effect {(want - plain).abs().max().item():.2e}")
    assert (want - plain).abs().max() > 0.1
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(none, plain)  # set_adapters([]): the bare Linear layers, exactly


def _phase(worker: TorchWorker, adapters) -> torch.Tensor:
    ref = ModelRef("tiny", "t2v-a14b", ("high", "low"), W, H, 4, 12.0, "unipc", 512)
    prompt = worker.encode_prompt(PromptOrder("f", "s", ref, PROMPT, NEGATIVE, True))
    order = DenoiseOrder("f", "t", "s/0", "s", ref, 3, "high", 4.0, 0, 2, Window(0, 3),
                         (Window(0, 3),), 0, False, adapters=adapters)
    return worker.denoise(order, prompt, None, None, None).latents


def test_switching_adapters_leaves_no_trace(loras):
    folder, lora_dir, _ = loras
    a = ((str(lora_dir / "char" / "pytorch_lora_weights.safetensors"), 0.8),)
    b = ((str(lora_dir / "pair_high.safetensors"), 1.0), (a[0][0], -0.5))
    worker = TorchWorker(resolve_model(folder))
    bare = _phase(worker, ())
    first = _phase(worker, a)
    _phase(worker, b)
    again = _phase(worker, a)
    assert torch.equal(first, again)  # A, B, A == A, A: bit for bit
    assert torch.equal(_phase(worker, ()), bare)  # no adapters: the bare expert
    assert torch.equal(_phase(TorchWorker(resolve_model(folder)), ()), bare)
    assert not torch.equal(first, bare)
    stats = worker.adapters.stats
    print(f"adapter cache: {stats.loads} loads, {stats.hits} hits, "
          f"{stats.load_seconds * 1e3:.1f} ms loading")
    assert (stats.loads, stats.hits, stats.evictions) == (2, 2, 0)


def test_cache_keeps_its_byte_budget(loras):
    folder, lora_dir, _ = loras
    model = TorchWorker(resolve_model(folder)).loader.expert("high")
    char = str(lora_dir / "char" / "pytorch_lora_weights.safetensors")
    pair = str(lora_dir / "pair_high.safetensors")
    size = read_lora(char).nbytes(torch.float32)
    cache = AdapterCache(AdapterCacheConfig(size + 1), torch.device("cpu"), torch.float32)
    for location in (char, pair, char):  # each evicts the other (least recently used)
        cache.activate(model, ((location, 1.0),))  # the phase ends at once: unpinned
        assert cache.nbytes <= size + 1
        assert list(model.peft_config) == [adapters.adapter_name(read_lora(location))]
    assert (cache.stats.loads, cache.stats.evictions) == (3, 2)
    running = cache.activate(model, ((char, 1.0),))  # a phase that has not ended ...
    cache.activate(model, ((pair, 1.0),))
    assert cache.locations == (char, pair)  # ... keeps its adapter past the budget
    running.release()
    cache.activate(model, ((pair, 1.0),))
    assert cache.locations == (pair,) and cache.nbytes <= size + 1
    with pytest.raises(AdapterError, match="more than this worker's adapter cache"):
        cache.activate(model, ((char, 1.0), (pair, 1.0)))
    for bad in (0, -5, 1.5, True):
        with pytest.raises(ValueError, match="max_bytes"):
            AdapterCacheConfig(bad)


def test_wan_layout_reads_as_the_diffusers_layout(loras, tmp_path):
    folder, lora_dir, made = loras
    layers, alpha = made["pair_high.safetensors"]
    save_diffusers(tmp_path, layers, alpha)
    wan = read_lora(str(lora_dir / "pair_high.safetensors"))
    ours = read_lora(str(tmp_path / "pytorch_lora_weights.safetensors"))
    assert (wan.layout, ours.layout) == ("wan", "diffusers")
    assert wan.layers.keys() == ours.layers.keys() == layers.keys()
    for k in layers:  # alpha folded into the weights (Wan) or kept as scaling (diffusers)
        got = wan.layers[k].scale * wan.layers[k].up @ wan.layers[k].down
        want = ours.layers[k].scale * ours.layers[k].up @ ours.layers[k].down
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
    assert wan.config is None and ours.config["lora_alpha"] == alpha  # PEFT's LoraConfig


def test_mismatched_adapters_are_named_at_submission(loras, tmp_path):
    from safetensors.torch import save_file

    folder, lora_dir, made = loras
    layers = made["char"][0]
    wide = {f"transformer.{k}.lora_A.weight": torch.zeros(4, 5120) for k in list(layers)[:2]}
    wide |= {f"transformer.{k}.lora_B.weight": torch.zeros(5120, 4) for k in list(layers)[:2]}
    save_file(wide, str(tmp_path / "a14b.safetensors"))
    deep = {"transformer.blocks.39.attn1.to_q.lora_A.weight": torch.zeros(4, 24),
            "transformer.blocks.39.attn1.to_q.lora_B.weight": torch.zeros(24, 4)}
    save_file(deep, str(tmp_path / "deep.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    odd = {f"transformer.{k}.lora_{h}.weight": v for k, (a, b) in list(layers.items())[:1]
           for h, v in (("A", a), ("B", b))}  # metadata PEFT's LoraConfig does not take
    save_file(odd, str(tmp_path / "odd.safetensors"), metadata={
        "lora_adapter_metadata": json.dumps({"transformer.r": 4, "transformer.alpah": 8})})
    def scene(sid, *names):
        return {"id": sid, "prompt": "x", "frames": 5,
                "loras": [{"name": n, "weight": 1} for n in names]}
    board = parse_storyboard({"title": "t", "fps": 16, "width": W, "height": H, "scenes": [
        scene("a", "a14b.safetensors"), scene("b", "deep.safetensors", "junk.safetensors"),
        scene("c", "odd.safetensors")]})
    source = resolve_model(folder)
    film = resolve_film(board, profile_for(source.family), base_dir=tmp_path)
    errors = {(e.path, e.message.split(":")[0]): e.message for e in adapter_checks(film, source)}
    assert set(errors) == {("scenes[0].loras", "a14b.safetensors"),
                           ("scenes[1].loras", "deep.safetensors"),
                           ("scenes[1].loras", "junk.safetensors"),
                           ("scenes[2].loras", "odd.safetensors")}
    assert "5120 features" in errors[("scenes[0].loras", "a14b.safetensors")]
    assert "another model family" in errors[("scenes[1].loras", "deep.safetensors")]
    assert "not a safetensors file" in errors[("scenes[1].loras", "junk.safetensors")]
    assert "no PEFT LoraConfig" in errors[("scenes[2].loras", "odd.safetensors")]
    assert "alpah" in errors[("scenes[2].loras", "odd.safetensors")]


def _gang(adapters) -> tuple[DenoiseOrder, ...]:
    """A phase of two overlapping windows on the high-noise expert: its members yield at
    every step (their halos), so other phases can step the expert in between."""
    ref = ModelRef("tiny", "t2v-a14b", ("high", "low"), W, H, 4, 12.0, "unipc", 512)
    windows = (Window(0, 3), Window(2, 5))
    return tuple(DenoiseOrder("f", "t", f"s/{k}", "s", ref, 3, "high", 4.0, 0, 3, w, windows,
                              k, False, adapters=adapters) for k, w in enumerate(windows))


def _in_turn(worker: TorchWorker, gangs, prompt) -> list[list[torch.Tensor]]:
    """Step every gang's members on one worker in this thread, a step of each in turn
    (run_gang's loop, over several gangs)."""
    gens = [[worker.denoise_steps(o, prompt, None, None) for o in orders] for orders in gangs]
    done: list[list] = [[None] * len(orders) for orders in gangs]
    inbox: list[dict] = [{} for _ in gangs]
    for step in range(100):
        for g, members in enumerate(gens):
            posted = {}
            for i, gen in enumerate(members):
                if done[g][i] is None:
                    try:
                        _, out = next(gen) if step == 0 else gen.send(inbox[g][i])
                        posted[i] = out
                    except StopIteration as end:
                        done[g][i] = end.value.latents
            inbox[g] = {i: {src: out[i] for src, out in posted.items() if i in out}
                        for i in posted}
        if all(x is not None for row in done for x in row):
            return done
    raise AssertionError("the phases did not end")


def test_phases_stepped_in_turn_on_one_expert_equal_their_solo_runs(loras, monkeypatch):
    """A bare phase and two with different adapters on one expert, stepped in turn in
    one thread, then each in a thread of its own: each equals its run alone."""
    folder, lora_dir, _ = loras
    char = str(lora_dir / "char" / "pytorch_lora_weights.safetensors")
    sets = (((char, 0.8),), ((str(lora_dir / "pair_high.safetensors"), 1.0), (char, -0.5)), ())
    ref = ModelRef("tiny", "t2v-a14b", ("high", "low"), W, H, 4, 12.0, "unipc", 512)
    prompt = TorchWorker(resolve_model(folder)).encode_prompt(
        PromptOrder("f", "s", ref, PROMPT, NEGATIVE, True))
    solo = []
    for adapters_ in sets:  # each phase alone, on a worker of its own
        worker = TorchWorker(resolve_model(folder))
        gang = _gang(adapters_)
        solo.append([s.latents for s in run_gang([(worker, "w")] * 2, gang, prompt,
                                                  [None, None], None)])
    switches = []
    real = adapters.switch
    monkeypatch.setattr(adapters, "switch", lambda m, key: (switches.append(key), real(m, key)))
    together = _in_turn(TorchWorker(resolve_model(folder)), [_gang(a) for a in sets], prompt)
    print(f"3 phases x 2 members x 3 steps in turn: {len(switches)} set_adapters calls")
    assert len(switches) >= 3 * 3  # the active set changed at least at every phase's step
    worker = TorchWorker(resolve_model(folder))  # and each phase in a thread of its own
    threads = [threading.Thread(target=lambda k=k: threaded.__setitem__(k, [
        s.latents for s in run_gang([(worker, "w")] * 2, _gang(sets[k]), prompt, [None, None],
                                    None)])) for k in range(len(sets))]
    threaded: dict[int, list[torch.Tensor]] = {}
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for alone, mixed, parallel in zip(solo, together, [threaded[k] for k in range(len(sets))],
                                      strict=True):
        for a, b, c in zip(alone, mixed, parallel, strict=True):
            assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(solo[0][0], solo[2][0]) and not torch.equal(solo[0][0], solo[1][0])
