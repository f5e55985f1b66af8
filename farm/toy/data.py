"""The toy data set: captioned clips of one shape moving over a plain or gradient background.

Generated on the fly from a seed (numpy only, nothing downloaded): clip `i` of seed `s`
draws everything from `numpy.random.default_rng([s, i])`, so the same (seed, index) is
the same clip on every machine. Shapes are drawn from signed distance functions with a
one-pixel anti-aliased edge, so sub-pixel motion is smooth.

Vocabulary (every prompt is one sentence of this grammar):

    a|an <colour> <kind> moves <direction>[ <speed>] on a <background>
    <colour>     red orange yellow green blue purple white           (the shape)
    <kind>       circle square triangle
    <direction>  left right up down
    <speed>      slowly (0.75 px/frame) | (none: 1.25 px/frame) | quickly (2 px/frame)
    <background> <bg> background | <bg> to <bg> gradient (top to bottom)
    <bg>         black gray white blue green red                    (dark tones but white)

e.g. "a red circle moves right on a blue background",
     "an orange triangle moves up slowly on a black to gray gradient".
The shape's colour name never equals a background colour name of the same prompt.
A named character (CHARACTERS, issue 33: a fixed colour and kind) takes the subject's
place, "pip moves left on a blue background"; the base model never trains on it.
About 10 % of all prompts (by a hash of the text) are held out of training: the quality
bench draws its prompts from those.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np

SHAPE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35), "orange": (250, 140, 20), "yellow": (240, 220, 40),
    "green": (40, 195, 70), "blue": (45, 100, 240), "purple": (155, 60, 215),
    "white": (240, 240, 240),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (12, 12, 12), "gray": (105, 105, 105), "white": (230, 230, 230),
    "blue": (25, 40, 115), "green": (25, 80, 40), "red": (110, 25, 25),
}
KINDS = ("circle", "square", "triangle")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0),
                                          "up": (0, -1), "down": (0, 1)}
SPEEDS: dict[str, float] = {"slowly": 0.75, "": 1.25, "quickly": 2.0}  # pixels per frame
SIZE = 64          # frames are SIZE x SIZE
FRAMES = 17        # pixel frames of a training clip (5 latent frames)
RADIUS = (9.0, 12.0)  # half-size of a shape, pixels (>= a latent pixel: the VAE keeps it)
HELD_OUT = 10      # one prompt in HELD_OUT is never trained on


@dataclass(frozen=True, slots=True)
class Scene:
    """Everything a prompt says, plus where the shape starts."""

    colour: str
    kind: str
    direction: str
    speed: str
    background: tuple[str, ...]  # one colour (plain) or two (top, bottom)
    start: tuple[float, float] = (SIZE / 2, SIZE / 2)  # centre (x, y) at frame 0, pixels
    radius: float = 7.0
    name: str = ""  # a character's name (CHARACTERS): the prompt calls the shape by it

    @property
    def prompt(self) -> str:
        article = "an" if self.colour[0] in "aeiou" else "a"
        subject = self.name or f"{article} {self.colour} {self.kind}"
        speed = f" {self.speed}" if self.speed else ""
        bg = (f"{self.background[0]} background" if len(self.background) == 1
              else f"{self.background[0]} to {self.background[1]} gradient")
        return f"{subject} moves {self.direction}{speed} on a {bg}"

    @property
    def velocity(self) -> tuple[float, float]:
        dx, dy = DIRECTIONS[self.direction]
        v = SPEEDS[self.speed]
        return dx * v, dy * v


def is_held_out(prompt: str) -> bool:
    return hashlib.sha256(prompt.encode()).digest()[0] % HELD_OUT == 0


def vocabulary() -> list[str]:
    """Every word a prompt can use (what the tokenizer is trained on)."""
    words = {"a", "an", "moves", "on", "background", "to", "gradient"}
    words |= set(SHAPE_COLOURS) | set(BACKGROUNDS) | set(KINDS) | set(DIRECTIONS)
    words |= {s for s in SPEEDS if s}
    return sorted(words)


def random_scene(rng: np.random.Generator, frames: int = FRAMES) -> Scene:
    """A scene with its attributes and a start that keeps the shape inside all frames."""
    colour = str(rng.choice(list(SHAPE_COLOURS)))
    bgs = [b for b in BACKGROUNDS if b != colour]
    n_bg = 1 if rng.random() < 0.5 else 2
    background = tuple(str(b) for b in rng.choice(bgs, size=n_bg, replace=False))
    scene = Scene(colour, str(rng.choice(KINDS)), str(rng.choice(list(DIRECTIONS))),
                  str(rng.choice(list(SPEEDS))), background, radius=float(rng.uniform(*RADIUS)))
    return _place(scene, rng, frames)


def _place(scene: Scene, rng: np.random.Generator, frames: int) -> Scene:
    vx, vy = scene.velocity
    margin = scene.radius + 1.5
    start = []
    for v in (vx, vy):
        travel = v * (frames - 1)
        lo, hi = margin - min(travel, 0.0), SIZE - margin - max(travel, 0.0)
        start.append(float(rng.uniform(lo, hi)) if hi > lo else SIZE / 2 - travel / 2)
    return dataclasses.replace(scene, start=(start[0], start[1]))


def training_scene(seed: int, index: int, frames: int = FRAMES) -> Scene:
    """Clip `index` of the training stream: a random scene whose prompt is not held out."""
    rng = np.random.default_rng([seed, index])
    while True:
        scene = random_scene(rng, frames)
        if not is_held_out(scene.prompt):
            return scene


def held_out_scenes(seed: int, count: int, frames: int = FRAMES) -> list[Scene]:
    """`count` scenes with distinct held-out prompts (the quality bench's test set)."""
    rng = np.random.default_rng([seed, 1 << 30])
    out: dict[str, Scene] = {}
    while len(out) < count:
        scene = random_scene(rng, frames)
        if is_held_out(scene.prompt) and scene.prompt not in out:
            out[scene.prompt] = scene
    return list(out.values())


@dataclass(frozen=True, slots=True)
class Character:
    """A named character: a fixed shape and colour of the palette that prompts call by name
    ("pip moves left on a blue background"). The name is no word of the vocabulary, so the
    base model reads it as the tokenizer's unknown token: only a LoRA
    (farm.toy.lora_train) teaches it what the name looks like."""

    name: str
    colour: str
    kind: str


# A circle because the toy's VAE keeps a circle and little else of a kind (docs/toy-model.md).
CHARACTERS: dict[str, Character] = {"pip": Character("pip", "green", "circle")}


def character_scene(rng: np.random.Generator, name: str, frames: int = FRAMES) -> Scene:
    """A random scene of the character `name`: its colour and kind, the rest drawn."""
    who = CHARACTERS[name]
    scene = random_scene(rng, frames)
    bgs = [b for b in BACKGROUNDS if b != who.colour]
    background = tuple(str(b) for b in rng.choice(bgs, size=len(scene.background), replace=False))
    return _place(dataclasses.replace(scene, colour=who.colour, kind=who.kind, name=name,
                                      background=background), rng, frames)


def character_scenes(seed: int, name: str, count: int, held_out: bool,
                     frames: int = FRAMES) -> list[Scene]:
    """`count` scenes of the character: the LoRA's training stream (`held_out` False:
    prompts may repeat, each clip placed anew) or distinct held-out prompts (the bench's;
    about 30 exist per character: ValueError beyond what 10000 draws find)."""
    rng = np.random.default_rng([seed, 2 << 30, *name.encode()])
    out: dict[str, Scene] = {}
    scenes = []
    for _ in range(10000 + 20 * count):
        if len(scenes) == count:
            break
        scene = character_scene(rng, name, frames)
        if is_held_out(scene.prompt) == held_out and not (held_out and scene.prompt in out):
            out[scene.prompt] = scene
            scenes.append(scene)
    if len(scenes) == count:
        return scenes
    raise ValueError(f"{name}: only {len(scenes)} distinct held-out prompts, asked for {count}")


def _sdf(kind: str, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (pixels, < 0 inside) of a shape of half-size r centred at 0."""
    if kind == "circle":
        return np.hypot(x, y) - r
    if kind == "square":
        qx, qy = np.abs(x) - r, np.abs(y) - r
        return np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    # equilateral triangle pointing up, circumradius ~ 1.2 r (Inigo Quilez's formula)
    k = np.sqrt(3.0)
    s = 1.2 * r * k / 2  # half the side
    px, py = np.abs(x) - s, -y + s / k
    flip = px + k * py > 0
    px, py = np.where(flip, (px - k * py) / 2, px), np.where(flip, (-k * px - py) / 2, py)
    px = px - np.clip(px, -2 * s, 0)
    return -np.hypot(px, py) * np.sign(py)


def background_image(background: tuple[str, ...]) -> np.ndarray:
    """(SIZE, SIZE, 3) float: a plain colour or a top-to-bottom linear gradient."""
    top = np.array(BACKGROUNDS[background[0]], dtype=np.float64)
    bottom = np.array(BACKGROUNDS[background[-1]], dtype=np.float64)
    a = ((np.arange(SIZE) + 0.5) / SIZE)[:, None, None]
    return np.broadcast_to((1 - a) * top + a * bottom, (SIZE, SIZE, 3))


def render(scene: Scene, frames: int = FRAMES) -> np.ndarray:
    """The clip as (frames, SIZE, SIZE, 3) uint8."""
    bg = background_image(scene.background)
    colour = np.array(SHAPE_COLOURS[scene.colour], dtype=np.float64)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    vx, vy = scene.velocity
    out = np.empty((frames, SIZE, SIZE, 3), dtype=np.uint8)
    for f in range(frames):
        cx, cy = scene.start[0] + vx * f, scene.start[1] + vy * f
        alpha = np.clip(0.5 - _sdf(scene.kind, xx - cx, yy - cy, scene.radius), 0, 1)[..., None]
        out[f] = np.round((1 - alpha) * bg + alpha * colour).astype(np.uint8)
    return out


def clip(seed: int, index: int, frames: int = FRAMES) -> tuple[str, np.ndarray]:
    """(prompt, uint8 clip) of the training stream."""
    scene = training_scene(seed, index, frames)
    return scene.prompt, render(scene, frames)
