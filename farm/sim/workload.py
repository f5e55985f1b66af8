"""Workloads for the simulator: planned films and when they arrive (seeded, pure).

(a) `trailer()`: one 60 s 720p T2V film of 6 scenes. Six scene lengths of 4k+1 frames
    cannot sum to 961 (they sum to 2 mod 4), so each scene has 161 frames (966 frames,
    60.4 s at 16 fps): 41 latent frames, two 81-frame windows sharing one latent frame,
    so every scene is one gang of two segments.
(b) `film_queue()`: films with 1-6 scenes, T2V or I2V, 480p or 720p; a scene has 81
    frames (one segment) or, one time in three, 161 frames (T2V: a windows gang of two;
    I2V: a chain of two units, the second conditioned on the first's last frame).
    Arrivals are a Poisson process: exponential gaps with mean 1, seeded; callers scale
    them (`at_rate`) to the offered load they want.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from farm.plan.film import FilmPlan, plan_film
from farm.spec.adapters import Adapter
from farm.spec.film import Film, Scene
from farm.spec.profiles import profile_for
from farm.spec.speed import CacheSetting

SIZES = {720: (1280, 720), 480: (832, 480)}


@dataclass(frozen=True, slots=True)
class Arrival:
    film_id: str
    plan: FilmPlan
    time: float
    priority: int = 50
    tenant: str = "default"


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    arrivals: tuple[Arrival, ...]

    def with_phase_steps(self, max_phase_steps: int) -> Workload:
        """The same films planned with phases of at most `max_phase_steps` steps."""
        return replace(self, arrivals=tuple(
            replace(a, plan=plan_film(a.plan.film, max_phase_steps=max_phase_steps,
                                      adapter_bytes=dict(a.plan.adapter_bytes)))
            for a in self.arrivals))

    def at_rate(self, mean_gap_s: float) -> Workload:
        """The same films, arrival times scaled so the mean gap is `mean_gap_s`."""
        return replace(self, arrivals=tuple(replace(a, time=a.time * mean_gap_s)
                                            for a in self.arrivals))


def make_film(family: str, height: int, scene_frames: list[int], title: str = "sim",
              seed: int = 0, max_phase_steps: int | None = None) -> FilmPlan:
    """A planned film; 161-frame scenes become windows (T2V) or chains (I2V)."""
    profile = profile_for(family)
    width, h = SIZES[height]
    scenes = []
    for i, frames in enumerate(scene_frames):
        continuity = "single" if frames <= profile.frames else (
            "chain" if profile.requires_image else "windows")
        scenes.append(Scene(
            id=f"s{i}", index=i, prompt=f"{title} scene {i}", negative_prompt="",
            num_frames=frames, seed=seed + i, guidance=profile.guidance, continuity=continuity,
            window=profile.max_window, overlap=1,
            image="/sim/first-frame.png" if profile.requires_image else None))
    # Each simulated model is named by its family: the scheduler keys work by model name
    # (farm.sched.placement.Need), and the simulator's pools ("t2v-a14b/high") by that key.
    film = Film(title=title, fps=profile.fps, width=width, height=h, model=family,
                profile=profile, num_steps=profile.steps, shift=profile.shift,
                solver=profile.solver, scenes=tuple(scenes))
    return plan_film(film, max_phase_steps=max_phase_steps)


def trailer(max_phase_steps: int | None = None) -> Workload:
    plan = make_film("t2v-a14b", 720, [161] * 6, title="trailer", max_phase_steps=max_phase_steps)
    return Workload("single-film", (Arrival("trailer", plan, 0.0),))


def film_queue(num_films: int = 50, seed: int = 0, max_phase_steps: int | None = None) -> Workload:
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    for i in range(num_films):
        family = rng.choice(["t2v-a14b", "i2v-a14b"])
        height = rng.choice([480, 720])
        frames = [161 if rng.random() < 1 / 3 else 81 for _ in range(rng.randint(1, 6))]
        plan = make_film(family, height, frames, title=f"film{i}", seed=seed * 1000 + i,
                         max_phase_steps=max_phase_steps)
        arrivals.append(Arrival(f"film{i:02d}", plan, t, tenant="default"))
        t += rng.expovariate(1.0)
    return Workload(f"queue-{num_films}", tuple(arrivals))


def single_scenes(num: int = 12, height: int = 720) -> Workload:
    """The trailer's compute as `num` single-window scenes (scene-structure sensitivity)."""
    plan = make_film("t2v-a14b", height, [81] * num, title="shorts")
    return Workload(f"single-{num}x81", (Arrival("shorts", plan, 0.0),))


