"""A resolved film: a storyboard checked against its model profile.

`resolve_film` applies every model-dependent rule and fills every default, so the
planner and everything after it see plain, complete values (no Optional fields).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from farm.spec.adapters import Adapter, Draft, merge, resolve_loras
from farm.spec.characters import CharacterUse, bring_in, character_adapters
from farm.spec.continuity import check_family
from farm.spec.delivery import Delivery, resolve_delivery
from farm.spec.dialogue import DialogueShot, expand_dialogues
from farm.spec.errors import FieldError, SpecError
from farm.spec.frames import (
    is_valid_frame_count,
    latent_frames,
    nearest_frame_counts,
    nearest_multiples,
    or_list,
)
from farm.spec.inputs import Locator, SceneInputs, files_under, resolve_inputs
from farm.spec.profiles import PROFILES, ModelProfile
from farm.spec.speed import Speed, resolve_speed
from farm.spec.storyboard import SceneSpec, Storyboard


@dataclass(frozen=True, slots=True)
class Scene:
    """One scene with every value resolved."""

    id: str
    # Position of the scene in the film (0-based).
    index: int
    prompt: str
    negative_prompt: str
    num_frames: int
    seed: int
    # Classifier-free guidance scale per expert, in profile.experts order.
    guidance: tuple[float, ...]
    # "single", "windows" or "chain".
    continuity: str
    # Latent frames per window / segment, and overlap between parallel windows.
    window: int
    overlap: int
    # Absolute path (or URL) of the first-frame image, if any (= inputs.image).
    image: str | None = None
    # Every media input (farm.spec.inputs), and chain mode's frames carried per clip.
    inputs: SceneInputs = SceneInputs()
    carry: int = 1
    # Chain as motion history (S2V): the `carry` frames before a clip condition it and
    # are not output again; clips do not overlap.
    history: bool = False
    # Whether conditioning is encoded for the scene (a VAE task before denoising): it
    # has inputs for the model, or its family always takes conditioning (VACE).
    conditioned: bool = False
    # LoRA adapters active in the scene's phases (the film's and its own; not a draft's).
    adapters: tuple[Adapter, ...] = ()
    # Step cache per expert (farm.spec.speed), in profile.experts order; () or None
    # entries: exact.
    speed: Speed = ()
    # The earlier scene whose last delivered frame is this scene's first frame (as if
    # given as `image:`; farm.spec.continuity), or None.
    start_from: str | None = None
    # The film's characters the scene names, and how its family took each one
    # (farm.spec.characters; recorded in manifests).
    characters: tuple[CharacterUse, ...] = ()
    # A shot of a dialogue scene: its turn, frames and the sound it plays (farm.spec.dialogue).
    dialogue: DialogueShot | None = None

    @property
    def num_latent_frames(self) -> int:
        return latent_frames(self.num_frames)

    @property
    def has_inputs(self) -> bool:
        """Whether conditioning must be encoded before the scene's first phase."""
        return self.image is not None or self.conditioned


@dataclass(frozen=True, slots=True)
class Film:
    """A film ready to plan: the storyboard's settings plus its model profile."""

    title: str
    fps: int
    width: int
    height: int
    # Model reference: "tiny", "tiny-<family>" or a local diffusers-format folder.
    model: str
    profile: ModelProfile
    num_steps: int
    shift: float
    solver: str
    scenes: tuple[Scene, ...]
    # The conform of the deliverables to the edit's rate and size; None: as rendered.
    delivery: Delivery | None = None
    # Rendered as a few-step draft (num_steps and guidance are the draft's); None: final.
    draft: Draft | None = None

    @property
    def num_frames(self) -> int:
        return sum(s.num_frames for s in self.scenes)

    def scene(self, scene_id: str) -> Scene:
        for s in self.scenes:
            if s.id == scene_id:
                return s
        raise KeyError(scene_id)


