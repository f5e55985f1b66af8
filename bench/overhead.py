"""Farm overhead against a plain diffusers WanPipeline call (same tiny model and settings).

Every system has its weights loaded before timing; runs alternate; the table shows
medians and ratios. Two pairs, each doing the same work on both sides:

  frames in memory   diffusers      `pipe(...)` to numpy frames
                     farm inline    the embedded farm (plan, schedule, encode, two expert
                                    phases, streaming decode) in this process, every frame
                                    read from its stream                  target <= 1.05
  delivered files    diffusers +    the same call, then the farm's own archive writes what
                     files          the farm delivers: labelled PNGs, each signed (C2PA),
                                    the h264 mp4, signed, and provenance sidecars
                     farm served    `serve --local`'s director over the embedded farm (a
                                    SQLite job store, phase handoffs checkpointed): the same
                                    files, while the film renders; until SUCCEEDED
                     farm ray       the same director as a Serve app on a local Ray cluster
                                    (director, high/low/decode pools in separate processes,
                                    latents as object refs), every frame read back through
                                    Serve; until SUCCEEDED                target <= 1.15

Ray start-up time and the cluster's memory (sum of its processes' unique memory) are
printed below the table.

    python bench/overhead.py [--runs 7] [--frames 81] [--size 128] [--steps 20] [--no-ray]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# system -> (the system it is compared with, target ratio or "")
PAIRS = {"farm inline": ("diffusers", "1.05"), "farm served": ("diffusers + files", ""),
         "farm ray": ("diffusers + files", "1.15")}


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
    from films import board, make_film, scene

    from farm.model.tiny import init_tiny
    from farm.observe.logs import quiet_libraries

    quiet_libraries()
    work = Path(tempfile.mkdtemp(prefix="reelfarm-bench-"))
    folder = str(init_tiny(work / "model", "t2v-a14b"))
    scenes = [scene("s1", args.frames, seed=1, negative_prompt="blurry")]
    shape = dict(steps=args.steps, width=args.size, height=args.size)
    film = make_film(scenes, model=folder, **shape)
    systems, director = _local_systems(folder, film, work)
    cluster = None
    try:
        if not args.no_ray:
            cluster, app = _start_ray(folder, torch.get_num_threads())
            storyboard = board(scenes, model=folder, **shape)
            systems["farm ray"] = lambda: _run_ray(app, storyboard)
        times = _measure(systems, args.runs, args.frames)
        _print(args, times, cluster)
    finally:
        director.stop()
        if cluster is not None:
            cluster.__exit__(None, None, None)


def _local_systems(folder: str, film, work: Path):
    """The in-process systems of the same film, weights loaded; and the served director
    (to stop at the end)."""
    import numpy as np
    from diffusers import WanPipeline

    from farm.local import LocalFarm, local_director
    from farm.model.noise import initial_noise

    farm = LocalFarm(folder)
    pipe = WanPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    s, size = film.scenes[0], film.width
    noise = initial_noise(1, s.id, (s.num_frames - 1) // 4 + 1, 16, size // 8, size // 8)
    delivery = _delivery(folder, work / "signing" / "artifacts")
    # `serve --local`'s defaults: a SQLite job store, so phase handoffs are checkpointed
    # as on the Ray app (a film survives a restart).
    director = local_director(folder, work / "served", db=f"sqlite:///{work / 'jobs.db'}",
                              delivery=delivery).start()
    films = iter(range(1_000_000))

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

    def frames() -> np.ndarray:
        out = pipe(prompt=s.prompt, negative_prompt="blurry", height=size, width=size,
                   num_frames=s.num_frames, num_inference_steps=film.num_steps, guidance_scale=4.0,
                   guidance_scale_2=3.0, latents=noise, output_type="np")
        return np.asarray(out.frames[0])

    def run_files() -> int:
        """What a diffusers user writes to deliver the same files: the farm's archive."""
        pixels = (frames() * 255).round().astype(np.uint8)
        return _archive(film, work / "files" / str(next(films)), delivery, pixels)

    def run_served() -> int:
        info = director.create_film(film, tenant="bench")
        count = sum(len(f.path.read_bytes()) > 0 for f in director.frames(info.film_id, "bench"))
        return count if _ended(director.watch(info.film_id, "bench")) else -1

    systems = {"diffusers": lambda: len(frames()), "diffusers + files": run_files,
               "farm inline": run_inline, "farm served": run_served}
    return systems, director


