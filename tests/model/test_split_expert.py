"""Split expert == single process: the high-noise phase in one runner, the handoff as
bytes, the low-noise phase in a second, separately constructed runner."""

from __future__ import annotations

import pytest
import torch

from farm.engine.exchange import NoExchange
from farm.engine.orders import DenoiseOrder, ModelRef
from farm.model.loader import ModelLoader, resolve_model
from farm.model.noise import initial_noise
from farm.model.phase import run_phase
from farm.model.solver import Handoff, SolverState
from farm.model.text import encode_prompts
from farm.plan.segments import Window
from farm.plan.timesteps import phases, timesteps

pytestmark = pytest.mark.model
STEPS, W, H, F = 10, 64, 48, 5


def order(expert: str, start: int, stop: int, solver: str) -> DenoiseOrder:
    ref = ModelRef("x", "t2v-a14b", ("high", "low"), W, H, STEPS, 12.0, solver, 512)
    return DenoiseOrder("f", "t", "s/0", "s", ref, 3, expert, 4.0 if expert == "high" else 3.0,
                        start, stop, Window(0, F), (Window(0, F),), 0, False)


def reference(folder: str, solver: str, embeds, noise) -> torch.Tensor:
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    pipe = WanPipeline.from_pretrained(folder)
    if solver == "euler":
        pipe.scheduler = FlowMatchEulerDiscreteScheduler(shift=12.0)
    return pipe(prompt_embeds=embeds.prompt, negative_prompt_embeds=embeds.negative, height=H,
                width=W, num_frames=1 + 4 * (F - 1), num_inference_steps=STEPS, guidance_scale=4.0,
                guidance_scale_2=3.0, latents=noise, output_type="latent").frames


@pytest.mark.parametrize("solver", ["unipc", "euler"])
def test_split_expert_equals_single_process(solver, tiny_dirs):
    folder = tiny_dirs("t2v-a14b")
    source = resolve_model(folder)
    a = ModelLoader(source)
    tok, enc = a.text()
    embeds = encode_prompts(tok, enc, "a fox", "blurry", 512, with_negative=True)
    noise = initial_noise(3, "s", F, 16, H // 8, W // 8)
    high, low = phases(timesteps(solver, STEPS, 12.0), (0.875,))

    # Process A: high-noise expert only; the handoff leaves as bytes.
    handoff = run_phase(a.expert("high"), a.scheduler(solver, 12.0),
                        order("high", *span(high), solver), embeds, noise, None, NoExchange())
    wire = handoff.to_bytes()
    # Process B: a separately constructed loader that never loads the high expert.
    b = ModelLoader(resolve_model(folder))
    resumed = Handoff.from_bytes(wire)
    out = run_phase(b.expert("low"), b.scheduler(solver, 12.0), order("low", *span(low), solver),
                    embeds, None, resumed, NoExchange())
    ref = reference(folder, solver, embeds, noise)
    assert (out.latents - ref).abs().max().item() <= 1e-5

    if solver == "unipc":
        # Dropping the solver history (keeping only the step index) must change the result.
        amnesic = Handoff(resumed.latents, SolverState("unipc", low.start, 0,
                                                       model_outputs=[None, None],
                                                       timestep_list=[None, None]))
        wrong = run_phase(b.expert("low"), b.scheduler(solver, 12.0),
                          order("low", *span(low), solver), embeds, None, amnesic, NoExchange())
        assert (wrong.latents - ref).abs().max().item() > 1e-3


def span(phase) -> tuple[int, int]:
    return phase.start, phase.stop


def test_handoff_bytes_round_trip_exactly():
    t = torch.randn(1, 16, 3, 4, 4)
    h = Handoff(t, SolverState("unipc", 4, 0, [t * 2, None], [875.0, None], t * 3, 1, 2))
    back = Handoff.from_bytes(h.to_bytes())
    assert torch.equal(back.latents, t) and torch.equal(back.state.model_outputs[0], t * 2)
    assert back.state.model_outputs[1] is None and torch.equal(back.state.last_sample, t * 3)
    assert (back.state.step_index, back.state.timestep_list, back.state.this_order) == (
        4, [875.0, None], 2)
    with pytest.raises(ValueError, match="not a reelfarm handoff"):
        Handoff.from_bytes(b"not a handoff")
