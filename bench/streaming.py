"""Streaming: time to first frame vs total, and the cost of windows over one big window.

Film: a short scene, a long scene rendered as >= 3 overlapping windows, another short
scene (tiny t2v-a14b model, CPU). Table 1: time to first frame, total time and their
ratio. Table 2: the long scene in windows mode against the single-window reference cost:
one window of the model's full length (81 frames = 21 latents) rendered alone, scaled to
the long scene's latent frames (a single window longer than the model's limit is not a
valid render, so the reference is per-frame cost times frames).

    python bench/streaming.py [--size 64] [--steps 8] [--long 161]
"""

from __future__ import annotations

import argparse
import threading
import time

from films import make_film, scene

from farm.local import LocalFarm
from farm.observe.logs import quiet_libraries
from farm.plan.film import plan_film
from farm.sched.output import PhaseFinished


def render(farm: LocalFarm, film) -> dict[str, float]:
    started = time.perf_counter()
    first: list[float] = []
    phase_s: dict[str, float] = {}

    def events(batch) -> None:
        for e in batch:
            if isinstance(e, PhaseFinished):
                sid = e.unit_id.split("/")[0]
                phase_s[sid] = phase_s.get(sid, 0.0) + e.duration

    _, stream = farm.submit(film)

    def read() -> None:
        for _ in stream:
            if not first:
                first.append(time.perf_counter() - started)

    reader = threading.Thread(target=read)
    reader.start()
    farm.run(events)  # torch work on this thread (one OpenMP team)
    reader.join()
    return {"ttff": first[0], "total": time.perf_counter() - started, **phase_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--long", type=int, default=161, help="frames of the long scene (4k+1)")
    args = ap.parse_args()
    quiet_libraries()
    common = dict(steps=args.steps, width=args.size, height=args.size)
    film = make_film([scene("s010", 17, seed=1),
                      scene("s020", args.long, seed=2, continuity="windows"),
                      scene("s030", 33, seed=3)], **common)
    ref = make_film([scene("s020", 81, seed=2)], **common)
    farm = LocalFarm("tiny")
    render(farm, make_film([scene("w", 17)], **common))  # warm-up (lazy loads)
    run = render(farm, film)
    single = render(farm, ref)

    long_plan = plan_film(film).scene_plan("s020").units[0]
    windows = [s.window for s in long_plan.segments]
    print(f"film: 3 scenes, {film.num_frames} frames, {args.size}x{args.size}, {args.steps} steps; "
          f"long scene {args.long} frames = {len(windows)} windows "
          f"{[(w.start, w.stop) for w in windows]}")
    print(f"{'time to first frame s':>22}{'total s':>10}{'ttff / total':>14}")
    print(f"{run['ttff']:>22.3f}{run['total']:>10.3f}{run['ttff'] / run['total']:>14.3f}")
    latents = (args.long - 1) // 4 + 1
    denoised = sum(w.size for w in windows)
    ref_s = single["s020"] / 21 * latents
    print()
    print(f"{'long scene':<26}{'latent frames':>14}{'denoise s':>11}{'ratio':>8}")
    print(f"{'single-window reference':<26}{latents:>14}{ref_s:>11.3f}{1.0:>8.3f}")
    print(f"{'windows mode':<26}{denoised:>14}{run['s020']:>11.3f}{run['s020'] / ref_s:>8.3f}"
          f"   (frames ratio {denoised / latents:.3f})")


if __name__ == "__main__":
    main()
