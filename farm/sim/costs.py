"""The cost model: seconds and bytes of every task, calibrated on the published Wan2.2
H100 table (research/anchors_inference.md 1.3 and 5).

Calibration. The official single-GPU run (40 steps, CFG, `--offload_model True`) takes
T1 = 1041.5 s (T2V-A14B 720p), 326.9 s (480p), 1055.9 / 327.8 s (I2V). We split it as

    T1 = swap + text + image (I2V) + 40 x step + decode(81 frames)

    swap    16 s     both experts in and out of the GPU per clip (LightX2V: 840 vs 823 s)
    text    1 s      UMT5-XXL, prompt + negative prompt          [assumed]
    image   3.2/1.4 s  Wan2.1-VAE encoder, 720p/480p: 0.38/0.16 PFLOP at ~120 TF/s
    decode  5.0/2.2 s  Wan2.1-VAE decoder, 81 frames (LightX2V: 2.03-2.38 s at 480p)

which leaves a step (two forwards) of 25.49 s (T2V 720p), 7.69 s (480p). Both experts
have the same architecture, so the table holds the same cost for each expert (it is
keyed by expert so a distilled or pruned expert can differ). Other window sizes scale
by the FLOP model of one forward, linear + attention: cost(N) ~ N (1 + N / 29100)
tokens (the 720p and 480p FLOP splits both give 29100). The official loop never swaps
on several GPUs (FSDP); reelfarm workers hold one expert and never swap.

Bytes. Latents are fp32 [C, L, H/8, W/8]; a phase hands over latents + UniPC history
(two model outputs + last sample) = 4x the latents (77 MB at 720p, 81 frames); prompt
embeddings (cond + uncond) 8.4 MB; I2V conditioning (20 channels, bf16). A transfer
costs latency + bytes / bandwidth of the link (default 12.5 GB/s, 100 Gb/s).

Sequence parallel (official baseline) and reelfarm's gangs use the same table
(farm.sched.speedup, which the scheduler's gang rule reads too): published totals at 1,
4 and 8 GPUs as they are; other group sizes (a divisor of the 40 heads) t(G) = s + p / G
fitted through 4 and 8 GPUs, plus, beyond one 8-GPU node, the Ulysses all-to-all over
InfiniBand (13.5 GB per GPU per forward at 720p and P = 8, scaled by 8/P, 80 forwards,
50 GB/s). Those points are extrapolations [inferred], not measurements. A reelfarm phase
on a gang of cfg x sp GPUs takes `SpeedupTable.ratio` times its one-GPU time: the
table's time at sp GPUs less the parts reelfarm runs apart (text, image, decode; the
single-GPU offload), halved by CFG parallel, plus one all-gather per step.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from farm.plan.film import FilmPlan, Unit
from farm.plan.segments import DECODE_HALO, decode_bands
from farm.sched.gangs import GangPolicy
from farm.sched.output import Layout
from farm.sched.speedup import PUBLISHED, SpeedupTable, published_tables

# Ulysses needs heads % G == 0 (40 heads), and at most 40 GPUs per clip.
SP_SIZES = (1, 2, 4, 5, 8, 10, 20, 40)
REF_FRAMES, REF_STEPS = 81, 40
ATTN_TOKENS = 29100.0


@functools.lru_cache(maxsize=64)
def _tables(text_s: float, swap_s: float, decode_s: tuple[tuple[int, float], ...],
            image_s: tuple[tuple[int, float], ...]) -> tuple[SpeedupTable, ...]:
    decode, image = dict(decode_s), dict(image_s)
    return published_tables(text_s=text_s, swap_s=swap_s,
                            decode_s=(decode[720], decode.get(480, decode[720])),
                            image_s=(image[720], image.get(480, image[720])))


def _flops(tokens: float) -> float:
    return tokens * (1 + tokens / ATTN_TOKENS)


def _tokens(width: int, height: int, latent_frames: int) -> int:
    return latent_frames * (height // 16) * (width // 16)


def _ref_size(height: int) -> tuple[int, int]:
    return (1280, 720) if height == 720 else (832, 480)


@dataclass(frozen=True, slots=True)
class CostModel:
    swap_s: float = 16.0
    text_s: float = 1.0
    # Seconds per 81-frame clip by height (Wan2.1-VAE); other sizes scale by pixels.
    decode_s: tuple[tuple[int, float], ...] = ((720, 5.0), (480, 2.2))
    image_s: tuple[tuple[int, float], ...] = ((720, 3.2), (480, 1.4))
    # Share of the VAE decoder every band of a band-parallel decode runs on the whole frame
    # (conv_in, the first middle residual block, the attention: ~0.8 % of its FLOPs at
    # 720p) [inferred from the decoder's layer sizes]; smaller tiles run as fast [assumed].
    decode_whole_frame: float = 0.01
    link_bytes_per_s: float = 12.5e9
    link_latency_s: float = 1e-3
    # Inter-node bandwidth for sequence parallel beyond one node (official baseline).
    ib_bytes_per_s: float = 50e9
    # Forming a gang's process groups for one phase (NCCL communicator init) [assumed].
    gang_setup_s: float = 1.0
    # Memory of one GPU (H100 80 GB) and what a generalist holds in it, to decide whether
    # it keeps every expert of its model resident (no switch between phases) or only the
    # one it runs (research/anchors_inference.md 5): an expert 28.5 GB bf16 [read: "both
    # about 57 GB"], UMT5 9.4 GB [read], the VAE 0.2 GB [assumed], and the activations of
    # one forward of an 81-frame 720p segment on one GPU, 21.9 GB [inferred: LightX2V's
    # 78.9 GB peak with both experts resident, less 57 GB], scaled by tokens over the
    # Ulysses degree. At 720p both experts fit from sp = 2 on, not on one GPU.
    gpu_bytes: float = 80e9
    expert_bytes: float = 28.5e9
    text_bytes: float = 9.4e9
    vae_bytes: float = 0.2e9
    act_bytes_720: float = 21.9e9
    # Optional override: (family, height, expert) -> seconds per step at 81 frames.
    step_s_override: tuple[tuple[tuple[str, int, str], float], ...] = field(default=())

    # ---- calibration -----------------------------------------------------------------

    def _published(self, family: str, height: int) -> dict[int, float]:
        try:
            return PUBLISHED[(family, height)]
        except KeyError:
            known = ", ".join(f"{f} {h}p" for f, h in PUBLISHED)
            raise ValueError(f"no published H100 timing for {family} at {height}p; "
                             f"calibrated: {known}") from None

    def _per_clip(self, table: tuple[tuple[int, float], ...], width: int, height: int) -> float:
        rw, rh = _ref_size(height)
        return dict(table).get(rh, dict(table)[720]) * (width * height) / (rw * rh)

    def ref_step_s(self, family: str, height: int, expert: str) -> float:
        """Seconds of one CFG step on an 81-frame clip at a calibrated height."""
        override = dict(self.step_s_override).get((family, height, expert))
        if override is not None:
            return override
        t1 = self._published(family, height)[1]
        w, h = _ref_size(height)
        image = self._per_clip(self.image_s, w, h) if family == "i2v-a14b" else 0.0
        rest = t1 - self.swap_s - self.text_s - image - self._per_clip(self.decode_s, w, h)
        return rest / REF_STEPS

    def step_s(self, plan: FilmPlan, latent_frames: int, expert: str) -> float:
        """One step of one segment of `latent_frames` frames."""
        film = plan.film
        height = 720 if film.height >= 600 else 480
        rw, rh = _ref_size(height)
        ref = self.ref_step_s(film.profile.family, height, expert)
        ref_tokens = _tokens(rw, rh, (REF_FRAMES - 1) // 4 + 1)
        return ref * _flops(_tokens(film.width, film.height, latent_frames)) / _flops(ref_tokens)

    def experts_fit(self, plan: FilmPlan, layout: Layout, experts: int) -> bool:
        """Whether `experts` experts, the text encoder, the VAE and the activations of the
        film's largest segment on a rank of `layout` fit in one GPU."""
        w, h = _ref_size(720)
        ref = _tokens(w, h, (REF_FRAMES - 1) // 4 + 1)
        frames = max(seg.window.size for u in plan.units for seg in u.segments)
        act = self.act_bytes_720 * _tokens(plan.film.width, plan.film.height, frames) / ref
        need = experts * self.expert_bytes + self.text_bytes + self.vae_bytes + act / layout.sp
        return need <= self.gpu_bytes

    # ---- tasks -------------------------------------------------------------------------

    def text(self) -> float:
        return self.text_s

    def image(self, plan: FilmPlan) -> float:
        return self._per_clip(self.image_s, plan.film.width, plan.film.height)

    def decode_per_latent(self, plan: FilmPlan) -> float:
        """Decode time of one latent frame (the first yields 1 frame, later ones 4)."""
        ref_latents = (REF_FRAMES - 1) // 4 + 1
        return self._per_clip(self.decode_s, plan.film.width, plan.film.height) / ref_latents

    def band_decode_per_latent(self, plan: FilmPlan, bands: int, ranks: int,
                               transfers: bool = True) -> float:
        """Decode time of one latent frame split in `bands` vertical bands over `ranks`
        workers (farm.model.bands): each band recomputes DECODE_HALO latent columns on
        each side and the first ~1 % of the decoder (up to its attention) on the whole
        frame; a rank decodes bands r, r + ranks, ...; the ranks all-gather the frame."""
        one = self.decode_per_latent(plan)
        if bands == 1:
            return one
        w = plan.film.width // plan.film.profile.vae_spatial
        shares = []
        for b in range(bands):
            c0, c1 = w * b // bands, w * (b + 1) // bands
            cols = c1 - c0 + min(DECODE_HALO, c0) + min(DECODE_HALO, w - c1)
            shares.append(self.decode_whole_frame + (1 - self.decode_whole_frame) * cols / w)
        rank = max(sum(shares[r::ranks]) for r in range(ranks))
        frame = 4 * 3 * plan.film.width * plan.film.height * 4  # 4 fp32 RGB frames
        gather = self.transfer_s(frame * (ranks - 1) / ranks) if ranks > 1 and transfers else 0.0
        return one * rank + gather

    def fastest_decode_per_latent(self, plan: FilmPlan) -> float:
        """A latent frame's decode with every band on its own worker, transfers left out
        (for lower bounds; the GPU-seconds are never below decode_per_latent)."""
        bands = decode_bands(plan.film.profile.vae_spatial, plan.film.width)
        return self.band_decode_per_latent(plan, bands, bands, transfers=False)

    def unit_phase_s(self, plan: FilmPlan, unit: Unit, phase_index: int) -> float:
        """Compute time of one phase of a unit (members run in parallel)."""
        phase = plan.phases[phase_index]
        expert = plan.film.profile.experts[phase.expert]
        return max(phase.num_steps * self.step_s(plan, seg.window.size, expert)
                   for seg in unit.segments)

    def exchange_s(self, plan: FilmPlan, unit: Unit, phase_index: int) -> float:
        """Gang members swap overlap predictions every step (windows mode)."""
        if not unit.is_gang:
            return 0.0
        overlap = max(a.window.stop - b.window.start
                      for a, b in zip(unit.segments, unit.segments[1:], strict=False))
        per_step = self.transfer_s(self.latent_bytes(plan, overlap))
        return plan.phases[phase_index].num_steps * per_step

    # ---- bytes -------------------------------------------------------------------------

    def latent_bytes(self, plan: FilmPlan, latent_frames: int) -> int:
        film = plan.film
        s = film.profile.vae_spatial
        return (4 * film.profile.latent_channels * latent_frames * (film.height // s)
                * (film.width // s))

    def handoff_bytes(self, plan: FilmPlan, latent_frames: int) -> int:
        """Latents + UniPC state (two model outputs, last sample): 4x the latents."""
        return 4 * self.latent_bytes(plan, latent_frames)

    def prompt_bytes(self) -> int:
        return 8_400_000

    def condition_bytes(self, plan: FilmPlan, latent_frames: int) -> int:
        """I2V conditioning y: 20 channels (mask + image latent), bf16."""
        return self.latent_bytes(plan, latent_frames) * 20 // 16 // 2

    def transfer_s(self, num_bytes: float) -> float:
        return self.link_latency_s + num_bytes / self.link_bytes_per_s if num_bytes else 0.0

    # ---- official sequence-parallel clips --------------------------------------------------

    def speedup_tables(self) -> tuple[SpeedupTable, ...]:
        """The published tables, with this model's fixed parts (text, image, decode, swap)."""
        return _tables(self.text_s, self.swap_s, self.decode_s, self.image_s)

    def speedup(self, family: str, height: int) -> SpeedupTable:
        self._published(family, height)  # a clear error for an uncalibrated model
        return next(t for t in self.speedup_tables() if (t.family, t.height) == (family, height))

    def gang_policy(self, min_efficiency: float = 0.8) -> GangPolicy:
        """The scheduler's gang rule on this model's tables and inter-node link."""
        return GangPolicy(tables=self.speedup_tables(), link_bytes_per_s=self.ib_bytes_per_s,
                          min_efficiency=min_efficiency)

    def clip_s(self, family: str, height: int, gpus: int) -> float:
        """Official script: one 81-frame clip on `gpus` GPUs, end to end."""
        return self.speedup(family, height).clip_s(gpus, self.ib_bytes_per_s)

    def gang_phase_s(self, plan: FilmPlan, unit: Unit, phase_index: int, layout: Layout,
                     forms: bool = True) -> float:
        """A unit's phase on gangs of `layout`: the one-GPU time x ratio, plus forming them
        unless it reuses the gangs of the unit's previous phase (`forms` False)."""
        one = self.unit_phase_s(plan, unit, phase_index)
        if layout.size == 1:
            return one
        return one * self.gang_ratio(plan, layout) + (self.gang_setup_s if forms else 0.0)

    def gang_ratio(self, plan: FilmPlan, layout: Layout) -> float:
        """A phase's time on a gang of `layout` over its time on one GPU."""
        if layout.size == 1:
            return 1.0
        height = 720 if plan.film.height >= 600 else 480
        return self.speedup(plan.film.profile.family, height).ratio(
            layout, self.ib_bytes_per_s, self.link_latency_s)
