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
on several GPUs (FSDP shards both experts over the group).

Memory (issue 34). A GPU holds experts (28.6 GB each), UMT5-XXL (11.4 GB) and the VAE
(0.5 GB), counted from the official configs (farm.spec.weights), plus non-weight memory
taken from the official 8-GPU peaks (28.5 GB at 720p, 17.7 GB at 480p) that does not
shrink with the Ulysses degree: one expert fits 80 GB, two never do. So a one-GPU clip
pays the offload, and a reelfarm GPU that holds several experts (a generalist) switches
its resident expert in SWITCH_S (an expert at LightX2V's measured offload rate).

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
single-GPU offload), divided by 2 x CFG_EFFICIENCY under CFG parallel (0.775, from
LightX2V's measured CFG 2 x Ulysses 4 point), plus one all-gather per step. A Ulysses
group of at most a node that spans two nodes (8 GPUs each) pays the all-to-all at the
inter-node rate on top (`straddle_ratio`): every system, reelfarm's gangs and the clip
baselines' groups alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from farm.plan.film import FilmPlan, Unit
from farm.plan.segments import DECODE_HALO, decode_bands
from farm.sched.gangs import GangPolicy
from farm.sched.output import Layout
from farm.sched.speedup import PUBLISHED, SpeedupTable, published_tables
from farm.spec.speed import CacheSetting
from farm.spec.weights import MODEL_OFFLOAD_BYTES_PER_S, official, part_bytes

# Ulysses needs heads % G == 0 (40 heads), and at most 40 GPUs per clip.
SP_SIZES = (1, 2, 4, 5, 8, 10, 20, 40)
REF_FRAMES, REF_STEPS = 81, 40
ATTN_TOKENS = 29100.0


# ---- calibration points (the one table bench/scale.py prints; sources in docs/benchmarks.md)
# LightX2V's own Wan2.2 T2V 720p run (examples/BeginnerGuide/ZH_CN/Wan22-moe.md, H100, 40
# steps, both experts resident): 823.5 s on one GPU, 152.3 s on CFG 2 x Ulysses 4 [read].
LIGHTX2V_ONE_S, LIGHTX2V_CFG2_SP4_S = 823.5, 152.3
# Published per-GPU peaks of the official script at 720p / 480p on 8 GPUs (FSDP shards the
# 57 GB of experts and the UMT5 over the 8): 37.1 / 26.3 GB [read, anchors 1.3].
OFFICIAL_PEAK_8 = {720: 37.1e9, 480: 26.3e9}
# Weights from the official configs (farm.spec.weights: parameters counted per component,
# checked against the real modules): an A14B expert and UMT5-XXL in bf16, the VAE in fp32.
_A14B = official("t2v-a14b")
EXPERT_BYTES = float(part_bytes(_A14B, "high"))  # 28.6 GB
UMT5_BYTES = float(part_bytes(_A14B, "text"))    # 11.4 GB
VAE_BYTES = float(part_bytes(_A14B, "vae"))      # 0.5 GB
# Switching a generalist's resident expert: one expert in from host memory at the rate
# LightX2V's model offload measured (farm.spec.weights.MODEL_OFFLOAD_BYTES_PER_S): 8.2 s.
SWITCH_S = EXPERT_BYTES / MODEL_OFFLOAD_BYTES_PER_S


# Step caches (farm.spec.speed, issue 35): the share of transformer calls a setting skips,
# measured on the toy model (docs/benchmarks.md "Step caching": 20 steps, 24 prompts,
# per expert) [read, toy]; no A14B measurement exists here, so the toy's stands in.
# Keyed by (cache, its deciding setting: threshold, or cache_interval for taylorseer).
SKIPPED_CALLS: dict[tuple[str, float], float] = {
    ("first-block", 0.1): 0.26, ("magcache", 0.1): 0.35, ("taylorseer", 2): 0.45}
# What a skipped call still costs, of a full call: first-block runs block 1 of 40 to
# decide; every cache runs the embeddings and the output head (patch and text embedding,
# time MLP, head: ~0.4 % of a 720p call's FLOPs, taken as 1 %) [inferred].
SKIPPED_CALL_COST = {"first-block": 1 / 40 + 0.01, "magcache": 0.01, "taylorseer": 0.01}
_DECIDES = {"first-block": "threshold", "magcache": "threshold", "taylorseer": "cache_interval"}


def calls_factor(setting: CacheSetting | None) -> float:
    """A phase's transformer time with this cache over its time exact."""
    if setting is None:
        return 1.0
    key = (setting.cache, setting.get(_DECIDES[setting.cache]))
    if key not in SKIPPED_CALLS:
        known = ", ".join(f"{c}({_DECIDES[c]}={v:g})" for c, v in SKIPPED_CALLS)
        raise ValueError(f"no measured skip fraction for {setting.label()}; measured: {known}")
    return 1.0 - SKIPPED_CALLS[key] * (1.0 - SKIPPED_CALL_COST[setting.cache])


def nonweight_bytes(height: int) -> float:
    """Activations and workspace of one rank, from the official 8-GPU peak less its shard
    of the weights; the published 4-GPU peaks give more (34.6 GB at 720p), so this is the
    favourable end, and it does not shrink with the Ulysses degree [inferred]."""
    return OFFICIAL_PEAK_8[height] - (2 * EXPERT_BYTES + UMT5_BYTES) / 8


def calibrated_cfg_efficiency() -> float:
    """CFG parallel's share of its ideal 2x, from LightX2V's measured point: its CFG 2 x
    Ulysses 4 speedup over its own single GPU, with Ulysses 4 taken at the official
    table's ratio (t(4) - fixed) / (t(1) - swap - fixed). ~0.77 [inferred]."""
    t2v = next(t for t in published_tables() if (t.family, t.height) == ("t2v-a14b", 720))
    sp4 = t2v.ratio(Layout(1, 4), 50e9)
    one = LIGHTX2V_ONE_S - t2v.fixed_s
    return one * sp4 / (2 * (LIGHTX2V_CFG2_SP4_S - t2v.fixed_s))


CFG_EFFICIENCY = round(calibrated_cfg_efficiency(), 3)


@functools.lru_cache(maxsize=64)
def _tables(text_s: float, swap_s: float, decode_s: tuple[tuple[int, float], ...],
            image_s: tuple[tuple[int, float], ...], cfg_efficiency: float,
            two_gpu_scale: float) -> tuple[SpeedupTable, ...]:
    decode, image = dict(decode_s), dict(image_s)
    return published_tables(text_s=text_s, swap_s=swap_s,
                            decode_s=(decode[720], decode.get(480, decode[720])),
                            image_s=(image[720], image.get(480, image[720])),
                            cfg_efficiency=cfg_efficiency, two_gpu_scale=two_gpu_scale)


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
    # Forming a gang's process groups for one phase (NCCL communicator init) [assumed];
    # the clip baselines pay it too when they regroup GPUs.
    gang_setup_s: float = 1.0
    # A generalist switching its resident expert (SWITCH_S).
    switch_s: float = SWITCH_S
    # CFG parallel's share of its ideal 2x (calibrated_cfg_efficiency; 1.0 = free).
    cfg_efficiency: float = CFG_EFFICIENCY
    # The 2-GPU Ulysses time over its extrapolation (a sensitivity knob; not published).
    two_gpu_scale: float = 1.0
    # GPUs per node: a Ulysses group spread over nodes pays the all-to-all at ib rate.
    node_gpus: int = 8
    # Memory of one GPU (H100 80 GB) and what a rank holds: experts, UMT5, VAE and the
    # non-weight memory (None: nonweight_bytes(height), the published peaks). At the
    # calibrated values one expert fits (68.7 GB at 720p) and two never do (97.2 GB).
    gpu_bytes: float = 80e9
    expert_bytes: float = EXPERT_BYTES
    text_bytes: float = UMT5_BYTES
    vae_bytes: float = VAE_BYTES
    nonweight_bytes: float | None = None
    # The pre-issue-34 rule, for the bench's before/after tables only: 21.9 GB of
    # activations at 720p scaled by tokens and divided by the Ulysses degree.
    legacy_memory: bool = False
    # Loading a LoRA adapter onto a GPU (issue 33): the file from host memory (page cache)
    # at the pageable host -> GPU rate LightX2V's model offload measured [inferred].
    adapter_bytes_per_s: float = MODEL_OFFLOAD_BYTES_PER_S
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

    def experts_fit(self, plan: FilmPlan, layout: Layout, experts: int, over: int = 1) -> bool:
        """Whether `experts` experts (sharded `over` ranks: 1/over of each), the text
        encoder, the VAE and the non-weight memory of a rank fit in one GPU (the layout
        does not matter: the published peaks show non-weight memory that does not shrink
        with the Ulysses degree)."""
        height = 720 if plan.film.height >= 600 else 480
        rest = self.nonweight_bytes if self.nonweight_bytes is not None else nonweight_bytes(
            height)
        if self.legacy_memory:
            w, h = _ref_size(720)
            frames = max(seg.window.size for u in plan.units for seg in u.segments)
            rest = 21.9e9 * _tokens(plan.film.width, plan.film.height, frames) / _tokens(
                w, h, (REF_FRAMES - 1) // 4 + 1) / layout.sp
        need = experts * self.expert_bytes / over + self.text_bytes + self.vae_bytes + rest
        return need <= self.gpu_bytes

    def one_gpu_swap_s(self, plan: FilmPlan) -> float:
        """The offload inside a one-GPU clip: paid only where both experts do not fit."""
        return 0.0 if self.experts_fit(plan, Layout(1, 1), 2) else self.swap_s

    def straddle_ratio(self, plan: FilmPlan, layout: Layout) -> float:
        """What a gang whose Ulysses groups span nodes adds to its ratio: the all-to-all
        at the inter-node rate (beyond one node the table has it already)."""
        if layout.sp <= 1 or layout.sp > self.node_gpus:
            return 0.0
        height = 720 if plan.film.height >= 600 else 480
        t = self.speedup(plan.film.profile.family, height)
        one = dict(t.seconds)[1] - t.swap_s - t.fixed_s
        comm = 2 * REF_STEPS * t.a2a_bytes_at_8 * (self.node_gpus / layout.sp) / self.ib_bytes_per_s
        return comm / one / layout.cfg

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

    def unit_phase_s(self, plan: FilmPlan, unit: Unit, phase_index: int,
                     cached: bool = True) -> float:
        """Compute time of one phase of a unit (members run in parallel), with its scene's
        step cache (`cached`; False: exact, for runners that offer none)."""
        phase = plan.phases[phase_index]
        expert = plan.film.profile.experts[phase.expert]
        factor = self.phase_calls_factor(plan, unit.scene_id, phase_index) if cached else 1.0
        return factor * max(phase.num_steps * self.step_s(plan, seg.window.size, expert)
                            for seg in unit.segments)

    def phase_calls_factor(self, plan: FilmPlan, scene_id: str, phase_index: int) -> float:
        """calls_factor of the scene's step cache on the phase's expert."""
        speed = plan.film.scene(scene_id).speed
        return calls_factor(speed[plan.phases[phase_index].expert] if speed else None)

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

    def adapter_load_s(self, num_bytes: int) -> float:
        """Loading `num_bytes` of LoRA adapters on one worker before a phase."""
        return num_bytes / self.adapter_bytes_per_s

    def transfer_s(self, num_bytes: float) -> float:
        return self.link_latency_s + num_bytes / self.link_bytes_per_s if num_bytes else 0.0

    # ---- official sequence-parallel clips --------------------------------------------------

    def speedup_tables(self) -> tuple[SpeedupTable, ...]:
        """The published tables, with this model's fixed parts (text, image, decode, swap)."""
        return _tables(self.text_s, self.swap_s, self.decode_s, self.image_s,
                       self.cfg_efficiency, self.two_gpu_scale)

    def speedup(self, family: str, height: int) -> SpeedupTable:
        self._published(family, height)  # a clear error for an uncalibrated model
        return next(t for t in self.speedup_tables() if (t.family, t.height) == (family, height))

    def gang_policy(self, min_efficiency: float = 0.8, min_size: int = 1) -> GangPolicy:
        """The scheduler's gang rule on this model's tables and inter-node link."""
        return GangPolicy(tables=self.speedup_tables(), link_bytes_per_s=self.ib_bytes_per_s,
                          min_efficiency=min_efficiency, min_size=min_size)

    def clip_s(self, family: str, height: int, gpus: int) -> float:
        """Official script: one 81-frame clip on `gpus` GPUs, end to end."""
        return self.speedup(family, height).clip_s(gpus, self.ib_bytes_per_s)

    def gang_phase_s(self, plan: FilmPlan, unit: Unit, phase_index: int, layout: Layout,
                     forms: bool = True, straddles: bool = False) -> float:
        """A unit's phase on gangs of `layout`: the one-GPU time x ratio, plus forming them
        unless it reuses the gangs of the unit's previous phase (`forms` False), plus the
        inter-node all-to-all where a Ulysses group spans nodes (`straddles`)."""
        one = self.unit_phase_s(plan, unit, phase_index)
        if layout.size == 1:
            return one
        ratio = self.gang_ratio(plan, layout) + (
            self.straddle_ratio(plan, layout) if straddles else 0.0)
        return one * ratio + (self.gang_setup_s if forms else 0.0)

    def gang_ratio(self, plan: FilmPlan, layout: Layout) -> float:
        """A phase's time on a gang of `layout` over its time on one GPU."""
        if layout.size == 1:
            return 1.0
        height = 720 if plan.film.height >= 600 else 480
        return self.speedup(plan.film.profile.family, height).ratio(
            layout, self.ib_bytes_per_s, self.link_latency_s)
