"""Prompt adherence and seam quality of the toy model, rendered through the farm.

Quality: held-out prompts (farm.toy.data.held_out_scenes, never trained on), one
single-window clip (17 frames) each: colour accuracy (the foreground's median colour is
nearest the prompt's colour), direction accuracy (the foreground centroid moves with the
stated sign along the stated axis; "axis" also needs that axis to dominate), jitter (mean
|second difference| of the centroid, px/frame^2). Targets: >= 90 % colour and direction.

Seams: a 41-frame scene (11 latent frames) in `windows` mode (windows of 5 latent frames,
overlap 2: three windows) and, as a baseline, three independent 17-frame clips of the same
prompt put end to end (no blending). seam ratio = mean |frame difference| across segment
boundaries / mean elsewhere; jump = the largest centroid step across a boundary / the
median step. Targets (windows): ratio <= 1.1, jump <= 2; the baseline must show seams.
`chain` needs a family that continues a clip from frames (I2V, TI2V): the toy model is
text-to-video (t2v-a14b), so chain mode is not measured. The data's own clips are rows too
(what a perfect model would score), and so is the VAE's round trip of them (the decoder's
own seams at the same frames: what perfect latents would score, the floor of windows).

Text use: each expert's flow loss on the held-out clips' own latents given the true prompt,
no prompt, a wrong colour and the opposite direction (same noise for all): a word whose
swap costs nothing is one the expert ignores.

    python bench/quality.py [--model toy] [--prompts 96] [--seam-prompts 8] [--steps 20]
                            [--guidance HIGH,LOW]   (default: the family's, 4,3)
                            [--speed SETTING ...]   (step caches vs exact: quality_speed.py)
    python bench/quality.py --lora farm/toy/loras/pip [--concept pip] [--prompts 48]
                            [--lora-prompts 24] [--lora-seeds 2] [--films 6]

LoRA (issue 33, `--lora DIR`): a character LoRA pair (farm.toy.lora_train) on held-out
prompts naming the character: the clips showing its colour and kind (metrics.shows) with
and without the pair; held-out base prompts' colour and direction with and without it;
and films of 4 scenes naming the character: the scenes (and whole films) showing it.

96 prompts because one clip of 24 is 4 points: at 90 % the binomial standard error is
6 points on 24 prompts, 3 on 96, too wide on 24 to tell a model at the target from one
5 points off it; the seam jump is a maximum over clips, so 8 seam prompts, not 4.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WINDOW, OVERLAP, SEAM_FRAMES = 5, 2, 41


def render(model: str, scenes: list[dict], steps: int, shift: float,
           seed: int = 0, loras: list[dict] | None = None) -> dict[str, np.ndarray]:
    """Render a film of `scenes` (with the film's `loras`) on the embedded farm;
    {scene id: (F, H, W, 3) uint8}."""
    return render_films(model, [(scenes, loras)], steps, shift)[0]


def render_films(model: str, films: list[tuple[list[dict], list[dict] | None]], steps: int,
                 shift: float) -> list[dict[str, np.ndarray]]:
    """Films of (scenes, the film's `loras`) on one embedded farm (the model loaded once);
    per film {scene id: (F, H, W, 3) uint8}."""
    from farm.local import LocalFarm
    from farm.spec.film import resolve_film
    from farm.spec.profiles import profile_for
    from farm.spec.storyboard import parse_storyboard
    from farm.toy import data

    farm = LocalFarm(model)
    streams = []
    for scenes, loras in films:
        board = parse_storyboard({"title": "bench", "fps": 16, "width": data.SIZE,
                                  "height": data.SIZE, "steps": steps, "shift": shift,
                                  "scenes": scenes, **({"loras": loras} if loras else {})})
        streams.append(farm.submit(resolve_film(board, profile_for(farm.source.family),
                                                model=model))[1])
    farm.run()
    out = []
    for stream in streams:
        frames: dict[str, list[np.ndarray]] = {}
        for f in stream:
            frames.setdefault(f.scene_id, []).append(np.asarray(f.frame))
        out.append({sid: np.stack(fs) for sid, fs in frames.items()})
    return out


def guidance_arg(text: str) -> dict[str, float]:
    """`--guidance 5` (both experts) or `--guidance 6,4` (high, low) -> a scene's guidance."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 0:
        raise argparse.ArgumentTypeError(
            f"--guidance takes G or HIGH,LOW (numbers >= 0), got {text!r}")
    return {"high": values[0], "low": values[-1]}


def quality_rows(clips: dict[str, np.ndarray], scenes) -> dict[str, float]:
    from farm.toy import metrics

    colour = [metrics.colour(clips[k]) == s.colour for k, s in scenes.items()]
    along = [metrics.moves_along(clips[k], s.direction) for k, s in scenes.items()]
    axis = [metrics.direction(clips[k]) == s.direction for k, s in scenes.items()]
    jit = [metrics.jitter(clips[k]) for k in scenes]
    return {"colour": float(np.mean(colour)), "direction": float(np.mean(along)),
            "axis": float(np.mean(axis)), "jitter": float(np.nanmean(jit))}


def vae_clips(model: str, clips: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's VAE alone: each data clip encoded and decoded (what the VAE lets through
    of a perfect latent: the ceiling of the model's own scores)."""
    import torch

    from farm.model.loader import ModelLoader, resolve_model
    from farm.toy.vae_train import to_pixels

    vae = ModelLoader(resolve_model(model)).vae()
    out = {}
    with torch.no_grad():
        for key, clip in clips.items():
            x = to_pixels(clip[None], torch.device("cpu"))
            y = vae.decode(vae.encode(x).latent_dist.mode()).sample[0]       # (3, F, H, W)
            out[key] = ((y.permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    return out


def swapped(scene, field: str) -> str:
    """The scene's prompt with its colour moved 3 along the palette, or its direction reversed."""
    from farm.toy import data

    if field == "colour":
        names = list(data.SHAPE_COLOURS)
        return scene.prompt.replace(scene.colour,
                                    names[(names.index(scene.colour) + 3) % len(names)], 1)
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}
    return scene.prompt.replace(f"moves {scene.direction}", f"moves {opposite[scene.direction]}")


def text_rows(model: str, scenes, draws: int = 4) -> dict[str, dict[str, float]]:
    """What each expert takes from its text: the flow loss (farm.toy.train.flow_loss) on the
    data's own latents of `scenes` with the true prompt, no prompt, a wrong colour and the
    opposite direction; {expert: {prompt kind: loss}}. A kind that costs no more than the
    true prompt is a word the expert ignores."""
    import torch

    from farm.model.condition import encode_latents
    from farm.model.loader import resolve_model
    from farm.toy import data
    from farm.toy import model as toy
    from farm.toy.short_text import padded_to
    from farm.toy.train import EXPERT_SIGMAS, _sigma_range, flow_loss
    from farm.toy.vae_train import to_pixels

    text, vae, high, low = toy.load_pipeline(resolve_model(model).path)
    experts = {"high": high, "low": low}
    tok, cpu, n = toy.build_tokenizer(), torch.device("cpu"), len(scenes)
    kinds = {"true": [s.prompt for s in scenes], "no prompt": [""] * n,
             "wrong colour": [swapped(s, "colour") for s in scenes],
             "opposite direction": [swapped(s, "direction") for s in scenes]}
    gen, rows = torch.Generator().manual_seed(0), {}
    with torch.no_grad():
        z = encode_latents(vae, to_pixels(np.stack([data.render(s) for s in scenes]), cpu))
        for name, (lo, hi) in EXPERT_SIGMAS.items():
            expert = experts[name]
            losses = {k: 0.0 for k in kinds}
            for _ in range(draws):  # the same noise and sigmas for every kind of prompt
                sigma = _sigma_range(toy.SHIFT, lo, hi, torch.rand(n, generator=gen))
                eps = torch.randn(z.shape, generator=gen)
                with padded_to([expert], toy.TEXT_LEN):
                    for kind, prompts in kinds.items():
                        emb = toy.encode_prompts(tok, text, prompts, cpu, short=True)
                        losses[kind] += flow_loss(expert, z, emb, sigma, eps).item() / draws
            rows[name] = losses
    return rows


def window_boundaries(num_latent: int) -> list[int]:
    """Pixel frames where a window starts or ends (first pixel frame of latent l: 4l - 3)."""
    from farm.plan.segments import plan_windows

    ws = plan_windows(num_latent, WINDOW, OVERLAP)
    edges = {w.start for w in ws[1:]} | {w.stop for w in ws[:-1]}
    return sorted(4 * e - 3 for e in edges)


def seam_rows(clips: dict[str, np.ndarray], prompts: int) -> dict[str, tuple[float, float]]:
    """{mode: (mean seam ratio, largest jump)} of windows, independent segments, the VAE's
    round trip of the data clips (`v{i}`, if given) and the data clips (`t{i}`)."""
    from farm.toy import metrics

    rows = {}
    bounds = window_boundaries((SEAM_FRAMES - 1) // 4 + 1)
    win = [metrics.seams(clips[f"w{i}"], bounds) for i in range(prompts)]
    rows["windows"] = win
    base = [metrics.seams(np.concatenate([clips[f"b{i}_{k}"] for k in range(3)]), [17, 34])
            for i in range(prompts)]
    rows["independent"] = base
    if "v0" in clips:  # the decoder's own seams: a floor for the windows row
        rows["vae of data"] = [metrics.seams(clips[f"v{i}"], bounds) for i in range(prompts)]
    truth = [metrics.seams(clips[f"t{i}"], bounds) for i in range(prompts)]
    rows["data (truth)"] = truth
    return {k: (float(np.mean([r for r, _ in v])), float(np.nanmax([j for _, j in v])))
            for k, v in rows.items()}


def seam_scenes(seed: int, prompts: int,
                extra: dict | None = None) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Windows and independent-segment scenes (+ the data's own 41-frame clips)."""
    import dataclasses

    from farm.toy import data

    scenes, truth = [], {}
    for i, s in enumerate(data.held_out_scenes(seed + 1, prompts, SEAM_FRAMES)):
        s = data._place(dataclasses.replace(s, speed="slowly"), np.random.default_rng([seed, i]),
                        SEAM_FRAMES)
        truth[f"t{i}"] = data.render(s, SEAM_FRAMES)
        scenes.append({"id": f"w{i}", "prompt": s.prompt, "frames": SEAM_FRAMES, "seed": 100 + i,
                       "continuity": "windows", "window": WINDOW, "overlap": OVERLAP,
                       **(extra or {})})
        scenes += [{"id": f"b{i}_{k}", "prompt": s.prompt, "frames": 17, "seed": 100 + i + 1000 * k,
                    **(extra or {})} for k in range(3)]
    return scenes, truth


def lora_entries(folder: str) -> list[dict]:
    """A `loras:` list of a pair farm.toy.lora_train wrote: DIR/high and DIR/low."""
    from pathlib import Path

    root = Path(folder).resolve()
    return [{"name": str(root / "high"), "high": 1.0}, {"name": str(root / "low"), "low": 1.0}]


def lora_rows(args, extra: dict) -> list[tuple[str, float, float, int]]:
    """The LoRA table (issue 33): (row, without the LoRA, with it, clips per column).

    concept: held-out prompts naming the character (farm.toy.data.character_scenes, never
    trained on), each at `--lora-seeds` seeds: the clip shows its colour and kind.
    base colour / direction / kind: held-out base prompts, the LoRA loaded or not (kind:
    what the VAE keeps of it is little but circles; docs/toy-model.md).
    consistency: `--films` films of 4 scenes naming the character: the scenes showing
    its colour and kind, and the films where all 4 do."""
    from farm.toy import data, metrics

    who = data.CHARACTERS[args.concept]
    loras = lora_entries(args.lora)
    named = data.character_scenes(args.seed, args.concept, args.lora_prompts, held_out=True)
    concept = [{"id": f"c{i:02d}_{k}", "prompt": s.prompt, "frames": data.FRAMES,
                "seed": 7 + i + 1000 * k, **extra}
               for i, s in enumerate(named) for k in range(args.lora_seeds)]
    held = {f"q{i:02d}": s for i, s in enumerate(data.held_out_scenes(args.seed, args.prompts))}
    base = [{"id": k, "prompt": s.prompt, "frames": data.FRAMES, "seed": 7 + i, **extra}
            for i, (k, s) in enumerate(held.items())]
    films = [[{"id": f"s{k}", "prompt": named[(4 * f + k) % len(named)].prompt,
               "frames": data.FRAMES, "seed": 500 + 10 * f + k, **extra} for k in range(4)]
             for f in range(args.films)]  # a film: 4 held-out prompts of the character
    bare, loaded, *story = render_films(args.model, [(concept + base, None),
                                                     (concept + base, loras),
                                                     *((film, loras) for film in films)],
                                        args.steps, args.shift)
    rows = {}
    for label, clips in (("without", bare), ("with", loaded)):
        q = quality_rows(clips, held)
        rows[label] = {"concept": np.mean([metrics.shows(clips[c["id"]], who) for c in concept]),
                       "base colour": q["colour"], "base direction": q["direction"],
                       "base kind": np.mean([metrics.kind(clips[k]) == s.kind
                                             for k, s in held.items()])}
    shown = [sum(metrics.shows(c, who) for c in clips.values()) for clips in story]
    whole = sum(n == 4 for n in shown)
    out = [(name, rows["without"][name], rows["with"][name], n)
           for name, n in (("concept", len(concept)), ("base colour", len(base)),
                           ("base direction", len(base)), ("base kind", len(base)))]
    return out + [("consistency (scenes)", float("nan"), sum(shown) / (4 * args.films),
                   4 * args.films),
                  ("consistency (films)", float("nan"), whole / args.films, args.films)]


def print_lora(args, extra: dict) -> None:
    from farm.toy import data

    who = data.CHARACTERS[args.concept]
    t0 = time.monotonic()
    rows = lora_rows(args, extra)
    print(f"LoRA {args.lora} on {args.model}: {args.concept} = a {who.colour} {who.kind}, "
          f"{args.steps} steps, rendered in {time.monotonic() - t0:.0f} s")
    print(f"{'':<22}{'without':>9}{'with':>9}{'clips':>7}   (targets: concept >= 80 % with, "
          "<= 10 % without; base: <= 5 points lost; consistency >= 90 %)")
    for name, without, with_, n in rows:
        w = "-" if np.isnan(without) else f"{without:.0%}"
        print(f"{name:<22}{w:>9}{with_:>9.0%}{n:>7}")


def main() -> None:
    from farm.observe.logs import quiet_libraries
    from farm.toy import data

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="toy")
    ap.add_argument("--prompts", type=int, default=96,
                    help="held-out prompts for colour / direction")
    ap.add_argument("--seam-prompts", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--shift", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance", type=guidance_arg, default=None,
                    help="G or HIGH,LOW: classifier-free guidance per expert "
                         "(default: the family's)")
    ap.add_argument("--speed", action="append", default=[], metavar="SETTING",
                    help="compare step caches with exact (bench/quality_speed.py): "
                         "fbc:T, taylor:N, mag:T, a YAML `speed:` value, or sweep")
    ap.add_argument("--rounds", type=int, default=1,
                    help="--speed: renders of every setting, alternated (best time kept)")
    ap.add_argument("--lora", metavar="DIR", help="only the LoRA table: a pair "
                    "`reelfarm models train-lora` wrote (DIR/high, DIR/low); "
                    "--prompts base prompts (default 96)")
    ap.add_argument("--concept", default="pip", help="--lora: the character it was trained on")
    ap.add_argument("--lora-prompts", type=int, default=24,
                    help="--lora: held-out prompts naming the character (about 30 exist)")
    ap.add_argument("--lora-seeds", type=int, default=2, help="--lora: seeds per such prompt")
    ap.add_argument("--films", type=int, default=6, help="--lora: films of 4 scenes")
    args = ap.parse_args()
    quiet_libraries()
    extra = {"guidance": args.guidance} if args.guidance else {}
    if args.lora:
        return print_lora(args, extra)
    held = {f"q{i:02d}": s for i, s in enumerate(data.held_out_scenes(args.seed, args.prompts))}
    scenes = [{"id": k, "prompt": s.prompt, "frames": data.FRAMES, "seed": 7 + i, **extra}
              for i, (k, s) in enumerate(held.items())]
    seam, truth = seam_scenes(args.seed, args.seam_prompts, extra)
    if args.speed:
        from quality_speed import run

        return run(args, held, scenes, seam, truth)
    t0 = time.monotonic()
    clips = render(args.model, scenes + seam, args.steps, args.shift)
    took = time.monotonic() - t0
    q = quality_rows(clips, held)
    own = {k: data.render(s) for k, s in held.items()}
    qt = quality_rows(own, held)
    qv = quality_rows(vae_clips(args.model, own), held)
    vt = {"v" + k[1:]: c for k, c in vae_clips(args.model, truth).items()}
    s = seam_rows({**clips, **truth, **vt}, args.seam_prompts) if args.seam_prompts else {}
    g = ("guidance {high:g},{low:g}".format(**args.guidance) if args.guidance
         else "the family's guidance")
    print(f"model {args.model}: {len(held)} held-out prompts, {args.steps} steps, "
          f"shift {args.shift:g}, {g}, rendered in {took:.0f} s")
    print(f"{'clips':<14}{'colour acc':>12}{'direction':>12}{'axis':>8}{'jitter':>9}")
    for name, r in (("model", q), ("vae of data", qv), ("data (truth)", qt)):
        print(f"{name:<14}{r['colour']:>12.0%}{r['direction']:>12.0%}{r['axis']:>8.0%}{r['jitter']:>9.2f}")
    if s:  # --seam-prompts 0: colour and direction only
        print(f"\nseams ({args.seam_prompts} prompts, {SEAM_FRAMES} frames; "
              f"windows {WINDOW} latent, overlap {OVERLAP})")
        print(f"{'mode':<14}{'seam ratio':>12}{'max jump':>10}   (targets windows: <= 1.1, <= 2)")
        for name, (ratio, jump) in s.items():
            print(f"{name:<14}{ratio:>12.2f}{jump:>10.2f}")
        print(f"{'chain':<14}{'n/a':>12}{'n/a':>10}   (t2v family: cannot continue a clip)")
    t = text_rows(args.model, list(held.values()))
    print("\ntext use: each expert's flow loss on the held-out clips' latents "
          "by the prompt it is given")
    print(f"{'expert':<8}" + "".join(f"{k:>20}" for k in t["high"]))
    for name, losses in t.items():
        print(f"{name:<8}" + "".join(f"{v:>20.4f}" for v in losses.values()))


if __name__ == "__main__":
    main()