# A studio's queue (issue 34): shorts (one scene), episodes and features; scenes of one
# window, windows / chains of two or three; a film is T2V or I2V, 480p or 720p; films
# come in bursts (a studio submits a batch), bursts as a Poisson process.
_KINDS = (("short", 1, 1), ("episode", 3, 6), ("feature", 8, 12))
_LENGTHS = ((81, 0.5), (161, 0.35), (241, 0.15))


def studio_queue(num_films: int = 30, seed: int = 0) -> Workload:
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    while len(arrivals) < num_films:
        for _ in range(min(rng.randint(1, 4), num_films - len(arrivals))):
            i = len(arrivals)
            _, lo, hi = rng.choice(_KINDS)
            frames = [rng.choices([n for n, _ in _LENGTHS], [p for _, p in _LENGTHS])[0]
                      for _ in range(rng.randint(lo, hi))]
            plan = make_film(rng.choice(["t2v-a14b", "i2v-a14b"]), rng.choice([480, 720]),
                             frames, title=f"studio{i}", seed=seed * 1000 + i)
            arrivals.append(Arrival(f"studio{i:02d}", plan, t))
        t += rng.expovariate(1.0 / 2.5)  # bursts of 2.5 films on average: mean gap 1
    return Workload(f"mixed-{num_films}", tuple(arrivals))


def with_loras(workload: Workload, k: int, lora_bytes: int, seed: int = 0) -> Workload:
    """Each film renders with one of `k` character LoRAs (issue 33), drawn uniformly
    (seeded): a Wan2.2 pair, one file per expert (`high: 1` / `low: 1`), per family."""
    rng = random.Random(seed)
    arrivals = []
    for a in workload.arrivals:
        film, char = a.plan.film, rng.randrange(k)
        experts = film.profile.experts
        pair = tuple(Adapter(f"char{char}_{e}", f"/loras/{film.profile.family}/char{char}_{e}"
                             ".safetensors", tuple(float(i == j) for j in range(len(experts))))
                     for i, e in enumerate(experts))
        film = replace(film, scenes=tuple(replace(s, adapters=pair) for s in film.scenes))
        sizes = {x.location: lora_bytes for x in pair}
        arrivals.append(replace(a, plan=plan_film(film, adapter_bytes=sizes)))
    return Workload(f"loras-{k}", tuple(arrivals))


def with_speed(workload: Workload, setting: CacheSetting | None, label: str) -> Workload:
    """The same films with every scene's every expert on step cache `setting` (issue 35)."""
    arrivals = []
    for a in workload.arrivals:
        film = a.plan.film
        speed = tuple(setting for _ in film.profile.experts) if setting is not None else ()
        film = replace(film, scenes=tuple(replace(s, speed=speed) for s in film.scenes))
        arrivals.append(replace(a, plan=replace(a.plan, film=film)))
    return Workload(f"{workload.name} {label}", tuple(arrivals))


CHAINING = ("unchained", "two chains", "one chain")


def chain_films(num_films: int = 8, scenes: int = 6, seed: int = 0,
                chaining: str = "one chain", height: int = 480) -> Workload:
    """I2V films of `scenes` one-clip scenes (issue 37): "unchained", every scene from
    its own image; "one chain", every scene `start_from` the one before; "two chains",
    the first and second half each such a chain. (A scene continued by two scenes is
    refused by the spec, farm.spec.continuity: a last frame continues one scene.)"""
    if chaining not in CHAINING:
        raise ValueError(f"chaining must be one of {', '.join(CHAINING)}, got {chaining!r}")
    profile = profile_for("i2v-a14b")
    width, h = SIZES[height]
    heads = {0} if chaining == "one chain" else {0, scenes // 2} if chaining == "two chains" \
        else set(range(scenes))
    arrivals = []
    for f in range(num_films):
        film_scenes = tuple(Scene(
            id=f"s{i}", index=i, prompt=f"film {f} scene {i}", negative_prompt="",
            num_frames=profile.frames, seed=seed * 1000 + f * 10 + i,
            guidance=profile.guidance, continuity="single", window=profile.max_window,
            overlap=1, image="/sim/first-frame.png" if i in heads else None,
            start_from=None if i in heads else f"s{i - 1}") for i in range(scenes))
        film = Film(title=f"chains{f}", fps=profile.fps, width=width, height=h,
                    model="i2v-a14b", profile=profile, num_steps=profile.steps,
                    shift=profile.shift, solver=profile.solver, scenes=film_scenes)
        arrivals.append(Arrival(f"chains{f:02d}", plan_film(film), 0.0))
    return Workload(f"chains ({chaining})", tuple(arrivals))
