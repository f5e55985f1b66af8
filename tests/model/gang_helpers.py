"""A segment's whole denoising (every phase, solver state handed over between experts) on
one worker or as one rank of a gang; and gangs of processes spawned over loopback."""

from __future__ import annotations

import time
from pathlib import Path

import diffusers.models.transformers.transformer_wan  # noqa: F401 - for the fork server's preload
import torch

from farm.engine.exchange import NoExchange
from farm.engine.orders import DenoiseOrder, GangRank, ModelRef
from farm.model.loader import ModelLoader, resolve_model
from farm.model.text import encode_prompts
from farm.model.worker import TorchWorker
from farm.plan.segments import Window
from farm.plan.timesteps import phases, timesteps
from farm.spec.profiles import profile_for

STEPS, FRAMES = 6, 5
# 48x48 (A14B) and 96x96 (TI2V): 45 tokens, so sequence parallel splits them unevenly.
SIZE = {"t2v-a14b": 48, "i2v-a14b": 48, "ti2v-5b": 96}


def orders(family: str, gang: tuple[int, int, int, str] | None = None) -> list[DenoiseOrder]:
    """One order per phase; `gang` = (cfg, sp, rank, store address)."""
    p = profile_for(family)
    ref = ModelRef(f"tiny-{family}", family, p.experts, SIZE[family], SIZE[family], STEPS,
                   p.shift, "unipc", 512)
    out = []
    for ph in phases(timesteps("unipc", STEPS, p.shift), p.boundaries):
        rank = None
        if gang is not None:
            cfg, sp, r, store = gang
            rank = GangRank(cfg, sp, r, store, f"seg/p{ph.expert}", timeout_s=60.0)
        out.append(DenoiseOrder("f", "t", "s/0", "s", ref, 3, p.experts[ph.expert], 4.0, ph.start,
                                ph.stop, Window(0, FRAMES), (Window(0, FRAMES),), 0, False, rank))
    return out


def embeds(family: str):
    tok, enc = ModelLoader(resolve_model(f"tiny-{family}")).text()
    return encode_prompts(tok, enc, "a fox in the snow", "blurry", 512, with_negative=True)


def run_segment(family: str, gang: tuple[int, int, int, str] | None = None,
                prompt=None) -> torch.Tensor:
    """Final latents of the segment after every phase."""
    worker, state = TorchWorker(resolve_model(f"tiny-{family}")), None
    prompt = prompt if prompt is not None else embeds(family)
    for order in orders(family, gang):
        state = worker.denoise(order, prompt, state, None, NoExchange())
    return state.latents


def rank_main(rank: int, family: str, cfg: int, sp: int, store: str, out: str) -> None:
    """Entry point of a rank's process: run the segment, save its latents."""
    torch.set_num_threads(1)
    prompt = torch.load(Path(out) / "embeds.pt", weights_only=False)
    torch.save(run_segment(family, (cfg, sp, rank, store), prompt), Path(out) / f"rank{rank}.pt")


def spawn_gang(family: str, cfg: int, sp: int, prompt, out: Path,
               timeout: float = 180.0) -> list[torch.Tensor]:
    """Run the segment on cfg x sp processes; their latents by rank.

    Processes start from a fork server that has imported torch and diffusers once (a
    fresh interpreter per rank would spend most of the test importing them); nothing is
    inherited from this process but the arguments and the embeddings file."""
    import multiprocessing

    import torch.multiprocessing as mp

    from farm.model.gang import StoreServer

    multiprocessing.set_forkserver_preload([__name__])
    torch.save(prompt, out / "embeds.pt")
    server = StoreServer("127.0.0.1", timeout_s=timeout)
    ctx = mp.start_processes(rank_main, args=(family, cfg, sp, server.address(), str(out)),
                             nprocs=cfg * sp, join=False, start_method="forkserver")
    deadline = time.monotonic() + timeout
    try:
        while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gang of {cfg * sp} processes still running after {timeout} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return [torch.load(out / f"rank{r}.pt") for r in range(cfg * sp)]
