"""How much faster a phase runs on a gang of GPUs (pure): the published sequence-parallel
table, CFG parallel, and the link between nodes.

Published (Wan2.2, H100, 40 steps, CFG, 81 frames; research/anchors_inference.md 1.3):

    T2V-A14B 720p   1 / 4 / 8 GPUs = 1041.5 / 288.7 / 155.1 s     (480p 326.9 / 91.7 / 51.5)
    I2V-A14B 720p   1 / 4 / 8 GPUs = 1055.9 / 290.4 / 159.0 s     (480p 327.8 / 92.4 / 52.9)

A clip on G GPUs with Ulysses (the official script): the published time when there is
one, else t(G) = s + p / G fitted through the 4- and 8-GPU points, plus beyond one node
(8 GPUs) the Ulysses all-to-all over the inter-node link: 13.5 GB (720p; 5.9 GB at 480p)
per GPU per forward at 8 GPUs, scaled by 8 / G, 80 forwards. G must divide the 40 heads.
Points other than 1, 4 and 8 GPUs are extrapolations [inferred], not measurements.

A phase of reelfarm on a gang of cfg x sp GPUs takes `ratio` times its one-GPU time:

    ratio = (t(sp) - fixed) / (t(1) - swap - fixed) / (cfg x e)  +  cfg all-gather per step

where `fixed` is the text encoding, image encoding and VAE decode inside the published
times (reelfarm runs them as tasks of their own, never on a gang) and `swap` the
single-GPU offload inside t(1) (16 s; reelfarm workers do not offload). CFG parallel
runs the two forwards of a step on two halves of the gang and all-gathers the two
predictions (one latent-sized tensor each) every step; e (`cfg_efficiency`) is its share
of the ideal 2x: the published tables, which the runtime and the simulator both read,
use the measured 0.775 (LightX2V's CFG 2 x Ulysses 4 point; farm.sim.costs derives it).
ratio(1 x 1) = 1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from farm.sched.output import Layout

REF_STEPS = 40
NODE_GPUS = 8
# (family, height) -> published seconds of one clip by GPU count (H100, 40 steps, CFG,
# 81 frames; research/anchors_inference.md 1.3): the one copy the gang rule, the
# simulator's cost model (farm.sim.costs) and the benchmarks read.
PUBLISHED: dict[tuple[str, int], dict[int, float]] = {
    ("t2v-a14b", 720): {1: 1041.5, 4: 288.7, 8: 155.1},
    ("t2v-a14b", 480): {1: 326.9, 4: 91.7, 8: 51.5},
    ("i2v-a14b", 720): {1: 1055.9, 4: 290.4, 8: 159.0},
    ("i2v-a14b", 480): {1: 327.8, 4: 92.4, 8: 52.9},
}
# CFG parallel's share of its ideal 2x on Wan2.2 A14B: LightX2V's measured T2V 720p
# CFG 2 x Ulysses 4 clip (152.3 s against its own 823.5 s on one GPU), with Ulysses 4 at
# the table's ratio [inferred]; farm.sim.costs.calibrated_cfg_efficiency derives it from
# those numbers (tests/unit/test_sim.py checks they agree). Free CFG (1.0) would make the
# gang rule pick CFG halves that run slower than the Ulysses gang of the same GPUs.
MEASURED_CFG_EFFICIENCY = 0.775
# Width and Ulysses all-to-all bytes per GPU per forward at 8 GPUs, by height.
_SHAPES = {720: (1280, 13.5e9), 480: (832, 5.9e9)}


@dataclass(frozen=True, slots=True)
class SpeedupTable:
    """One model at one resolution: published clip seconds by GPU count, and what of
    them no gang can shorten."""

    family: str
    height: int
    # Attention heads: a Ulysses degree must divide them.
    heads: int
    # (GPUs, seconds of one 81-frame clip, 40 steps, CFG), as published.
    seconds: tuple[tuple[int, float], ...]
    # Text + image encoding + VAE decode inside the published times.
    fixed_s: float
    # Single-GPU offload inside the 1-GPU time.
    swap_s: float
    # Ulysses all-to-all bytes per GPU per forward at 8 GPUs.
    a2a_bytes_at_8: float
    # One prediction (the latents of a segment, bf16): what CFG parallel all-gathers.
    pred_bytes: float
    # Speedup of CFG parallel over its ideal 2x (1.0: ideal). published_tables() use the
    # measured MEASURED_CFG_EFFICIENCY; hand-made tables (tests) may leave it ideal.
    cfg_efficiency: float = 1.0

    def clip_s(self, gpus: int, link_bytes_per_s: float) -> float:
        """The official script's seconds for one clip on `gpus` GPUs (Ulysses)."""
        if gpus < 1 or self.heads % gpus:
            raise ValueError(f"sequence parallel size must divide the {self.heads} heads, "
                             f"got {gpus}")
        table = dict(self.seconds)
        if gpus in table:
            return table[gpus]
        p = 8 * (table[4] - table[8])
        s = table[8] - p / 8
        comm = 0.0
        if gpus > NODE_GPUS:
            comm = 2 * REF_STEPS * self.a2a_bytes_at_8 * (NODE_GPUS / gpus) / link_bytes_per_s
        return s + p / gpus + comm

    def ratio(self, layout: Layout, link_bytes_per_s: float, link_latency_s: float = 1e-3) -> float:
        """A phase's time on `layout` over its time on one GPU."""
        one = dict(self.seconds)[1] - self.swap_s - self.fixed_s
        sp = (self.clip_s(layout.sp, link_bytes_per_s) - (self.swap_s if layout.sp == 1 else 0.0)
              - self.fixed_s) / one
        if layout.cfg == 1:
            return sp
        per_step = one / REF_STEPS
        gather = link_latency_s + self.pred_bytes / link_bytes_per_s
        return sp / (layout.cfg * self.cfg_efficiency) + gather / per_step

    def layouts(self, cfg: bool, max_size: int) -> list[Layout]:
        """Every valid layout of at most max_size GPUs (CFG halves only with guidance)."""
        sps = [d for d in range(1, self.heads + 1) if self.heads % d == 0]
        return [Layout(c, s) for c in ((1, 2) if cfg else (1,)) for s in sps if c * s <= max_size]


