"""Train the toy model on CPU: `reelfarm models train-toy DIR [--minutes N] [--seed N]`.

    1. VAE: reconstruction on frames and long clips (farm.toy.vae_train).
    2. Cache: encode `clips` training clips (17 frames -> (16, 5, 8, 8) posterior means);
       per-channel mean / std become the VAE's latents_mean / latents_std.
    3. Experts + text encoder, flow matching (rectified flow, as Wan):
           sigma = shift(u),  x_t = (1 - sigma) x_0 + sigma eps,  target v = eps - x_0,
       t = 1000 sigma. The high-noise expert draws u so that sigma >= BOUNDARY, the low-noise
       one so that sigma < BOUNDARY: each expert learns only its own range (a timestep-routed
       MoE). Prompts are dropped (-> "") 10 % of the time, for classifier-free guidance.
    4. Decoder fine-tune on whole frames, the encoder frozen (farm.toy.vae_train): the
       latents the experts learnt stay what the encoder makes.
    Saved: the EMA weights as a diffusers WanPipeline folder + toy_training.json.

Everything is seeded and the data order is fixed, so (seed, vae_steps, dit_steps,
decoder_steps, clips, workers) gives the same weights; with a time budget (`minutes`) the step
counts reached are logged in toy_training.json and `--vae-steps/--dit-steps/
--decoder-steps` repeat that run exactly. Step 3's saves carry its whole state
(train_state.pt) and step 4 draws from its own seeded streams and depends on the VAE alone,
so a run resumed from any save (`resume`: more expert steps, then step 4 if not yet run,
or more of it from decoder_state.pt) ends with the weights of one that never stopped;
`decoder_restart` continues step 4 from the decoder's weights alone, `expert_restart` step 3
from the experts' and text encoder's weights alone (a folder without train_state.pt, e.g. the
shipped one); both are recorded as such. `dit_anneal` ends step 3 with a linear lr decay.
`workers` processes train data-parallel (farm.toy.ranks), one thread each.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from farm.toy import model as toy
from farm.toy import ranks as rk
from farm.toy.config import Clock, TrainConfig
from farm.toy.ranks import Ranks
from farm.toy.short_text import padded_to
from farm.toy.vae_train import cache_latents, ema_update, load_phase, phase_state, train_vae

RECORD = "toy_training.json"
STATE = "train_state.pt"  # step 3's whole state (not shipped: the farm reads the pipeline folder)
DECODER_STATE = "decoder_state.pt"  # step 4's, at its end
# Each expert's sigma range [lo, hi): the timestep-routed MoE split at the boundary.
EXPERT_SIGMAS = {"high": (toy.BOUNDARY, 1.0), "low": (0.0, toy.BOUNDARY)}
DEFAULTS = TrainConfig()  # frozen: one shared default


class SetupError(ValueError):
    """A configuration or folder the training refuses before it starts (names the field)."""


def _sigma_range(shift: float, lo: float, hi: float, u: torch.Tensor) -> torch.Tensor:
    """Shifted sigmas for u uniform in [0, 1) mapped to the expert's sigma range [lo, hi)."""
    inv = lambda s: s / (shift - (shift - 1.0) * s)  # noqa: E731  (inverse of the shift)
    u = inv(lo) + (inv(hi) - inv(lo)) * u
    return shift * u / (1.0 + (shift - 1.0) * u)


def flow_loss(expert, z0, emb, sigma, eps) -> torch.Tensor:
    """Step 3 for one expert: MSE between the predicted and the true velocity eps - x_0."""
    s = sigma.view(-1, 1, 1, 1, 1)
    xt = (1.0 - s) * z0 + s * eps                                         # (B, 16, 5, 8, 8)
    pred = expert(xt, sigma * 1000.0, emb, return_dict=False)[0]
    return (pred - (eps - z0)).pow(2).mean()


