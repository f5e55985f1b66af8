"""Wan2.2-S2V (farm.model.s2v): weights in the official layout, the official audio
resampling, and a 2-clip scene rendered by `reelfarm render` equal to the official
sampling loop (wan/speech2video.py `generate`) written out below from the same modules."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from farm.cli import main
from tests.media_files import write_image, write_tone, write_video

pytestmark = [pytest.mark.model, pytest.mark.usefixtures("one_thread")]
W, H, STEPS, SEED = 64, 64, 3, 7
PROMPT, NEG = "a woman sings on a stage", "blurry"


def official_keys(layers: int, injectors: int) -> set[str]:
    """WanModel_S2V's state dict names (official model_s2v.py, 14B options), written out."""
    wb = lambda p: {f"{p}.weight", f"{p}.bias"}  # noqa: E731
    keys = {"trainable_cond_mask.weight", "head.modulation", "casual_audio_encoder.weights",
            "casual_audio_encoder.encoder.padding_tokens"}
    for p in ("patch_embedding", "cond_encoder", "text_embedding.0", "text_embedding.2",
              "time_embedding.0", "time_embedding.2", "time_projection.1", "head.head",
              "frame_packer.proj", "frame_packer.proj_2x", "frame_packer.proj_4x",
              *(f"casual_audio_encoder.encoder.{c}.conv"
                for c in ("conv1_local", "conv1_global", "conv2", "conv3")),
              "casual_audio_encoder.encoder.final_linear"):
        keys |= wb(p)

    def attention(p):
        return set().union(*(wb(f"{p}.{x}") for x in "qkvo")) | {f"{p}.norm_q.weight",
                                                                 f"{p}.norm_k.weight"}
    for i in range(layers):
        b = f"blocks.{i}"
        keys |= {f"{b}.modulation"} | attention(f"{b}.self_attn") | attention(f"{b}.cross_attn")
        keys |= wb(f"{b}.norm3") | wb(f"{b}.ffn.0") | wb(f"{b}.ffn.2")
    for j in range(injectors):
        keys |= (attention(f"audio_injector.injector.{j}")
                 | wb(f"audio_injector.injector_adain_layers.{j}.linear"))
    return keys


def test_weights_round_trip_through_the_official_layout(tiny_dirs):
    from safetensors.torch import load_file

    from farm.model.loader import ModelLoader, resolve_model
    from farm.model.s2v.tiny import TINY
    from farm.model.tiny import build_transformer

    folder = Path(tiny_dirs("s2v-14b"))
    names = set(load_file(str(folder / "diffusion_pytorch_model.safetensors")))
    assert names == official_keys(TINY.layers, len(TINY.audio_inject))
    assert json.loads((folder / "config.json").read_text())["model_type"] == "s2v"
    source = resolve_model(str(folder))
    assert source.family == "s2v-14b"
    loaded, built = ModelLoader(source).expert("dense"), build_transformer("s2v-14b")
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(1, 16, 3, 8, 8, generator=g), torch.tensor([700.0]),
            torch.randn(1, 9, 32, generator=g), torch.randn(1, 16, 1, 8, 8, generator=g),
            torch.randn(1, 16, 19, 8, 8, generator=g), torch.randn(1, 3, 8, 12, generator=g))
    with torch.no_grad():
        assert torch.equal(loaded(*args)[0], built(*args)[0])


