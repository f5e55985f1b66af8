"""Farm overhead against a plain diffusers WanPipeline call (same tiny model and settings).

Every system has its weights loaded before timing. One diffusers run = `pipe(...)` to
numpy frames. One inline-farm run = submit a one-scene film, step the engine in this
process (plan, schedule, encode, two expert phases, streaming decode) and read every
frame. One Ray-farm run = the same film through the Serve app on a local Ray cluster
(director, high/low/decode pools in separate processes, latents as object refs), reading
every frame back from the director's archive. Runs alternate; the table shows medians and
ratios (targets: inline <= 1.05, ray <= 1.15). Ray start-up time and the cluster's memory
(sum of its processes' unique memory) are printed below the table.

    python bench/overhead.py [--runs 7] [--frames 81] [--size 128] [--steps 20] [--no-ray]
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
    # One full-length clip (81 frames) so that the per-task dispatch latency of the cluster
    # (a few ms per hop) is compared with real, if tiny, compute.
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = ap.parse_args()

    import torch
    from films import board, scene

    from farm.model.tiny import init_tiny
    from farm.observe.logs import quiet_libraries

    quiet_libraries()
    folder = str(init_tiny(tempfile.mkdtemp(prefix="reelfarm-bench-"), "t2v-a14b"))
    scenes = [scene("s1", args.frames, seed=1, negative_prompt="blurry")]
    shape = dict(steps=args.steps, width=args.size, height=args.size)
    run_pipe, run_inline = _local_systems(folder, scenes, shape, args.frames)
    systems = {"diffusers": run_pipe, "farm inline": run_inline}
    cluster = None
    if not args.no_ray:
        cluster, director = _start_ray(folder, torch.get_num_threads())
        storyboard = board(scenes, model=folder, **shape)
        systems["farm ray"] = lambda: _run_ray(director, storyboard)
    try:
        times = _measure(systems, args.runs, args.frames)
        _print(args, times, cluster)
    finally:
        if cluster is not None:
            cluster.__exit__(None, None, None)


def _local_systems(folder: str, scenes: list, shape: dict, frames: int):
    """(plain WanPipeline call, inline farm render) of the same film, weights loaded."""
    import numpy as np
    from diffusers import WanPipeline
    from films import make_film

    from farm.local import LocalFarm
    from farm.model.noise import initial_noise

    film = make_film(scenes, model=folder, **shape)
    farm = LocalFarm(folder)
    pipe = WanPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    size = shape["width"]
    noise = initial_noise(1, "s1", (frames - 1) // 4 + 1, 16, size // 8, size // 8)

    def run_inline() -> int:
        # The engine (all torch work) runs on this thread, like the pipeline; a reader
        # thread drains the frame stream. Torch work split over two threads would give
        # each its own OpenMP team, which on 2 cores costs ~30 %.
        _, stream = farm.submit(film)
        count: list[int] = []
        reader = threading.Thread(target=lambda: count.append(sum(1 for _ in stream)))
        reader.start()
        farm.run()
        reader.join()
        return count[0]

    def run_pipe() -> int:
        out = pipe(prompt=film.scenes[0].prompt, negative_prompt="blurry", height=size,
                   width=size, num_frames=frames, num_inference_steps=shape["steps"],
                   guidance_scale=4.0, guidance_scale_2=3.0, latents=noise, output_type="np")
        return int(np.asarray(out.frames[0]).shape[0])

    return run_pipe, run_inline


def _start_ray(folder: str, threads: int):
    from serving.local import LocalCluster, small_machine_pools

    cluster = LocalCluster(small_machine_pools(folder, tempfile.mkdtemp(prefix="reelfarm-ray-"),
                                               threads))
    return cluster, cluster.__enter__()


def _run_ray(director, storyboard: dict) -> int:
    info = director.create_film.remote(storyboard).result()
    return sum(1 for _ in director.options(stream=True).stream_frames.remote(info.film_id))


def _measure(systems: dict, runs: int, frames: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in systems}
    for fn in systems.values():  # warm-up: first-call allocations, lazy loads
        fn()
    for _ in range(runs):
        for name, fn in systems.items():
            t0 = time.perf_counter()
            assert fn() == frames
            times[name].append(time.perf_counter() - t0)
    return times


def _ray_memory_mb() -> float:
    """Unique memory of every process of the Ray session (raylet's children and itself)."""
    import psutil

    total = 0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if "ray" in (proc.info["name"] or "") or "ray/" in cmd or "ray::" in cmd:
                total += proc.memory_full_info().uss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def _print(args, times: dict[str, list[float]], cluster) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["diffusers"]
    print(f"tiny t2v-a14b, {args.frames} frames {args.size}x{args.size}, {args.steps} steps, "
          f"{args.runs} alternated runs each")
    print(f"{'system':<14}{'median s':>10}{'min s':>9}{'max s':>9}{'/ diffusers':>13}{'target':>8}")
    targets = {"farm inline": "1.05", "farm ray": "1.15"}
    for name, v in times.items():
        print(f"{name:<14}{med[name]:>10.4f}{min(v):>9.4f}{max(v):>9.4f}"
              f"{med[name] / base:>13.3f}{targets.get(name, ''):>8}")
    if cluster is not None:
        print(f"ray: cluster + Serve app start-up {cluster.startup_s:.1f} s; "
              f"memory of the local cluster {_ray_memory_mb():.0f} MiB (USS, all Ray processes)")


if __name__ == "__main__":
    main()
