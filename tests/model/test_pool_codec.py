"""PoolConfig.handoff_codec through a pool replica's own code (serving.pool.PoolWorker,
Ray replaced by a dict): exact passes today's Handoff on and renders bit for bit as the
worker does alone; bf16 / fp8 put the high-noise phase's handoff on the wire encoded
(smaller), the low-noise phase reads it decoded, and the film stays within the bounds the
codec benchmark measures (tests/kernels/test_codec_tiny_model.py); a checkpoint holds the
wire's bytes, so a resumed phase reads what the live one read; a bad value names the
field and the allowed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from farm.engine.exchange import NoExchange
from farm.engine.orders import DenoiseOrder, ModelRef
from farm.model.decode import StreamingDecoder, to_uint8
from farm.model.loader import resolve_model
from farm.model.solver import Handoff, WireHandoff
from farm.model.text import encode_prompts
from farm.model.worker import TorchWorker
from farm.plan.segments import Window
from farm.plan.timesteps import phases, timesteps
from farm.store.artifacts import ArtifactStore
from serving.config import PoolConfig, ServingConfig
from serving.pool import PoolWorker
from serving.protocol import WorkItem

pytestmark = pytest.mark.model
W, H, STEPS, SEED, F = 64, 48, 10, 3, 5
REF = ModelRef("tiny", "t2v-a14b", ("high", "low"), W, H, STEPS, 12.0, "unipc", 512)
# (codec, wire bytes / exact bound, unit roundoff, min PSNR of the frames in dB): the
# bounds of tests/kernels/test_codec_tiny_model.py, which renders this same setting
BOUNDS = {"bf16": (0.52, 2**-8, 50.0), "fp8": (0.29, 2**-4, 45.0)}


def orders() -> list[DenoiseOrder]:
    out = []
    for ph in phases(timesteps("unipc", STEPS, 12.0), (0.875,)):
        expert = REF.experts[ph.expert]
        out.append(DenoiseOrder("f", "t", "s/0", "s", REF, SEED, expert,
                                4.0 if expert == "high" else 3.0,
                                ph.start, ph.stop, Window(0, F), (Window(0, F),), 0, False))
    return out


class Replica(PoolWorker):
    """A pool replica without Ray: results go to a dict, refs are the dict's keys."""

    def __init__(self, worker: TorchWorker, artifacts: ArtifactStore, codec: str):
        self.worker, self.artifacts = worker, artifacts
        self.pool = PoolConfig(name="Pool", holds=["high", "low"], handoff_codec=codec)
        self.objects: dict[str, object] = {}

    def _put(self, value):
        key = f"obj{len(self.objects)}"
        self.objects[key] = value
        return key

    def _fetch(self, ref):
        return self.objects[ref]

    def __del__(self):
        pass  # no director to drain from (PoolWorker's is a coroutine Serve awaits)


def run_film(worker: TorchWorker, embeds, tmp_path, codec: str, resume: bool = False):
    """Both phases through the replica; -> (wire value of the handoff, final Handoff)."""
    pool = Replica(worker, ArtifactStore(str(tmp_path / codec)), codec)
    refs, state_key = {"prompt": pool._put(embeds)}, None
    wire = None
    for k, order in enumerate(orders()):
        item = WorkItem(f"t{k}", "phase", (order,), ("prompt", None), dict(refs), (f"h{k}",),
                        state_keys=(state_key,), phase_index=k)
        outputs, saved, *_ = pool._execute(item)
        refs[f"h{k}"] = outputs[f"h{k}"]
        if k == 0:
            wire = pool.objects[outputs["h0"]]  # what the high-noise pool put in the store
        state_key = saved[0].key if resume else f"h{k}"  # resume: the checkpoint, not the ref
    return wire, pool.objects[refs[f"h{k}"]]


@pytest.fixture(scope="module")
def setup():
    worker = TorchWorker(resolve_model("tiny"))
    tok, enc = worker.loader.text()
    return worker, encode_prompts(tok, enc, "a red fox runs through snow", "blurry", 512,
                                  with_negative=True)


@pytest.fixture(scope="module")
def alone(setup):
    """Today's path: the worker's phases chained by the Handoff object itself."""
    worker, embeds = setup
    high, low = orders()
    handoff = worker.denoise(high, embeds, None, None, NoExchange())
    return handoff, worker.denoise(low, embeds, handoff, None, NoExchange())


def frames(worker: TorchWorker, latents: torch.Tensor) -> np.ndarray:
    return np.concatenate([to_uint8(c)
                           for c in StreamingDecoder(worker.loader.vae()).decode(latents)])


def test_exact_is_todays_handoff_and_output(setup, alone, tmp_path):
    worker, embeds = setup
    wire, done = run_film(worker, embeds, tmp_path, "exact")
    assert isinstance(wire, Handoff)  # the object itself, as before the setting existed
    assert torch.equal(wire.latents, alone[0].latents)
    assert torch.equal(done.latents, alone[1].latents)


