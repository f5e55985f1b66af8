"""What switching LoRA adapters costs on a resident expert (farm.model.adapters).

Phases with different adapters stepping one expert in turn switch its active set with
diffusers' `set_adapters` before a step (none active: `set_adapters([])`). That walks
every module of the expert, so it grows with the layer count, not the width: the tiny
model (2 blocks) and one with Wan 14B's 40 blocks at the tiny width (400 LoRA layers,
as many as a real A14B expert with attention + FFN LoRAs) are timed. The baseline, in
the same run, is one bare forward of the same expert (CPU, tiny width: a real expert's
forward takes seconds on a GPU, so the ratio here is an upper bound by far).

    python bench/lora_switch.py [--blocks 2 40] [--rank 16] [--repeats 50]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q",
           "attn2.to_k", "attn2.to_v", "attn2.to_out.0", "ffn.net.0.proj", "ffn.net.2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, nargs="+", default=[2, 40])
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=50)
    args = ap.parse_args()

    from farm.model.tiny import init_tiny
    from farm.observe.logs import quiet_libraries

    quiet_libraries()
    folder = init_tiny(tempfile.mkdtemp(prefix="reelfarm-bench-"), "t2v-a14b")
    rows = [_measure(folder, n, args.rank, args.repeats) for n in args.blocks]
    print(f"{'blocks':>6} {'LoRA layers':>11} {'load ms':>8} {'switch ms':>9} "
          f"{'forward ms':>10} {'switch / forward':>16}")
    for n, layers, load, switch, forward in rows:
        print(f"{n:>6} {layers:>11} {load:>8.1f} {switch:>9.2f} {forward:>10.1f} "
              f"{switch / forward:>16.3f}")


def _measure(folder, blocks: int, rank: int, repeats: int):
    """(blocks, LoRA layers, ms to load one adapter, median ms per switch, median ms per
    bare forward) for an expert of `blocks` blocks with two adapters loaded."""
    import torch
    from diffusers import WanTransformer3DModel

    from farm.model.adapters import switch

    config = dict(WanTransformer3DModel.load_config(f"{folder}/transformer"), num_layers=blocks)
    model = WanTransformer3DModel.from_config(config).eval()
    g = torch.Generator().manual_seed(0)
    x, text = torch.randn((1, 16, 3, 6, 8), generator=g), torch.randn((1, 512, 32), generator=g)
    kw = {"hidden_states": x, "timestep": torch.tensor([700.0]), "encoder_hidden_states": text,
          "return_dict": False}
    with torch.no_grad():
        forward = _median(lambda: model(**kw), repeats // 5 + 1)
    modules = dict(model.named_modules())
    started = time.perf_counter()
    for name in ("a", "b"):
        sd = {}
        for i in range(blocks):
            for t in TARGETS:
                lin = modules[f"blocks.{i}.{t}"]
                sd[f"blocks.{i}.{t}.lora_A.weight"] = torch.randn((rank, lin.in_features))
                sd[f"blocks.{i}.{t}.lora_B.weight"] = torch.randn((lin.out_features, rank))
        model.load_lora_adapter(sd, adapter_name=f"bench_{name}", prefix=None)
    load = (time.perf_counter() - started) / 2
    keys = [(("bench_a", 0.8),), (("bench_b", 1.0), ("bench_a", -0.5)), ()]
    turn = iter(range(10**9))
    switch_ms = _median(lambda: switch(model, keys[next(turn) % 3]), repeats)
    return blocks, blocks * len(TARGETS), load * 1e3, switch_ms, forward


def _median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


if __name__ == "__main__":
    main()