@pytest.mark.parametrize("first_clip,pose", [(True, False), (False, False), (False, True)])
def test_forward_equals_the_official_forward(first_clip, pose):
    """Our S2VTransformer against the official forward restated over the official key
    names (tests/model/s2v_official.py), every weight random (nothing zero-initialised
    to hide a mistake); the first clip without motion tokens (drop_first_motion)."""
    from farm.model.s2v.tiny import TINY
    from farm.model.s2v.weights import official_config, to_official
    from farm.model.tiny import build_transformer
    from tests.model.s2v_official import Official

    ours = build_transformer("s2v-14b")
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in ours.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    official = Official({to_official(k): v for k, v in ours.state_dict().items()},
                        official_config(TINY))
    x, ctx = torch.randn(16, 5, 8, 8, generator=g), torch.randn(9, 32, generator=g)
    ref, motion = torch.randn(16, 1, 8, 8, generator=g), torch.randn(16, 19, 8, 8, generator=g)
    audio, t = torch.randn(1, 3, 8, 20, generator=g), torch.tensor([613.0])
    cond = torch.randn(16, 5, 8, 8, generator=g) if pose else None
    with torch.no_grad():
        want = official.forward(x, t, ctx, ref, motion, audio, first_clip, cond)
        mine = motion[:, :0] if first_clip else motion
        got = ours(x[None], t, ctx[None], ref[None], mine[None], audio,
                   None if cond is None else cond[None])[0][0]
    assert want.abs().mean() > 0.1
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_handoff_carries_the_decode_lead_over_the_wire():
    from farm.model.solver import Handoff, SolverState

    lead = torch.randn(1, 16, 19, 8, 8)
    h = Handoff(torch.randn(1, 16, 20, 8, 8), SolverState("euler", 40, 0), lead)
    back = Handoff.from_bytes(h.to_bytes())
    assert torch.equal(back.lead, lead) and torch.equal(back.latents, h.latents)
    assert Handoff.from_bytes(Handoff(h.latents, h.state).to_bytes()).lead is None


def test_unsupported_official_options_are_refused():
    from farm.model.s2v.weights import config_from_official

    with pytest.raises(ValueError, match="enable_motioner"):
        config_from_official({"model_type": "s2v", "enable_motioner": True,
                              "enable_framepack": False})


def test_audio_buckets_follow_the_official_sampler():
    """AudioEncoder.get_audio_embed_bucket_fps (m = 0) restated: frame i of `fps` takes the
    30 Hz feature round(i / fps * 30) of linspace's times, zeros from the audio's end."""
    from farm.model.s2v.audio import frame_buckets

    feats = torch.randn(3, 50, 8)
    count = 80 * 2
    times = np.linspace(0, count / 16, count, endpoint=False)
    index = np.round(times * 30).astype(int)
    # (n, layers, C)
    want = torch.stack([feats[:, i] if i < 50 else torch.zeros(3, 8) for i in index])
    got = frame_buckets(feats, 16, 0, count)
    assert got.shape == (1, 3, 8, count)
    assert torch.equal(got[0].permute(2, 0, 1), want)
    assert torch.equal(frame_buckets(feats, 16, 80, 80), got[..., 80:])


def test_audio_features_follow_the_official_resampling():
    """AudioEncoder.extract_audio_feat(return_all_layers=True) restated: every hidden state
    of wav2vec2 stacked, linearly interpolated (ends aligned) from 50 Hz to 30 Hz."""
    from farm.model.s2v.audio import wav2vec_features
    from farm.model.tiny import build_audio_encoder

    extractor, model = build_audio_encoder()
    samples = (0.3 * np.sin(np.arange(32000) / 7.0)).astype(np.float32)  # 2 s at 16 kHz
    got = wav2vec_features(extractor, model, samples)
    values = extractor(samples, sampling_rate=16000, return_tensors="pt").input_values
    with torch.no_grad():
        feat = torch.cat(model(values, output_hidden_states=True).hidden_states).transpose(1, 2)
    want = torch.nn.functional.interpolate(feat, size=int(feat.shape[2] / 50 * 30), mode="linear",
                                           align_corners=True).transpose(1, 2)
    assert got.shape == (3, 59, 8)
    assert torch.equal(got, want)


def test_each_frame_is_generated_from_the_audio_at_its_own_time(monkeypatch):
    """Sync: with wav2vec2 replaced by features that hold their own 30 Hz index, the audio
    each clip gets for scene frame v (clip 0: frames 0..76, clip 1: 77..156) comes from
    time v / 16 s of the scene's audio (within half a 30 Hz step); the first clip's 3
    dropped frames get the silence in front (times < 0)."""
    import farm.model.s2v.condition as cond
    from farm.model.tiny import build_vae

    def stamps(extractor, model, samples):  # (1 layer, T30, 1 channel): value = index
        n = int(len(samples) / 16000 * 30)
        return torch.arange(n, dtype=torch.float32).view(1, n, 1)
    monkeypatch.setattr(cond, "wav2vec_features", stamps)
    vae = build_vae("s2v-14b")
    feats = cond.scene_features(vae, None, None, np.zeros((64, 64, 3), np.uint8),
                                np.zeros(16000 * 12, np.float32), 16, 64, 64)
    clips = [cond.clip_condition(vae, feats, 16, 0, 20, None),
             cond.clip_condition(vae, feats, 16, 20, 20, torch.zeros(1, 3, 73, 64, 64))]
    index = torch.cat([c.kwargs["audio"][0, 0, 0] for c in clips])  # 160 buckets
    seconds = index.double().numpy() / 30 - 3 / 16  # time in the scene's audio
    frames = np.arange(-3, 157)
    assert np.abs(seconds - frames / 16).max() <= 1 / 60 + 1e-6
    assert [c.lead.shape[2] for c in clips] == [1, 19]


