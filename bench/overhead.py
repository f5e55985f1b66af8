"""Farm overhead against a plain diffusers WanPipeline call (same tiny model and settings).

Both sides have their weights loaded before timing. One farm run = submit a one-scene film,
step the engine (plan, schedule, encode, two expert phases, streaming decode) and read
every frame of the stream as uint8; one diffusers run = `pipe(...)` to numpy frames.
Runs alternate; the table shows medians and the ratio (target: farm / diffusers <= 1.05).

    python bench/overhead.py [--runs 7] [--frames 33] [--size 64] [--steps 8]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()

    import numpy as np
    from diffusers import WanPipeline

    from farm.cli.quiet import quiet_libraries
    from farm.local import LocalFarm
    from farm.model.noise import initial_noise
    from farm.model.tiny import init_tiny
    from tests.helpers import make_film, scene

    quiet_libraries()
    folder = init_tiny(tempfile.mkdtemp(prefix="reelfarm-bench-"), "t2v-a14b")
    film = make_film([scene("s1", args.frames, seed=1, negative_prompt="blurry")],
                     model=str(folder), steps=args.steps, width=args.size, height=args.size)
    farm = LocalFarm(str(folder))
    pipe = WanPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    latent = args.size // 8
    noise = initial_noise(1, "s1", (args.frames - 1) // 4 + 1, 16, latent, latent)

    def run_farm() -> int:
        # The engine (all torch work) runs in this thread, like the pipeline; a reader
        # thread drains the frame stream as frames arrive. Torch work split over two
        # threads would give each its own OpenMP team, which on 2 cores costs ~30 %.
        _, stream = farm.submit(film)
        count: list[int] = []
        reader = threading.Thread(target=lambda: count.append(sum(1 for _ in stream)))
        reader.start()
        farm.run()
        reader.join()
        return count[0]

    def run_pipe() -> int:
        out = pipe(prompt=film.scenes[0].prompt, negative_prompt="blurry", height=args.size,
                   width=args.size, num_frames=args.frames, num_inference_steps=args.steps,
                   guidance_scale=4.0, guidance_scale_2=3.0, latents=noise, output_type="np")
        return int(np.asarray(out.frames[0]).shape[0])

    times: dict[str, list[float]] = {"farm": [], "diffusers": []}
    for fn in (run_farm, run_pipe):  # warm-up: first-call allocations, lazy loads
        fn()
    for _ in range(args.runs):
        for name, fn in (("farm", run_farm), ("diffusers", run_pipe)):
            t0 = time.perf_counter()
            frames = fn()
            times[name].append(time.perf_counter() - t0)
            assert frames == args.frames
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"tiny t2v-a14b, {args.frames} frames {args.size}x{args.size}, {args.steps} steps, "
          f"{args.runs} alternated runs each (median seconds)")
    print(f"{'system':<12}{'median s':>10}{'min s':>10}{'max s':>10}")
    for k, v in times.items():
        print(f"{k:<12}{med[k]:>10.4f}{min(v):>10.4f}{max(v):>10.4f}")
    print(f"ratio farm / diffusers = {med['farm'] / med['diffusers']:.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()