class Experts:
    """The two experts and the text encoder they share, with EMA copies."""

    def __init__(self, tokenizer, text_encoder, high, low):
        self.tokenizer = tokenizer
        self.live = torch.nn.ModuleDict({"text": text_encoder, "high": high, "low": low})
        self.ema = copy.deepcopy(self.live).eval().requires_grad_(False)

    def state(self, opt, gen: torch.Generator, step: int, origin: int) -> dict:
        """Everything step 3 continues from: weights (live and EMA), AdamW moments, draws,
        and the step its warm-up started at (`origin`)."""
        return phase_state(step, self.live, self.ema, opt, gen=gen.get_state(), origin=origin)

    def restore(self, state: dict, opt, gen: torch.Generator) -> tuple[int, int]:
        """Load a `state` into these modules, `opt` and `gen`; returns (its step, its origin)."""
        gen.set_state(state["gen"])
        return load_phase(state, self.live, self.ema, opt), state.get("origin", 0)

    def step_loss(self, latents, prompts, cfg: TrainConfig, gen, ranks: Ranks,
                  device) -> dict[str, torch.Tensor]:
        """Both experts' losses on this rank's part of one global batch each (every draw
        is of the global batch, so the ranks together compute the single-process step)."""
        losses, part = {}, ranks.part(cfg.dit_batch)
        with padded_to([self.live["high"], self.live["low"]], toy.TEXT_LEN):
            for name, (lo, hi) in EXPERT_SIGMAS.items():
                losses[name] = self._loss(name, lo, hi, latents, prompts, cfg, gen, part, device)
        return losses

    def _loss(self, name, lo, hi, latents, prompts, cfg: TrainConfig, gen, part,
              device) -> torch.Tensor:
        """One expert's flow loss on this rank's `part` of a global batch drawn from `gen`;
        the text is short (farm.toy.short_text), read as the farm's 512 zero-padded tokens."""
        idx = torch.randint(len(prompts), (cfg.dit_batch,), generator=gen)
        drop = torch.rand(cfg.dit_batch, generator=gen) < cfg.drop_text
        sigma = _sigma_range(toy.SHIFT, lo, hi, torch.rand(cfg.dit_batch, generator=gen))
        eps = torch.randn((cfg.dit_batch, *latents.shape[1:]), generator=gen)
        texts = ["" if d else prompts[i] for i, d in zip(idx.tolist(), drop.tolist(), strict=True)]
        emb = toy.encode_prompts(self.tokenizer, self.live["text"], texts[part], device, short=True)
        return flow_loss(self.live[name], latents[idx[part]].to(device), emb,
                         sigma[part].to(device), eps[part].to(device))


def expert_lr(cfg: TrainConfig, step: int, origin: int = 0) -> float:
    """Step 3's lr at `step`: a linear warm-up over `dit_warmup` steps from `origin` (0, or
    where an expert restart began with new AdamW moments), constant, then with `dit_anneal`
    a linear decay over the last steps before `dit_steps`:

        lr  |    ______________
            |   /              \
            |  /                \
            +--------------------+---> step
           origin  +warmup   dit_steps - anneal   dit_steps
    """
    lr = cfg.dit_lr * min(1.0, (step + 1 - origin) / cfg.dit_warmup)
    if cfg.dit_anneal:
        lr *= min(1.0, (cfg.dit_steps - step) / cfg.dit_anneal)
    return lr


def restart_stream(cfg: TrainConfig, start: int) -> int:
    """The draws' seed of an expert restart at `start`: not the stream's first draws again."""
    return int(np.random.SeedSequence([cfg.seed, 1, start]).generate_state(1)[0])