# ------------------------------------------------------------------ the 2-clip scene

@pytest.fixture(scope="module", params=[False, True], ids=["audio", "audio+pose"])
def rendered(tiny_dirs, tmp_path_factory, request):
    """A 157-frame scene (clips of 77 + 80 frames) rendered by `reelfarm render`, with
    the motion history each clip was given recorded; with and without a pose video."""
    import farm.model.s2v.condition as cond

    tmp = tmp_path_factory.mktemp("s2v")
    write_image(tmp / "ref.png", 96, 80)
    write_tone(tmp / "vo.flac", 12.0, frequency=220.0)
    scene = {"id": "talk", "prompt": PROMPT, "frames": 157, "seed": SEED, "image": "ref.png",
             "audio": "vo.flac"}
    if request.param:
        write_video(tmp / "pose.mp4", 160, 16, W, H, seed=3)
        scene["pose_video"] = "pose.mp4"
    story = {"title": "s2v", "fps": 16, "width": W, "height": H, "model": tiny_dirs("s2v-14b"),
             "steps": STEPS, "negative_prompt": NEG,
             "scenes": [scene]}
    (tmp / "film.yaml").write_text(yaml.safe_dump(story))
    from farm.model.worker import TorchWorker

    histories, phases, real, steps = [], [], cond.clip_condition, TorchWorker.denoise_steps

    def record(vae, features, fps, first, n, history, *rest):
        histories.append(None if history is None else history.clone())
        return real(vae, features, fps, first, n, history, *rest)

    def record_phase(self, order, *args, **kw):
        phases.append((order.segment_id, order.expert, order.start_step, order.stop_step,
                       order.window))
        return steps(self, order, *args, **kw)
    mp = pytest.MonkeyPatch()
    mp.setattr(cond, "clip_condition", record)
    mp.setattr(TorchWorker, "denoise_steps", record_phase)
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # module scope: set up before the autouse fixture
    try:
        assert main(["render", str(tmp / "film.yaml"), "-o", str(tmp / "out.mp4"),
                     "--frames-dir", str(tmp / "frames")]) == 0
    finally:
        mp.undo()
        torch.set_num_threads(n)
    paths = sorted((tmp / "frames" / "talk").glob("*.png"))
    frames = np.stack([np.asarray(Image.open(p)) for p in paths])
    return tmp, frames, histories, phases