def _latent_bytes(width: int, height: int, dtype_bytes: int = 2) -> float:
    return 16 * 21 * (height // 8) * (width // 8) * dtype_bytes


def published_tables(*, text_s: float = 1.0, swap_s: float = 16.0,
                     decode_s: tuple[float, float] = (5.0, 2.2),
                     image_s: tuple[float, float] = (3.2, 1.4),
                     cfg_efficiency: float = MEASURED_CFG_EFFICIENCY,
                     two_gpu_scale: float = 1.0) -> tuple[SpeedupTable, ...]:
    """The H100 tables, with the fixed parts split as farm.sim.costs calibrates them
    (decode and image encoding at 720p, 480p). `two_gpu_scale` != 1 pins the 2-GPU time
    at that multiple of its extrapolation (a sensitivity run: it is not published)."""
    out = []
    for (family, height), seconds in PUBLISHED.items():
        width, a2a = _SHAPES[height]
        k = 0 if height == 720 else 1
        image = image_s[k] if family == "i2v-a14b" else 0.0
        table = SpeedupTable(family, height, 40, tuple(sorted(seconds.items())),
                             fixed_s=text_s + image + decode_s[k], swap_s=swap_s,
                             a2a_bytes_at_8=a2a, pred_bytes=_latent_bytes(width, height),
                             cfg_efficiency=cfg_efficiency)
        if two_gpu_scale != 1.0:
            two = table.clip_s(2, 50e9) * two_gpu_scale
            table = replace(table, seconds=tuple(sorted({**seconds, 2: two}.items())))
        out.append(table)
    return tuple(out)
