"""What each official Wan2.2 model needs per pool, and which GPUs each layout fits.

Weights come from the official configs (farm.spec.weights: parameter counts checked
against the real modules on the meta device; no weights needed), activations from the
edge check's estimate (farm.spec.limits.pass_bytes) for one 81-frame clip (21 latent
frames) in bfloat16; the VAE and the image / audio encoders run in float32, as the
workers load them. A layout fits a GPU when its resident weights + the activations of
one expert pass fit. Offload modes (PoolConfig.offload): none; model (one expert on the
GPU at a time); group (experts stream block by block: non-block weights + 2 blocks stay).

    python bench/footprint.py [--height 720] [--offload-timing]

--offload-timing also measures, on this CPU with the tiny T2V model, what the offload
hooks add to one expert forward (onload device = the CPU: the hooks' own overhead, the
figures in docs/weights.md section 5).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from farm.spec.limits import Footprint, pass_bytes  # noqa: E402
from farm.spec.profiles import profile_for  # noqa: E402
from farm.spec.weights import (  # noqa: E402
    OFFICIAL,
    OFFLOAD_MODES,
    offload_seconds,
    part_bytes,
    pool_bytes,
)

GPUS_GB = (24, 48, 80)
SIZES = {480: (832, 480), 720: (1280, 720)}
LATENT_FRAMES = 21  # 81 frames
GB = 1e9


def size(family: str, height: int) -> tuple[int, int]:
    """The official size at `height`, rounded down to the family's pixel multiple."""
    p = profile_for(family)
    w, h = SIZES[height]
    step = max(p.vae_spatial * p.patch, getattr(p, "size_multiple", 0) or 0)
    return w // step * step, h // step * step


def activations(family: str, height: int) -> int:
    t = OFFICIAL[family].components["transformer"]
    if "dim" in t:  # S2V's official config
        dim, ffn = t["dim"], t["ffn_dim"]
    else:
        dim, ffn = t["num_attention_heads"] * t["attention_head_dim"], t["ffn_dim"]
    w, h = size(family, height)
    return pass_bytes(profile_for(family), w, h, LATENT_FRAMES, Footprint(0, dim, ffn, 2))


def layouts(family: str) -> dict[str, list[str]]:
    parts = list(profile_for(family).parts)
    experts = list(profile_for(family).experts)
    return {"whole model": parts, "one expert": experts[:1],
            "text + vae": [p for p in parts if p not in experts]}


def table(height: int) -> None:
    print(f"\n## {height}p, one clip of 81 frames, bf16 (VAE / encoders fp32)\n")
    print("| family | pool | offload | weights GB | act GB | need GB | "
          + " | ".join(f"{g} GB" for g in GPUS_GB) + " |")
    print("|---|---|---|---:|---:|---:|" + "---|" * len(GPUS_GB))
    for family, model in OFFICIAL.items():
        act = activations(family, height)
        for name, holds in layouts(family).items():
            has_expert = any(h in profile_for(family).experts for h in holds)
            for mode in OFFLOAD_MODES if has_expert else ("none",):
                weights = pool_bytes(model.components, holds, "bfloat16", "float32", mode)
                need = weights + (act if has_expert else 0)
                fits = " | ".join("yes" if need <= g * GB else "no" for g in GPUS_GB)
                print(f"| {family} | {name} | {mode} | {weights / GB:.1f} | "
                      f"{(act if has_expert else 0) / GB:.1f} | {need / GB:.1f} | {fits} |")


def parts_table() -> None:
    print("\n## Weights per part (GB; what the simulator's memory figures should read)\n")
    print("| family | repo | expert | text | vae (+ encoders) | expert, group offload |")
    print("|---|---|---:|---:|---:|---:|")
    for family, model in OFFICIAL.items():
        expert = profile_for(family).experts[0]
        c = model.components
        print(f"| {family} | {model.repo} | {part_bytes(c, expert) / GB:.1f} | "
              f"{part_bytes(c, 'text') / GB:.1f} | {part_bytes(c, 'vae') / GB:.2f} | "
              f"{part_bytes(c, expert, offload='group') / GB:.2f} |")


def time_cost() -> None:
    print("\n## Offload time cost per expert phase (farm.spec.weights.offload_seconds)\n")
    print("| family | forwards | model s | group s |")
    print("|---|---:|---:|---:|")
    for family, model in OFFICIAL.items():
        p = profile_for(family)
        expert = p.experts[0]
        forwards = p.steps * (2 if p.guidance and p.guidance[0] > 1 else 1) // len(p.experts)
        b = part_bytes(model.components, expert)
        print(f"| {family} | {forwards} | {offload_seconds('model', b, forwards):.1f} | "
              f"{offload_seconds('group', b, forwards):.1f} |")


def offload_timing(runs: int = 300) -> None:
    """Median / min seconds of one tiny-expert forward per offload mode, interleaved."""
    import statistics
    import tempfile
    import time

    import torch

    from farm.model.loader import ModelLoader, resolve_model
    from farm.model.tiny import init_tiny

    folder = str(init_tiny(tempfile.mkdtemp(), "t2v-a14b"))
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(1, 16, 5, 6, 8, generator=g), torch.tensor([500.0])
    ctx = torch.randn(1, 512, 32, generator=g)
    models = {m: ModelLoader(resolve_model(folder), offload=m).expert("high")
              for m in OFFLOAD_MODES}
    times: dict[str, list[float]] = {m: [] for m in models}
    with torch.no_grad():
        for _ in range(runs):
            for mode, model in models.items():
                started = time.perf_counter()
                model(x, t, ctx)
                times[mode].append(time.perf_counter() - started)
    print("\n## Offload on the tiny T2V expert, CPU (ms per forward)\n")
    print("| offload | min | median | added (min) |")
    print("|---|---:|---:|---:|")
    base = min(times["none"])
    for mode, ts in times.items():
        print(f"| {mode} | {min(ts) * 1e3:.2f} | {statistics.median(ts) * 1e3:.2f} | "
              f"{(min(ts) - base) * 1e3:+.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, choices=sorted(SIZES), action="append")
    ap.add_argument("--offload-timing", action="store_true")
    args = ap.parse_args()
    parts_table()
    for height in args.height or sorted(SIZES):
        table(height)
    time_cost()
    if args.offload_timing:
        offload_timing()


if __name__ == "__main__":
    main()