@pytest.mark.parametrize("codec", ["bf16", "fp8"])
def test_lossy_codec_shrinks_the_wire_and_stays_within_its_bounds(setup, alone, tmp_path, codec):
    worker, embeds = setup
    ratio, roundoff, min_psnr = BOUNDS[codec]
    wire, done = run_film(worker, embeds, tmp_path, codec)
    assert isinstance(wire, WireHandoff) and isinstance(done, Handoff)  # final latents exact
    assert wire.nbytes <= ratio * len(alone[0].to_bytes())
    got, want = Handoff.from_bytes(wire.data), alone[0]
    handoff_err = 0.0
    for a, b in zip(_tensors(got), _tensors(want), strict=True):
        # per channel: roundoff of the value, plus (fp8) half a subnormal step of the scale
        floor = (b.abs().amax(dim=(0, 2, 3, 4), keepdim=True) / 448 * 2**-10 if codec == "fp8"
                 else 0.0)
        assert ((a - b).abs() <= (roundoff + 2**-20) * b.abs() + floor).all()
        handoff_err = max(handoff_err, (a - b).abs().max().item())
    final_err = (done.latents - alone[1].latents).abs().max().item()
    assert 0 < final_err <= 2 * handoff_err  # the low-noise phase does not amplify it
    d = frames(worker, done.latents).astype(np.float64) - frames(worker, alone[1].latents)
    assert 10 * math.log10(255**2 / max((d**2).mean(), 1e-12)) >= min_psnr


def test_a_resumed_phase_reads_what_the_live_one_read(setup, tmp_path):
    worker, embeds = setup
    _, live = run_film(worker, embeds, tmp_path / "live", "fp8")
    _, resumed = run_film(worker, embeds, tmp_path / "resumed", "fp8", resume=True)
    assert torch.equal(live.latents, resumed.latents)


def test_a_bad_codec_names_the_field_and_the_allowed_values():
    with pytest.raises(ValidationError) as err:
        ServingConfig(models=["tiny"], pools=[{"name": "All",
                                               "holds": ["high", "low", "text", "vae"],
                                               "handoff_codec": "fp16"}])
    text = str(err.value)
    assert "handoff_codec" in text and "'exact', 'bf16' or 'fp8'" in text


def _tensors(h: Handoff) -> list[torch.Tensor]:
    return [t for t in (h.latents, *h.state.model_outputs, h.state.last_sample) if t is not None]


def test_the_executors_codec_passes_handoffs_on_as_a_pool_does():
    """farm.model.solver.HandoffCodec(codec): the same wire for an in-process executor."""
    from farm.model.solver import HandoffCodec, SolverState

    g = torch.Generator().manual_seed(0)
    h = Handoff(torch.randn(1, 4, 2, 3, 3, generator=g),
                SolverState("unipc", 3, 0, [torch.randn(1, 4, 2, 3, 3, generator=g)] * 2,
                            [1.0, 2.0], torch.randn(1, 4, 2, 3, 3, generator=g), 2, 2))
    assert HandoffCodec().wire(h, final=False) is h
    assert HandoffCodec("fp8").wire(h, final=True) is h  # latents for the decoder: exact
    wire = HandoffCodec("bf16").wire(h, final=False)
    back = HandoffCodec.received(wire)
    assert isinstance(wire, WireHandoff) and HandoffCodec.dumps(wire) == wire.data
    assert torch.equal(back.latents, h.latents.bfloat16().float()) and back.state.step_index == 3
    with pytest.raises(ValueError, match=r"one of \('exact', 'bf16', 'fp8'\), got 'fp16'"):
        HandoffCodec("fp16")


@pytest.mark.parametrize("codec", ["bf16", "fp8"])
def test_overlapping_windows_stay_identical_on_shared_frames_across_a_lossy_handoff(codec):
    """fp8 scales per channel and latent frame: windows' shared frames get the same ones."""
    from farm.engine.executor import run_gang
    from farm.model.solver import received, to_wire
    from farm.plan.segments import plan_windows

    ref = ModelRef("tiny", "t2v-a14b", ("high", "low"), 32, 32, 6, 12.0, "unipc", 512)
    windows = plan_windows(10, 5, 2)
    workers = [(TorchWorker(resolve_model("tiny")), f"w{k}") for k in range(len(windows))]
    tok, enc = workers[0][0].loader.text()
    embeds = encode_prompts(tok, enc, "waves", "blurry", 512, with_negative=True)
    states = [None] * len(windows)
    for ph in phases(timesteps("unipc", 6, 12.0), (0.875,)):
        expert = ref.experts[ph.expert]
        orders = tuple(DenoiseOrder("f", "t", f"s/{k}", "s", ref, SEED, expert, 3.0, ph.start,
                                    ph.stop, w, windows, k, False)
                       for k, w in enumerate(windows))
        states = [received(to_wire(s, codec, final=ph.stop == 6))
                  for s in run_gang(workers, orders, embeds, states, None)]
    for k in range(len(windows) - 1):  # neighbours k, k + 1 on the frames they share
        a, b = windows[k], windows[k + 1]
        assert torch.equal(states[k].latents[:, :, b.start - a.start:],
                           states[k + 1].latents[:, :, :a.stop - b.start])