def train_experts(experts: Experts, latents, prompts, cfg: TrainConfig, clock: Clock, ranks: Ranks,
                  device, log, save: Callable[[dict], None], state: dict | None = None,
                  start: int = 0) -> int:
    """Step 3: both experts (and the text encoder) on the cached latents; returns the steps
    done in all. Every save passes the whole training state (`Experts.state`); `state`
    continues from one (the same steps, draws and optimizer moments as a run that never stopped).
    Without one, `start` > 0 continues from the weights alone (`expert_restart`): the step
    count goes on; AdamW moments, EMA, draws and the warm-up start anew."""
    opt = torch.optim.AdamW(experts.live.parameters(), lr=cfg.dit_lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(restart_stream(cfg, start) if start else cfg.seed + 1)
    step, origin = experts.restore(state, opt, gen) if state else (start, start)
    experts.live.train()
    last_save, avg = time.monotonic(), {}
    while ranks.agree(clock.more(step)):
        for group in opt.param_groups:
            group["lr"] = expert_lr(cfg, step, origin)
        losses = experts.step_loss(latents, prompts, cfg, gen, ranks, device)
        opt.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        ranks.average_grads(experts.live)
        torch.nn.utils.clip_grad_norm_(experts.live.parameters(), 1.0)
        opt.step()
        ema_update(experts.ema, experts.live, step, cfg.ema)
        avg = {name: 0.98 * avg.get(name, loss) + 0.02 * loss
               for name, loss in ranks.mean(losses).items()}
        if step % 25 == 0:
            log(f"dit step {step}: loss high {avg['high']:.4f} low {avg['low']:.4f}")
        step += 1
        if ranks.agree(bool(cfg.save_every) and time.monotonic() - last_save > cfg.save_every * 60):
            save(experts.state(opt, gen, step, origin))
            last_save = time.monotonic()
    save(experts.state(opt, gen, step, origin))
    return step


def _train(ranks: Ranks, directory: Path, cfg: TrainConfig, device: str, log: Callable[[str], None],
           earlier: dict | None) -> None:
    """Every step on one rank; rank 0 logs and writes the folder. `earlier`: the record of
    the run this one resumes (`recorded`); the phases it records are loaded from the folder."""
    dev, t0 = torch.device(device), time.monotonic()
    log = log if ranks.rank == 0 else (lambda _m: None)
    record = dict(earlier) if earlier else {"config": asdict(cfg)}
    before = record.get("minutes", 0.0)
    torch.manual_seed(cfg.seed)
    tokenizer = toy.build_tokenizer()

    def save(state: dict | None = None) -> None:
        if ranks.rank != 0:
            return
        if state is not None:  # written first: a folder never records more steps than it holds
            torch.save(state, directory / STATE)
            record["dit_steps"] = state["step"]
        ema = experts.ema
        toy.save_pipeline(directory, tokenizer, ema["text"], vae, ema["high"], ema["low"])
        record["minutes"] = round(before + (time.monotonic() - t0) / 60, 2)
        (directory / RECORD).write_text(json.dumps(record, indent=1) + "\n")
        log(f"saved {directory} after {record['minutes']} min")

    if earlier:  # steps 1-2 done and step 3 saved: the folder holds their weights
        text, vae, high, low = (part.to(dev) for part in toy.load_pipeline(directory))
        experts = Experts(tokenizer, text, high, low)
        kept = (directory / STATE).is_file() and not cfg.expert_restart
        state = torch.load(directory / STATE, weights_only=False) if kept else None
        log(f"resumed {directory}: {record['vae_steps']} VAE steps, "
            f"{record['dit_steps']} expert steps done")
    else:
        vae = toy.build_vae(cfg.seed).to(dev)
        record["vae_steps"] = train_vae(vae, cfg,
                                        Clock(cfg.vae_steps, cfg.minutes * 60 * cfg.vae_share),
                                        ranks, dev, log)
        experts, state = Experts(tokenizer,
                                 toy.build_text_encoder(len(tokenizer), cfg.seed).to(dev),
                                 toy.build_expert("transformer", cfg.seed).to(dev),
                                 toy.build_expert("transformer_2", cfg.seed).to(dev)), None
    decoder_more = wants_decoder(record, cfg)  # a new record has no decoder steps
    if not earlier or wants_experts(record, cfg):
        # the encoder is never changed after step 1
        latents, prompts = cache_latents(vae, cfg, ranks, dev, log)
        if ranks.rank == 0 and not earlier:
            vae.save_pretrained(directory / "vae")  # early, to check the reconstructions
        left = max(0.0, cfg.minutes * 60 * (1 - cfg.decoder_share * decoder_more)
                   - (time.monotonic() - t0))
        start = record["dit_steps"] if cfg.expert_restart else 0
        record["dit_steps"] = train_experts(experts, latents, prompts, cfg,
                                            Clock(cfg.dit_steps, left),
                                            ranks, dev, log, save, state, start)
    if decoder_more:
        left = max(0.0, cfg.minutes * 60 - (time.monotonic() - t0))
        again = "decoder_steps" in record and not cfg.decoder_restart
        dstate = torch.load(directory / DECODER_STATE, weights_only=False) if again else None
        keep = ((lambda snapshot: torch.save(snapshot, directory / DECODER_STATE))
                if ranks.rank == 0 else None)
        record["decoder_steps"] = train_vae(vae, cfg, Clock(cfg.decoder_steps, left),
                                            ranks, dev, log,
                                            decoder=True, state=dstate, keep=keep,
                                            start=record.get("decoder_steps", 0))
        save()


def wants_experts(record: dict, cfg: TrainConfig) -> bool:
    """Whether a resumed run trains step 3 further: to `dit_steps` in all, or for its time."""
    return cfg.dit_steps is None or cfg.dit_steps > record["dit_steps"]


def wants_decoder(record: dict, cfg: TrainConfig) -> bool:
    """Whether a resumed run runs step 4: not run yet, or asked for more `decoder_steps`."""
    done = record.get("decoder_steps")
    return done is None or (cfg.decoder_steps is not None and cfg.decoder_steps > done)


def recorded(directory: Path, cfg: TrainConfig) -> dict:
    """The record of an earlier run in `directory` that this one continues, from its last
    save in step 3 or after it, with the same data. Step 3 continues (to `dit_steps` in
    all, or for the time budget) from the folder's train_state.pt, so the steps equal
    those of a run that never stopped; step 4 runs if the folder has not had it (it
    depends on the VAE alone, so before or after more expert steps is the same).
    `decoder_restart` continues step 4 to a larger `decoder_steps` from the folder's
    decoder weights alone, with new AdamW moments, EMA and streams: for a folder without
    decoder_state.pt, or after a change to step 4's loss; `expert_restart` does the same
    for step 3 to a larger `dit_steps` (a folder without train_state.pt). Neither gives the
    bytes of an unbroken run, so the record keeps the restart (in `resumed`)."""
    path = directory / RECORD
    if not path.is_file():
        raise SetupError(f"resume: {path} does not exist (train without --resume first)")
    record = json.loads(path.read_text())
    if "dit_steps" not in record:
        raise SetupError(f"resume: {path} records no saved expert steps; "
                         "start again without --resume")
    for name in ("seed", "clips"):
        if record["config"][name] != getattr(cfg, name):
            raise SetupError(f"resume: --{name} {getattr(cfg, name)} differs from the folder's "
                             f"{record['config'][name]}")
    done, decoded = record["dit_steps"], record.get("decoder_steps")
    for flag, name, asked, had in (("dit", "expert", cfg.dit_steps, done),
                                   ("decoder", "decoder", cfg.decoder_steps, decoded)):
        if asked is not None and had is not None and asked < had:
            raise SetupError(f"resume: --{flag}-steps {asked} is fewer than "
                             f"the {had} {name} steps done")
    if cfg.expert_restart and (cfg.dit_steps is None or cfg.dit_steps <= done):
        raise SetupError(f"resume: --expert-restart needs --dit-steps larger than the {done} "
                         f"expert steps done, got {cfg.dit_steps}")
    if wants_experts(record, cfg) and not cfg.expert_restart and not (directory / STATE).is_file():
        raise SetupError(f"resume: {directory / STATE} does not exist, so step 3 cannot continue "
                         f"(--dit-steps {done} keeps its {done} steps; "
                         "--expert-restart goes on from the weights)")
    if cfg.decoder_restart and decoded is None:
        raise SetupError(f"resume: --decoder-restart: {path} records no step 4 yet "
                         "(--resume alone runs it)")
    if cfg.decoder_restart and (cfg.decoder_steps is None or cfg.decoder_steps <= decoded):
        raise SetupError("resume: --decoder-restart needs --decoder-steps larger than the "
                         f"{decoded} decoder steps done, got {cfg.decoder_steps}")
    if (decoded is not None and wants_decoder(record, cfg) and not cfg.decoder_restart
            and not (directory / DECODER_STATE).is_file()):
        raise SetupError(f"resume: {directory / DECODER_STATE} does not exist, "
                         "so step 4 cannot continue")
    if not wants_experts(record, cfg) and not wants_decoder(record, cfg):
        raise SetupError(f"resume: {path} already records {done} expert steps and {decoded} "
                         "decoder steps: nothing to resume (a larger --dit-steps or "
                         "--decoder-steps, or a time budget alone, trains further)")
    return {**record, "resumed": [*record.get("resumed", []), asdict(cfg)]}


def _worker(rank: int, directory: Path, cfg: TrainConfig, device: str, store: str,
            log: Callable[[str], None], setup: Callable[[], None] | None, parent: int,
            earlier: dict | None) -> None:
    if cfg.workers > 1:
        rk.exit_with(parent)
    if setup is not None:  # a spawned process starts with the libraries' defaults
        setup()
    ranks = rk.init(rank, cfg.workers, store)
    try:
        _train(ranks, directory, cfg, device, log, earlier)
    finally:
        rk.close(ranks)


def stamped(message: str) -> None:
    """The CLI's log line: the time, then the message (a module function: workers pickle it)."""
    print(time.strftime("%H:%M:%S"), message, flush=True)


def train_toy(directory: str | Path, cfg: TrainConfig = DEFAULTS, device: str = "cpu",
              log: Callable[[str], None] = print, setup: Callable[[], None] | None = None,
              resume: bool = False) -> dict:
    """Train every component and write the model folder; returns the training record.
    `log` and `setup` (run first in every process) must be module-level functions.
    `resume`: continue a folder whose run ended after its expert phase (see `recorded`)."""
    for name in ("decoder_restart", "expert_restart"):
        if getattr(cfg, name) and not resume:
            raise SetupError(f"{name} continues a trained folder: it needs resume")
    if problems := cfg.problems():
        raise SetupError("; ".join(problems))
    out = Path(directory)
    earlier = recorded(out, cfg) if resume else None  # its errors before any process starts
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        store = str(Path(tmp) / "store")
        if cfg.workers == 1:
            _worker(0, out, cfg, device, store, log, None, os.getpid(), earlier)
        else:
            torch.multiprocessing.spawn(_worker, args=(out, cfg, device, store, log, setup,
                                                       os.getpid(), earlier),
                                        nprocs=cfg.workers)
    return json.loads((out / RECORD).read_text())