def official_loop(folder: str, tmp: Path) -> np.ndarray:
    """wan/speech2video.py `generate`, 2 clips of 80 frames, written out with our modules:
    per clip noise randn(16, 20, h, w) seeded seed + r, CFG with the audio zeroed for the
    unconditional pass, the first clip without motion tokens and decoded behind the
    reference latent (3 frames dropped), later clips decoded behind the motion latents;
    the 73-frame history rolls over the decoded frames; pose as load_pose_cond (each clip's
    80 frames, the first once more in front, its latent dropped). Audio: 3 frames of silence
    in front, pose: the first frame 3 times (our sync, see farm.model.s2v.condition)."""
    from farm.media.audio import decode_audio
    from farm.media.decode import decode_image, decode_video
    from farm.model.condition import encode_latents
    from farm.model.inputs import frames_tensor
    from farm.model.loader import ModelLoader, resolve_model
    from farm.model.s2v.audio import frame_buckets
    from farm.model.s2v.condition import scene_features
    from farm.model.text import encode_prompts

    loader = ModelLoader(resolve_model(folder))
    model, vae = loader.expert("dense"), loader.vae()
    tok, enc = loader.text()
    embeds = encode_prompts(tok, enc, PROMPT, NEG, 512, True)
    extractor, wav2vec = loader.audio_encoder()
    samples = decode_audio(str(tmp / "vo.flac"), 16000).mean(axis=0)
    feats = scene_features(vae, extractor, wav2vec, decode_image(str(tmp / "ref.png")), samples,
                           16, H, W)
    ref = feats["ref"]
    audio_emb = frame_buckets(feats["audio"], 16, 0, 160)
    history = torch.zeros(1, 3, 73, H, W)
    poses = [None, None]
    if (tmp / "pose.mp4").exists():
        video = decode_video(str(tmp / "pose.mp4"), 16, 157, (W, H))
        frames = frames_tensor(np.concatenate([video[:1]] * 3 + [video]))  # (1, 3, 160, H, W)
        poses = [encode_latents(vae, torch.cat([c[:, :, :1], c], dim=2))[:, :, 1:]
                 for c in frames.chunk(2, dim=2)]
    out = []
    for r in range(2):
        g = torch.Generator("cpu").manual_seed(SEED + r)
        latents = torch.randn(16, 20, H // 8, W // 8, generator=g)[None]
        sched = loader.scheduler("unipc", 3.0)
        sched.set_timesteps(STEPS)
        motion = ref.new_zeros(1, 16, 0, H // 8, W // 8) if r == 0 else encode_latents(vae, history)
        audio = audio_emb[..., 80 * r:80 * r + 80]
        for t in sched.timesteps:
            with torch.no_grad():
                c = model(latents, t[None], embeds.prompt, ref, motion, audio, poses[r])[0]
                u = model(latents, t[None], embeds.negative, ref, motion, 0 * audio, poses[r])[0]
            latents = sched.step(u + 4.5 * (c - u), t, latents, return_dict=False)[0]
        lead = ref if r == 0 else encode_latents(vae, history)
        with torch.no_grad():
            z = torch.cat([lead, latents], dim=2)
            mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
            std = torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
            image = vae.decode(z * std + mean, return_dict=False)[0].clamp(-1, 1)[:, :, -80:]
        if r == 0:
            image = image[:, :, 3:]
        history = torch.cat([history[:, :, image.shape[2]:], image[:, :, -73:]], dim=2)[:, :, -73:]
        out.append(image)
    video = torch.cat(out, dim=2)[0].permute(1, 2, 3, 0)
    return ((video / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def test_two_clip_scene_equals_the_official_loop(rendered, tiny_dirs):
    tmp, frames, _, _ = rendered
    assert frames.shape == (157, H, W, 3)
    ref = official_loop(tiny_dirs("s2v-14b"), tmp)
    assert ref.shape == frames.shape
    assert np.abs(frames.astype(np.int16) - ref.astype(np.int16)).max() <= 1


def test_one_expert_family_one_phase_per_clip(rendered):
    """The phase machinery runs S2V as a dense model: one phase of every step per clip."""
    from farm.plan.segments import Window

    *_, phases = rendered
    assert phases == [("talk/0", "dense", 0, STEPS, Window(0, 20)),
                      ("talk/1", "dense", 0, STEPS, Window(20, 40))]


def test_clip_boundary_carries_exactly_the_last_73_frames(rendered):
    """Clip 1's history is clip 0's last 73 decoded frames (frames 4..76 of the scene),
    as decoded (float); the first clip has none."""
    from farm.model.decode import to_uint8

    _, frames, histories, _ = rendered
    assert histories[0] is None and len(histories) == 2
    history = histories[1]
    assert history.shape == (1, 3, 73, H, W)
    assert np.array_equal(to_uint8(history), frames[77 - 73:77])


def test_deliverable_audio_is_the_scene_audio_in_sync(rendered):
    """The mp4 carries the scene's audio from its first frame to its last: as long as
    the picture (157 frames at 16 fps), the tone from time 0."""
    tmp, _, _, _ = rendered
    with av.open(str(tmp / "out.mp4")) as c:
        video = c.streams.video[0]
        n_video = sum(1 for _ in c.decode(video))
    with av.open(str(tmp / "out.mp4")) as c:
        pcm = np.concatenate([f.to_ndarray().reshape(-1, f.samples)[0] for f in c.decode(audio=0)])
        rate = c.streams.audio[0].rate
    assert n_video == 157
    assert abs(len(pcm) / rate - 157 / 16) < 1024 / rate + 1e-9  # AAC frames of 1024 samples
    assert np.abs(pcm[: rate // 16]).max() > 0.1  # the tone plays during frame 0
    assert np.abs(pcm[-rate // 8: -2048]).max() > 0.1  # ... and during the last frames