def _delivery(folder: str, artifacts: Path):
    """The served farm's labels, signing key and provenance record, for every system that
    writes files."""
    from farm.director.delivery import WeightHashes, default_signer, served_delivery
    from farm.model.loader import resolve_model

    hashes = WeightHashes({folder: resolve_model(folder)})
    hashes(folder, wait_s=600.0)  # hashed before timing, as on a server that is up
    return served_delivery(default_signer(artifacts), hashes, lambda tenant, sha: {})


def _archive(film, root: Path, delivery, pixels) -> int:
    from farm.director.archive import FrameArchive
    from farm.media.provenance import label_tags

    s = film.scenes[0]
    archive = FrameArchive(root, [(s.id, s.num_frames)], film.fps, film.width, film.height,
                           {"title": film.title, **label_tags("mp4")},
                           delivery(root.name, film, "bench"))
    archive.start()
    for i, frame in enumerate(pixels):
        archive.stream.put(s.id, i, frame)
    archive.join()
    assert archive.error is None, archive.error
    return archive.written


def _ended(events) -> bool:
    from farm.sched.output import FilmState

    return [e for e in events if e.kind == "state"][-1].state == FilmState.SUCCEEDED


def _start_ray(folder: str, threads: int):
    from serving.local import LocalCluster, small_machine_pools

    cluster = LocalCluster(small_machine_pools(folder, tempfile.mkdtemp(prefix="reelfarm-ray-"),
                                               threads))
    return cluster, cluster.__enter__()


def _run_ray(app, storyboard: dict) -> int:
    info = app.create_film.remote(storyboard).result()
    count = sum(len(f[3]) > 0 for f in app.options(stream=True).stream_frames.remote(info.film_id))
    return count if _ended(app.options(stream=True).watch.remote(info.film_id)) else -1


def _measure(systems: dict, runs: int, frames: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in systems}
    for fn in systems.values():  # warm-up: first-call allocations, lazy loads
        fn()
    for _ in range(runs):
        for name, fn in systems.items():
            t0 = time.perf_counter()
            assert fn() == frames, name
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
    print(f"tiny t2v-a14b, {args.frames} frames {args.size}x{args.size}, {args.steps} steps, "
          f"{args.runs} alternated runs each")
    print(f"{'system':<19}{'median s':>10}{'min s':>9}{'max s':>9}   {'ratio':<28}{'target':>7}")
    for name, v in times.items():
        base, target = PAIRS.get(name, ("", ""))
        ratio = f"{med[name] / med[base]:.3f} vs {base}" if base else ""
        print(f"{name:<19}{med[name]:>10.4f}{min(v):>9.4f}{max(v):>9.4f}   {ratio:<28}"
              f"{target:>7}")
    if "farm ray" in med:
        print(f"farm ray / farm served: {med['farm ray'] / med['farm served']:.3f} "
              "(what running on Ray adds to the same director and files)")
    print("Each pair does the same work: frames in memory (diffusers; the inline farm), or the "
          "served farm's deliverables (labelled, signed PNGs, the signed mp4, sidecars) written "
          "by the farm's own archive code (diffusers + files writes them after the call; the "
          "farm while it renders). One process per system, 2 shared cores on this machine.")
    if cluster is not None:
        print(f"ray: cluster + Serve app start-up {cluster.startup_s:.1f} s; "
              f"memory of the local cluster {_ray_memory_mb():.0f} MiB (USS, all Ray processes)")


if __name__ == "__main__":
    main()