def resolve_film(board: Storyboard, profile: ModelProfile, model: str | None = None,
                 base_dir: str | Path | None = None, locator: Locator | None = None) -> Film:
    """Check `board` against `profile` and fill defaults; raises SpecError with all errors.

    Relative media paths (scene images) are resolved against `base_dir`, or by
    `locator` when given (a server's media names).
    """
    locator = locator or files_under(base_dir or ".")
    # dialogue scenes become their shots (farm.spec.dialogue), plain scenes from here on
    dialogues = expand_dialogues(board, profile, locator)
    board = dialogues.board
    errors = list(dialogues.errors) + _check_size(board, profile)
    errors += _check_window_settings("", board.window, board.overlap, profile)
    delivery, d_errors = resolve_delivery(board.delivery, board.fps, board.width, board.height)
    errors += d_errors
    film_loras, l_errors = resolve_loras("loras", board.loras, profile, locator)
    errors += l_errors
    film_speed, s_errors = resolve_speed("speed", board.speed, profile.experts)
    errors += s_errors
    errors += check_family(board.scenes, profile, board.fps)
    cast_loras, l_errors = character_adapters(board, profile, locator)
    errors += l_errors
    scenes = []
    for i, spec in enumerate(board.scenes):
        # the scene with its characters' descriptions and images, as its family takes them
        spec, uses, c_errors = bring_in(i, spec, board, profile)
        scene, scene_errors = _resolve_scene(i, spec, board, profile, locator)
        own, l_errors = resolve_loras(f"scenes[{i}].loras", spec.loras or (), profile, locator)
        speed, s_errors = resolve_speed(f"scenes[{i}].speed", spec.speed, profile.experts)
        errors += c_errors + scene_errors + l_errors + s_errors
        if scene is not None:
            cast = merge(film_loras, [a for u in uses for a in cast_loras.get(u.id, ())])
            scenes.append(dialogues.attach(replace(
                scene, adapters=merge(cast, own), characters=uses,
                speed=_exact_as_empty(speed or film_speed or ()))))
    draft_loras, l_errors = ([], []) if board.draft is None else resolve_loras(
        "draft.loras", board.draft.loras, profile, locator)
    errors += l_errors
    if errors:
        raise SpecError(dialogues.storyboard_paths(errors))
    film = Film(
        title=board.title, fps=board.fps, width=board.width, height=board.height,
        model=model or board.model, profile=profile,
        num_steps=board.steps or profile.steps, shift=board.shift or profile.shift,
        solver=board.solver or profile.solver, scenes=tuple(scenes), delivery=delivery,
    )
    if board.draft is None:
        return film
    return as_draft(film, board.draft.steps, board.draft.guidance, tuple(draft_loras))


def as_draft(film: Film, steps: int, guidance: float, adapters: tuple[Adapter, ...]) -> Film:
    """The film rendered as a draft: the draft's steps and guidance (every expert), its
    adapters on top of each scene's; the final values kept for `final_film`."""
    draft = Draft(steps, guidance, adapters, film.num_steps,
                  tuple(s.guidance for s in film.scenes))
    scenes = tuple(replace(s, guidance=tuple(guidance for _ in s.guidance)) for s in film.scenes)
    return replace(film, num_steps=steps, scenes=scenes, draft=draft)


def final_film(film: Film) -> Film:
    """A draft's final render: the same scenes and seeds, its own steps and guidance, no
    draft adapters. A final film is returned as it is."""
    d = film.draft
    if d is None:
        return film
    scenes = tuple(replace(s, guidance=g) for s, g in zip(film.scenes, d.final_guidance,
                                                          strict=True))
    return replace(film, num_steps=d.final_steps, scenes=scenes, draft=None)


def phase_adapters(film: Film, scene: Scene, expert: int) -> tuple[tuple[str, float], ...]:
    """(location, weight) of every adapter active on expert `expert` (its index) in the
    scene's phases: the scene's, then the draft's."""
    extra = film.draft.adapters if film.draft is not None else ()
    return tuple((a.location, a.weights[expert]) for a in (*scene.adapters, *extra)
                 if a.weights[expert])


def _exact_as_empty(speed: Speed) -> Speed:
    # One form for "exact everywhere", so exact films' records and keys stay as before.
    return () if all(s is None for s in speed) else speed


def _check_size(board: Storyboard, profile: ModelProfile) -> list[FieldError]:
    errors = []
    m = profile.size_multiple
    why = (f"its motion tokens pool 8x8 latents, VAE x{profile.vae_spatial}" if profile.size_align
           else f"VAE x{profile.vae_spatial} times patch {profile.patch}")
    for name in ("width", "height"):
        value = getattr(board, name)
        if value % m:
            errors.append(FieldError(name, (
                f"{value} is not a multiple of {m} (required by {profile.family}: {why}); "
                f"nearest valid: {or_list(nearest_multiples(value, m))}")))
    return errors


def _check_window_settings(prefix: str, window: int | None, overlap: int | None,
                           profile: ModelProfile) -> list[FieldError]:
    errors = []
    if window is not None and window > profile.max_window:
        errors.append(FieldError(f"{prefix}window", (
            f"{window} latent frames exceeds the {profile.family} limit of {profile.max_window} "
            f"({profile.frames} frames, the clip length the model was trained on)")))
    if window is not None and profile.motion_frames and window != profile.max_window:
        errors.append(FieldError(f"{prefix}window", (
            f"{profile.family} clips are {profile.max_window} latent frames (80 frames, as the "
            f"official code); allowed: {profile.max_window}")))
    if window is not None and overlap is not None and overlap >= window:
        errors.append(FieldError(f"{prefix}overlap",
                                 f"overlap {overlap} must be smaller than window {window}"))
    return errors


