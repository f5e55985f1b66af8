"""Kernels: bytes moved per op, fused kernel vs the unfused torch path, and the handoff codec.

Table 1 counts device-memory traffic. The torch path is measured: every aten op it runs
is intercepted (TorchDispatchMode) and charged the bytes of the tensors it reads and
writes, as an eager kernel does (views are free). A kernel's traffic is what it must read
and write once. With a GPU the kernels are also timed: achieved bandwidth against the
device's peak (a large device-to-device copy, the achievable peak). Table 2 gives the
device-to-host bytes per pixel of a decoded frame. Table 3 runs the tiny model's two
phases with the handoff on the wire exact, bf16 and fp8, and reports bytes, the handoff
error and the effect on the final decoded frames.

    python bench/triton_kernels.py [--width 832 --height 480 --latents 21] [--skip-model]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from farm.model.decode import to_uint8
from farm.observe.logs import quiet_libraries
from reelfarm_kernels import blend_step as bs
from reelfarm_kernels import frame_pack as fp
from reelfarm_kernels import handoff_codec as hc
from reelfarm_kernels.solver_step import step_coefficients

MB = 1e6


class ByteCounter(TorchDispatchMode):
    """Bytes read and written by the aten ops run inside the `with` block."""

    def __init__(self):
        super().__init__()
        self.bytes = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            tensors = [t for t in tree_leaves((args, kwargs, out)) if isinstance(t, torch.Tensor)]
            self.bytes += sum(t.numel() * t.element_size() for t in tensors)
            self.ops += 1
        return out


def measured(fn) -> tuple[int, int]:
    with ByteCounter() as c:
        fn()
    return c.bytes, c.ops


def nbytes(*ts) -> int:
    return sum(t.numel() * t.element_size() for t in ts if t is not None)


# 1. The three ops, each: (name, torch path, kernel launch, kernel bytes)

def frame_pack_case(width: int, height: int, device: str):
    x = (torch.rand(1, 3, 4, height, width, device=device) * 2 - 1)  # one decoder chunk
    out = fp.frame_pack_reference(x)
    kernel_bytes = nbytes(x, out.rgb, out.yuv)  # read once, write RGB + YUV once
    run = lambda: fp.frame_pack(x, use_triton=True)  # noqa: E731
    return [("frame pack vs torch RGB+YUV", lambda: fp.frame_pack_reference(x), run, kernel_bytes),
            ("frame pack vs torch RGB only", lambda: fp.frame_pack_reference(x, yuv=False),
             lambda: fp.frame_pack(x, yuv=False, use_triton=True), nbytes(x, out.rgb))]


# Latent frames a window shares with each neighbour in the blend case (plan_windows' overlap).
HALO = 4


def blend_step_cases(width: int, height: int, latents: int, device: str):
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    shape = (1, 16, latents, height // 8, width // 8)
    g = torch.Generator(device).manual_seed(0)
    x = torch.randn(shape, device=device, generator=g)
    f, halo = latents, HALO  # two neighbours sharing 4 frames each, as plan_windows makes them
    w = torch.tensor([float(min(i + 1, f - i)) for i in range(f)], device=device)
    side = torch.arange(1, halo + 1, dtype=torch.float32, device=device)
    sources = [bs.Source(torch.randn(*shape[:2], halo, *shape[3:], device=device, generator=g),
                         0, side),
               bs.Source(torch.randn(shape, device=device, generator=g), 0, w),
               bs.Source(torch.randn(*shape[:2], halo, *shape[3:], device=device, generator=g),
                         f - halo, side.flip(0))]
    cases = []
    unipc = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                    flow_shift=12.0)
    euler = FlowMatchEulerDiscreteScheduler(shift=12.0)
    for name, sch in [("blend + UniPC step (c2 p2)", unipc), ("blend + Euler step", euler)]:
        sch.set_timesteps(10, device=device)
        sch.set_begin_index(0)
        # warm up to the steady state (corrector and predictor of order 2)
        for t in sch.timesteps[:3]:
            sch.step(bs.blend_reference(sources, f), t, x)
        coeffs = step_coefficients(sch)
        hist = ((sch.model_outputs[-1], sch.model_outputs[-2], sch.last_sample)
                if coeffs.kind == "unipc" else (None, None, None))
        ref = bs.blend_step_reference(sources, x, coeffs, *hist)
        # reads: every source, the sample and history; writes: x_next (+ x0, + xc)
        writes = [ref.prev_sample, ref.model_output, ref.corrected if coeffs.corrector else None]
        kernel_bytes = nbytes(*[s.pred for s in sources], x, *hist, *writes)
        t = sch.timesteps[sch.step_index]
        state = _unipc_state(sch)

        def torch_path(sch=sch, t=t, state=state):
            _restore(sch, state)
            sch.step(bs.blend_reference(sources, f), t, x)

        cases.append((name, torch_path,
                      lambda c=coeffs, h=hist: bs.blend_step(sources, x, c, *h, use_triton=True),
                      kernel_bytes))
    return cases


def _unipc_state(sch):
    keep = ("_step_index", "model_outputs", "timestep_list", "last_sample", "lower_order_nums",
            "this_order")
    return {k: list(v) if isinstance(v, list) else v for k, v in vars(sch).items() if k in keep}


def _restore(sch, state) -> None:
    for k, v in state.items():
        setattr(sch, k, list(v) if isinstance(v, list) else v)


def codec_cases(width: int, height: int, latents: int, device: str):
    x = torch.randn(1, 16, latents, height // 8, width // 8, device=device)
    cases = []
    for codec in hc.CODECS:
        packed = hc.pack_reference(x, codec)
        # fp8: amax pass
        kernel_bytes = nbytes(x, packed.data) + (nbytes(x) if codec == "fp8" else 0)
        cases.append((f"handoff encode {codec}", lambda c=codec: hc.pack_reference(x, c),
                      lambda c=codec: hc.pack(x, c, use_triton=True), kernel_bytes))
    return cases


def gpu_seconds(fn, iters: int = 20) -> float:
    fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) / 1e3 / iters


def peak_bandwidth() -> float:
    """Achievable device bandwidth (bytes/s): a 1 GB device-to-device copy reads and writes."""
    a = torch.empty(256 * 2**20, dtype=torch.float32, device="cuda")
    b = torch.empty_like(a)
    return 2 * nbytes(a) / gpu_seconds(lambda: b.copy_(a))


def table_ops(args) -> None:
    gpu = torch.cuda.is_available()
    device = "cuda" if gpu else "cpu"
    cases = (frame_pack_case(args.width, args.height, device)
             + blend_step_cases(args.width, args.height, args.latents, device)
             + codec_cases(args.width, args.height, args.latents, device))
    peak = peak_bandwidth() if gpu else None
    print(f"\n1. Device-memory traffic per op ({args.width}x{args.height}, "
          f"{args.latents} latent frames; frame pack: one 4-frame decoder chunk)")
    head = f"{'op':30} {'torch ops':>9} {'torch MB':>10} {'kernel MB':>10} {'reduction':>9}"
    print(head + (f" {'kernel ms':>9} {'GB/s':>7} {'% peak':>6}" if gpu else ""))
    for name, torch_path, kernel, kernel_bytes in cases:
        moved, ops = measured(torch_path)
        line = (f"{name:30} {ops:9d} {moved / MB:10.1f} {kernel_bytes / MB:10.1f} "
                f"{moved / kernel_bytes:8.1f}x")
        if gpu:
            s = gpu_seconds(kernel)
            line += (f" {s * 1e3:9.3f} {kernel_bytes / s / 1e9:7.0f} "
                     f"{100 * kernel_bytes / s / peak:5.0f}%")
        print(line)
    if gpu:
        print(f"peak: {peak / 1e9:.0f} GB/s measured by a 1 GB device-to-device copy on "
              f"{torch.cuda.get_device_name()}")
    else:
        print("no GPU: kernel timings and achieved bandwidth need CUDA; reductions are byte counts")


def table_host_copy(args) -> None:
    px = args.width * args.height
    print(f"\n2. Device-to-host copy per decoded frame ({args.width}x{args.height})")
    print(f"{'what is copied':34} {'bytes/px':>8} {'MB/frame':>9} {'vs fp32':>8}")
    for what, per_px in [("fp32 RGB (decoder output)", 12.0),
                         ("uint8 RGB (to_uint8 / kernel)", 3.0),
                         ("uint8 YUV 4:2:0 (kernel)", 1.5)]:
        print(f"{what:34} {per_px:8.1f} {per_px * px / MB:9.2f} {12.0 / per_px:7.0f}x")


# 3. The handoff codec on a real (tiny) two-expert render

STEPS, W, H, F = 10, 64, 48, 5


def _order(expert: str, phase):
    from farm.engine.orders import DenoiseOrder, ModelRef
    from farm.plan.segments import Window

    ref = ModelRef("x", "t2v-a14b", ("high", "low"), W, H, STEPS, 12.0, "unipc", 512)
    return DenoiseOrder("f", "t", "s/0", "s", ref, 3, expert, 4.0 if expert == "high" else 3.0,
                        phase.start, phase.stop, Window(0, F), (Window(0, F),), 0, False)


def render_through_codecs(folder: str, codecs=("exact", *hc.CODECS)) -> dict:
    """High-noise phase once; its handoff over the wire with each codec; low-noise phase;
    decoded frames. -> {codec: (wire bytes, resumed handoff, final latents, frames uint8)}"""
    import numpy as np

    from farm.engine.exchange import NoExchange
    from farm.model.decode import StreamingDecoder
    from farm.model.loader import ModelLoader, resolve_model
    from farm.model.noise import initial_noise
    from farm.model.phase import run_phase
    from farm.model.solver import Handoff
    from farm.model.text import encode_prompts
    from farm.plan.timesteps import phases, timesteps

    loader = ModelLoader(resolve_model(folder))
    tok, enc = loader.text()
    embeds = encode_prompts(tok, enc, "a red fox runs through snow", "blurry", 512,
                            with_negative=True)
    noise = initial_noise(3, "s", F, 16, H // 8, W // 8)
    high, low = phases(timesteps("unipc", STEPS, 12.0), (0.875,))
    handoff = run_phase(loader.expert("high"), loader.scheduler("unipc", 12.0),
                        _order("high", high), embeds, noise, None, NoExchange())
    out = {}
    for codec in codecs:
        wire = handoff.to_bytes(codec=codec)
        resumed = Handoff.from_bytes(wire)
        done = run_phase(loader.expert("low"), loader.scheduler("unipc", 12.0), _order("low", low),
                         embeds, None, resumed, NoExchange())
        chunks = StreamingDecoder(loader.vae()).decode(done.latents)
        out[codec] = (len(wire), resumed, done.latents,
                      np.concatenate([to_uint8(c) for c in chunks]))
    return out


def handoff_tensors(h) -> list[torch.Tensor]:
    return [t for t in (h.latents, *h.state.model_outputs, h.state.last_sample) if t is not None]


def table_codec(args) -> None:
    from farm.model.tiny import init_tiny

    with tempfile.TemporaryDirectory() as d:
        started = time.perf_counter()
        runs = render_through_codecs(str(init_tiny(d, "t2v-a14b", seed=0)))
    size, exact, lat, frames = runs["exact"]
    print(f"\n3. Handoff codec on the tiny t2v-a14b model ({W}x{H}, {F} latent frames, "
          f"{STEPS} UniPC steps, handoff at the expert boundary; "
          f"{time.perf_counter() - started:.0f} s)")
    print(f"{'codec':6} {'wire B':>8} {'ratio':>6} {'handoff max|err|':>16} {'mean|err|':>10} "
          f"{'latents max|err|':>16} {'frames max|d|':>13} {'mean|d|':>8} {'PSNR dB':>8}")
    for codec, (n, h, lat_c, fr) in runs.items():
        errs = torch.cat([(a - b).abs().flatten()
                          for a, b in zip(handoff_tensors(h), handoff_tensors(exact), strict=True)])
        d = (torch.from_numpy(fr).double() - torch.from_numpy(frames).double()).abs()
        mse = (d**2).mean().item()
        psnr = math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
        print(f"{codec:6} {n:8d} {n / size:6.2f} {errs.max().item():16.3e} "
              f"{errs.mean().item():10.3e} {(lat_c - lat).abs().max().item():16.3e} "
              f"{d.max().item():13.0f} {d.mean().item():8.3f} {psnr:8.1f}")
    mag = max(t.abs().max().item() for t in handoff_tensors(exact))
    print(f"errors are absolute; the handoff's largest magnitude is {mag:.2f}; "
          "frames in 8-bit levels")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--latents", type=int, default=21)
    ap.add_argument("--skip-model", action="store_true",
                    help="skip table 3 (the tiny-model render)")
    args = ap.parse_args()
    if args.latents < HALO:
        ap.error(f"--latents {args.latents}: at least {HALO} (the blend case's window shares "
                 f"{HALO} latent frames with each neighbour)")
    quiet_libraries()
    table_ops(args)
    table_host_copy(args)
    if not args.skip_model:
        table_codec(args)


if __name__ == "__main__":
    main()
