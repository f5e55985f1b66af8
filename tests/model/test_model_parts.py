"""Model-layer parts against diffusers: timestep arithmetic, noise keying, streaming decode."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from farm.model.decode import StreamingDecoder
from farm.model.loader import ModelLoader, detect_family, resolve_model
from farm.model.noise import initial_noise
from farm.model.tiny import build_vae
from farm.plan.timesteps import timesteps

pytestmark = pytest.mark.model


@pytest.mark.parametrize("solver", ["unipc", "euler"])
@pytest.mark.parametrize("steps,shift", [(8, 12.0), (40, 12.0), (40, 5.0), (50, 3.0)])
def test_pure_timesteps_equal_diffusers_schedulers(solver, steps, shift):
    loader = ModelLoader(resolve_model("tiny"))
    sched = loader.scheduler(solver, shift)
    sched.set_timesteps(steps)
    ours = timesteps(solver, steps, shift)
    theirs = [float(t) for t in sched.timesteps]
    if solver == "unipc":
        assert list(ours) == theirs
    else:
        assert ours == pytest.approx(theirs, rel=1e-6)


def test_noise_is_keyed_per_latent_frame():
    full = initial_noise(5, "s1", 10, 16, 4, 6)
    assert full.shape == (1, 16, 10, 4, 6) and full.dtype == torch.float32
    part = initial_noise(5, "s1", 4, 16, 4, 6, first_frame=3)
    assert torch.equal(full[:, :, 3:7], part)
    assert not torch.equal(initial_noise(6, "s1", 1, 16, 4, 6), full[:, :, :1])
    assert not torch.equal(initial_noise(5, "s2", 1, 16, 4, 6), full[:, :, :1])


@pytest.mark.parametrize("kind", ["t2v-a14b", "ti2v-5b"])
def test_streaming_decode_is_bit_identical_to_full_decode(kind):
    vae = build_vae(kind, seed=0)
    z = torch.randn(1, vae.config.z_dim, 6, 4, 4, generator=torch.Generator().manual_seed(0))
    full = vae.decode(z / (1.0 / torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1))
                      + torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)).sample
    chunks = list(StreamingDecoder(vae).decode(z))
    assert [c.shape[2] for c in chunks] == [1, 4, 4, 4, 4, 4]
    assert torch.equal(torch.cat(chunks, dim=2), full)


def test_family_detection_from_folders(tiny_dirs):
    assert detect_family(Path(tiny_dirs("t2v-a14b"))) == "t2v-a14b"
    assert resolve_model(tiny_dirs("ti2v-5b")).family == "ti2v-5b"
    with pytest.raises(ValueError, match="neither a built-in model"):
        resolve_model("/nonexistent/folder")
    with pytest.raises(ValueError, match="unknown tiny model 'tiny-x'"):
        resolve_model("tiny-x")


def test_tiny_models_built_in_parallel_threads_are_identical():
    # Regression: gang members load lazily in threads; seeded construction must not race.
    import threading

    from farm.model.tiny import build_transformer

    built: list = [None] * 4

    def build(i: int) -> None:
        built[i] = build_transformer("t2v-a14b", "transformer", seed=0).state_dict()

    threads = [threading.Thread(target=build, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sd in built[1:]:
        assert all(torch.equal(sd[k], built[0][k]) for k in sd)