def _resolve_scene(i: int, spec: SceneSpec, board: Storyboard, profile: ModelProfile,
                   locator: Locator) -> tuple[Scene | None, list[FieldError]]:
    at = f"scenes[{i}]."
    num_frames, errors = _scene_frames(at, spec, board.fps)
    inputs, i_errors = resolve_inputs(at, spec, board, profile, locator)
    errors += i_errors
    carry, c_errors = _scene_carry(at, spec, profile)
    errors += c_errors
    guidance, g_errors = _scene_guidance(at, spec, profile)
    errors += g_errors
    errors += _check_window_settings(at, spec.window, spec.overlap, profile)
    window = spec.window or board.window or profile.max_window
    overlap = spec.overlap or board.overlap or min(profile.overlap, window - 1)
    own = spec.window is not None or spec.overlap is not None
    if overlap >= window and own and not errors:
        errors.append(FieldError(at + "overlap",
                                 f"overlap {overlap} must be smaller than window {window}"))
    continuity = spec.continuity
    if continuity == "chain" and not profile.supports_chain:
        chainable = sorted(other.family for other in PROFILES.values() if other.supports_chain)
        errors.append(FieldError(at + "continuity", (
            "'chain' needs a model that takes frames of the previous clip; "
            f"{profile.family} does not. "
            f"Families that support it: {', '.join(chainable)}")))
    if errors or num_frames is None:
        return None, errors
    conditioned = inputs.conditions or profile.always_conditioned
    # A scene that starts from another's frame is conditioned like one with `image:`.
    first_framed = conditioned or spec.start_from is not None
    if continuity is None:
        continuity = ("single" if latent_frames(num_frames) <= window
                      else "chain" if first_framed and profile.supports_chain else "windows")
    if continuity == "windows" and first_framed:
        given = ", ".join(n for n, _ in inputs.items() if n != "audio") or (
            f"start_from {spec.start_from}" if spec.start_from else "its conditioning")
        return None, [FieldError(at + "continuity", (
            f"parallel windows cannot share clip conditioning ({given} with {profile.family}); "
            "use 'chain' (or 'single')"))]
    if continuity == "chain" and not profile.motion_frames and window <= (carry - 1) // 4 + 1:
        return None, [FieldError(at + "window", (
            f"a chain carrying {carry} frame(s) needs windows of more than {(carry - 1) // 4 + 1} "
            f"latent frames; got {window}"))]
    if continuity == "single" and latent_frames(num_frames) > window:
        return None, [FieldError(at + "continuity", (
            f"'single' renders the scene as one window, but {num_frames} frames are "
            f"{latent_frames(num_frames)} latent frames, more than the window of {window}; "
            "use 'windows' or 'chain'"))]
    return Scene(
        id=spec.id, index=i, prompt=spec.prompt,
        negative_prompt=(spec.negative_prompt if spec.negative_prompt is not None
                         else board.negative_prompt) or profile.negative_prompt,
        num_frames=num_frames, seed=spec.seed, guidance=guidance, continuity=continuity,
        window=window, overlap=overlap, image=inputs.image, inputs=inputs, carry=carry,
        history=bool(profile.motion_frames), conditioned=conditioned,
        start_from=spec.start_from,
    ), []


def _scene_carry(at: str, spec: SceneSpec, profile: ModelProfile) -> tuple[int, list[FieldError]]:
    if not profile.carry:
        if spec.carry_frames is not None:
            return 1, [FieldError(at + "carry_frames", f"{profile.family} has no chain mode")]
        return 1, []
    if spec.carry_frames is None:
        return profile.carry[0], []
    if spec.carry_frames not in profile.carry:
        return 1, [FieldError(at + "carry_frames", (
            f"{profile.family} continues a clip from {or_list(profile.carry)} frame(s) of the "
            f"previous one; got {spec.carry_frames}"))]
    return spec.carry_frames, []


def _scene_frames(at: str, spec: SceneSpec, fps: int) -> tuple[int | None, list[FieldError]]:
    if (spec.frames is None) == (spec.seconds is None):
        return None, [FieldError(at + "frames", "give exactly one of 'frames' or 'seconds'")]
    if spec.frames is not None:
        if not is_valid_frame_count(spec.frames):
            return None, [FieldError(at + "frames", (
                f"{spec.frames} is not 4k+1 (1, 5, 9, ... 81, ...); nearest valid: "
                f"{or_list(nearest_frame_counts(spec.frames))}"))]
        return spec.frames, []
    exact = spec.seconds * fps
    n = round(exact)
    if abs(exact - n) > 1e-9 or not is_valid_frame_count(n):
        near = nearest_frame_counts(max(1, int(exact)))
        secs = or_list(tuple(f"{f / fps:g} s ({f} frames)" for f in near))
        return None, [FieldError(at + "seconds", (
            f"{spec.seconds:g} s at {fps} fps is {exact:g} frames, not 4k+1; "
            f"nearest valid: {secs}"))]
    return n, []


def _scene_guidance(at: str, spec: SceneSpec,
                    profile: ModelProfile) -> tuple[tuple[float, ...], list[FieldError]]:
    if spec.guidance is None:
        return profile.guidance, []
    if isinstance(spec.guidance, float | int):
        return tuple(float(spec.guidance) for _ in profile.experts), []
    unknown = sorted(set(spec.guidance) - set(profile.experts))
    if unknown:
        return profile.guidance, [FieldError(at + "guidance", (
            f"unknown expert(s) {', '.join(unknown)} for {profile.family}; "
            f"allowed: {', '.join(profile.experts)}"))]
    return tuple(float(spec.guidance.get(e, profile.guidance_for(e))) for e in profile.experts), []
