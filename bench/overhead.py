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
    python bench/overhead.py --film examples/trailer.yaml [--one-window]   # the toy trailer
"""

from __future__ import annotations

import argparse
import itertools
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
    ap.add_argument("--film", metavar="STORYBOARD",
                    help="time this storyboard instead (e.g. examples/trailer.yaml, the toy "
                         "trailer); diffusers renders each scene as one call")
    ap.add_argument("--one-window", action="store_true",
                    help="with --film: every scene one window, as diffusers renders it (the "
                         "same work on both sides; the film's windows cost more denoising)")
    ap.add_argument("--no-ray", action="store_true", help="skip the Ray executor")
    args = ap.parse_args()
    if args.one_window and not args.film:
        ap.error("--one-window applies to --film's storyboard (the default clip is one window)")

    import torch
    from films import film_of

    from farm.observe.logs import quiet_libraries

    quiet_libraries()
    work = Path(tempfile.mkdtemp(prefix="reelfarm-bench-"))
    storyboard = _storyboard(args, work)
    film = film_of(storyboard)
    systems, director = _local_systems(film, work)
    cluster = None
    try:
        if not args.no_ray:
            cluster, app = _start_ray(film.model, torch.get_num_threads())
            systems["farm ray"] = lambda: _run_ray(app, storyboard)
        times = _measure(systems, args.runs, film.num_frames)
        _print(args, film, times, cluster)
    finally:
        director.stop()
        if cluster is not None:
            cluster.__exit__(None, None, None)


def _storyboard(args, work: Path) -> dict:
    """`--film`'s storyboard, or one scene of --frames on a tiny random A14B."""
    if args.film:
        import yaml

        data = yaml.safe_load(Path(args.film).read_text())
        for scene in data["scenes"] if args.one_window else ():
            for key in ("continuity", "window", "overlap"):
                scene.pop(key, None)
        return data
    from films import board, scene

    from farm.model.tiny import init_tiny

    folder = str(init_tiny(work / "model", "t2v-a14b"))
    return board([scene("s1", args.frames, seed=1, negative_prompt="blurry")], model=folder,
                 steps=args.steps, width=args.size, height=args.size)


def _local_systems(film, work: Path):
    """The in-process systems of the same film, weights loaded; and the served director
    (to stop at the end)."""
    import numpy as np

    from farm.local import LocalFarm, local_director

    farm = LocalFarm(film.model)
    clips = _diffusers(film)
    delivery = _delivery(film.model, work / "signing" / "artifacts")
    # `serve --local`'s defaults: a SQLite job store, so phase handoffs are checkpointed
    # as on the Ray app (a film survives a restart).
    director = local_director(film.model, work / "served", db=f"sqlite:///{work / 'jobs.db'}",
                              delivery=delivery).start()
    films = itertools.count()

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

    def run_files() -> int:
        """What a diffusers user writes to deliver the same files: the farm's archive."""
        pixels = [(c * 255).round().astype(np.uint8) for c in clips()]
        return _archive(film, work / "files" / str(next(films)), delivery, pixels)

    def run_served() -> int:
        info = director.create_film(film, tenant="bench")
        count = sum(len(f.path.read_bytes()) > 0 for f in director.frames(info.film_id, "bench"))
        return count if _ended(director.watch(info.film_id, "bench")) else -1

    systems = {"diffusers": lambda: sum(len(c) for c in clips()), "diffusers + files": run_files,
               "farm inline": run_inline, "farm served": run_served}
    return systems, director


def _diffusers(film):
    """One WanPipeline call per scene, from the farm's initial noise, as numpy frames: the
    scene's frames, steps, prompts and guidance per expert (a windows scene is one call of
    all its frames: less work than the farm's overlapping windows)."""
    import numpy as np
    from diffusers import WanPipeline

    from farm.model.loader import resolve_model
    from farm.model.noise import initial_noise

    pipe = WanPipeline.from_pretrained(resolve_model(film.model).path)
    pipe.set_progress_bar_config(disable=True)
    p = film.profile

    def clips() -> list[np.ndarray]:
        out = []
        for s in film.scenes:
            noise = initial_noise(s.seed, s.id, s.num_latent_frames, p.latent_channels,
                                  film.height // p.vae_spatial, film.width // p.vae_spatial)
            g = dict(zip(p.experts, s.guidance, strict=True))  # A14B: high, low
            r = pipe(prompt=s.prompt, negative_prompt=s.negative_prompt, height=film.height,
                     width=film.width, num_frames=s.num_frames,
                     num_inference_steps=film.num_steps, guidance_scale=g["high"],
                     guidance_scale_2=g["low"], latents=noise, output_type="np")
            out.append(np.asarray(r.frames[0]))
        return out
    return clips


def _delivery(model: str, artifacts: Path):
    """The served farm's labels, signing key and provenance record, for every system that
    writes files."""
    from farm.director.delivery import WeightHashes, default_signer, served_delivery
    from farm.model.loader import resolve_model

    hashes = WeightHashes({model: resolve_model(model)})
    hashes(model, wait_s=600.0)  # hashed before timing, as on a server that is up
    return served_delivery(default_signer(artifacts), hashes, lambda tenant, sha: {})


def _archive(film, root: Path, delivery, clips) -> int:
    from farm.director.archive import FrameArchive
    from farm.media.provenance import label_tags

    archive = FrameArchive(root, [(s.id, s.num_frames) for s in film.scenes], film.fps,
                           film.width, film.height, {"title": film.title, **label_tags("mp4")},
                           delivery(root.name, film, "bench"))
    archive.start()
    for s, clip in zip(film.scenes, clips, strict=True):
        for i, frame in enumerate(clip):
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


def _print(args, film, times: dict[str, list[float]], cluster) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    what = (args.film + (", one window per scene" if args.one_window else "") if args.film
            else "tiny t2v-a14b")
    scenes = ", ".join(f"{s.id} {s.num_frames}" for s in film.scenes)
    print(f"{what}: {len(film.scenes)} scene(s) ({scenes} frames), {film.width}x{film.height}, "
          f"{film.num_steps} steps, {args.runs} alternated runs each")
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
