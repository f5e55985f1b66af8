"""`reelfarm direct`: write a storyboard from a logline with an LLM (vLLM structured output),
or finish an existing one (prompt extension, character bible). Exit 0 written, 1 the LLM
failed, 2 bad input or no LLM available (one line says what to install or pass). Nothing
is written unless it passed `reelfarm validate`'s checks."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from farm.cli.common import print_spec_error
from farm.spec.errors import FieldError, SpecError
from farm.spec.frames import is_valid_frame_count, nearest_frame_counts, or_list
from farm.spec.profiles import ModelProfile, profile_for
from farm.spec.storyboard import (
    Character,
    DirectSpec,
    load_storyboard,
    parse_document,
    parse_storyboard,
)
from farm.story.brief import Brief, Settings
from farm.story.llm import LlmUnavailable, LocalVllm, OpenAiServer, find_vllm_python
from farm.story.writer import StoryError, finish, rebase, rebased, to_yaml


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("direct", help="write a storyboard from a logline with an LLM (vLLM)",
                            description=__doc__)
    parser.add_argument("logline", nargs="?", help="the film in a sentence")
    parser.add_argument("--storyboard", help="finish this storyboard instead (extension if its "
                                             "`direct.extend_prompts` is on, and the bible)")
    parser.add_argument("-o", "--output", required=True, help="storyboard to write (.yaml)")
    parser.add_argument("--scenes", type=int, default=3, help="number of scenes (default 3)")
    parser.add_argument("--style", help="visual style, added to every prompt")
    parser.add_argument("--extend-prompts", action="store_true",
                        help="Wan-style detailed prompts (sets direct.extend_prompts)")
    parser.add_argument("--characters", help="the bible: YAML list of {id, name, description, "
                                             "references}; default: the LLM invents one")
    parser.add_argument("--max-characters", type=int, default=3,
                        help="most characters the LLM may invent (0: none; default 3)")
    film = parser.add_argument_group("film (with a logline; a --storyboard keeps its own)")
    film.add_argument("--model", default=None, help="tiny | tiny-<family> | a model folder "
                                                    "(default tiny)")
    film.add_argument("--fps", type=int, help="default: the family's (16 for A14B)")
    film.add_argument("--width", type=int, help="default 64 for tiny models, else 832")
    film.add_argument("--height", type=int, help="default 64 for tiny models, else 480")
    film.add_argument("--steps", type=int)
    film.add_argument("--negative-prompt", default="")
    film.add_argument("--frames", type=int, help="frames per scene (4k+1); default: the LLM "
                                                 "chooses 4k+1 counts up to one window")
    film.add_argument("--seconds-per-scene", type=float, help="instead of --frames")
    film.add_argument("--seed", type=int, default=0, help="scene i gets seed+i (and the LLM's)")
    llm = parser.add_argument_group("LLM")
    llm.add_argument("--llm-url", default=os.environ.get("REELFARM_LLM_URL"),
                     help="OpenAI-compatible server (vllm serve, Ray Serve LLM); "
                          "$REELFARM_LLM_URL")
    llm.add_argument("--llm-model", default=os.environ.get("REELFARM_LLM_MODEL"),
                     help="model folder for a local vLLM engine; $REELFARM_LLM_MODEL")
    llm.add_argument("--llm-served-model", help="model name on the server (default: its first)")
    llm.add_argument("--llm-api-key", default=os.environ.get("REELFARM_LLM_API_KEY"))
    llm.add_argument("--llm-temperature", type=float, default=0.7)
    llm.add_argument("--llm-max-tokens", type=int, help="cap per answer (server path)")
    llm.add_argument("--llm-max-model-len", type=int, help="context length (local engine)")
    llm.add_argument("--vllm-python", help="Python with vLLM (default: $REELFARM_VLLM_PYTHON, "
                                           "this one, or .venv-vllm)")
    llm.add_argument("--verbose", action="store_true", help="show the engine's log")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if (args.logline is None) == (args.storyboard is None):
        print("error: give a LOGLINE or --storyboard FILE (one of them)", file=sys.stderr)
        return 2
    out = Path(args.output)
    args.llm = None
    try:
        text = _finish_storyboard(args, out) if args.storyboard else _write_from_logline(args, out)
    except SpecError as exc:
        print_spec_error(exc, args.storyboard or "the command line")
        return 2
    except LlmUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoryError as exc:
        print(f"error: {exc}\nnothing written", file=sys.stderr)
        return 1
    finally:
        if args.llm is not None:
            args.llm.close()
    _write_atomic(out, text)
    _summary(out)
    return 0


def _profile(model: str) -> ModelProfile:
    from farm.model.loader import resolve_model

    try:
        return profile_for(resolve_model(model).family)
    except ValueError as exc:
        raise SpecError([FieldError("--model", str(exc))]) from None


def _make_llm(args: argparse.Namespace, why: str):
    if args.llm_url:
        args.llm = OpenAiServer(args.llm_url, model=args.llm_served_model,
                                api_key=args.llm_api_key, temperature=args.llm_temperature,
                                seed=args.seed, max_tokens=args.llm_max_tokens)
        return args.llm
    if not args.llm_model:
        raise LlmUnavailable(f"{why}: pass --llm-url URL (an OpenAI-compatible vLLM server) or "
                           "--llm-model DIR (a local vLLM engine)")
    python = find_vllm_python(args.vllm_python)
    args.llm = LocalVllm(args.llm_model, python, temperature=args.llm_temperature,
                         seed=args.seed, max_model_len=args.llm_max_model_len,
                         verbose=args.verbose)
    return args.llm


def _settings(args: argparse.Namespace, model: str, profile: ModelProfile) -> Settings:
    tiny = model.startswith("tiny")
    fps = args.fps or profile.fps
    frames = args.frames
    if args.seconds_per_scene is not None:
        exact = args.seconds_per_scene * fps
        frames = round(exact)
        if abs(exact - frames) > 1e-9 or not is_valid_frame_count(frames):
            near = nearest_frame_counts(max(1, int(exact)))
            raise SpecError([FieldError("--seconds-per-scene", (
                f"{args.seconds_per_scene:g} s at {fps} fps is {exact:g} frames, not 4k+1; "
                f"nearest valid: {or_list(tuple(f'{n / fps:g} s' for n in near))}"))])
    elif frames is not None and not is_valid_frame_count(frames):
        raise SpecError([FieldError("--frames", f"{frames} is not 4k+1; nearest valid: "
                                                f"{or_list(nearest_frame_counts(frames))}")])
    return Settings(fps=fps, width=args.width or (64 if tiny else 832),
                    height=args.height or (64 if tiny else 480), model=model, steps=args.steps,
                    negative_prompt=args.negative_prompt, frames=frames, seed=args.seed)


def load_bible(path: str, out_dir: Path) -> tuple[Character, ...]:
    """A bible file (a list of characters, or {characters: [...]}) with its reference paths
    made relative to `out_dir`; SpecError names every bad entry or missing image."""
    text = Path(path).read_text(encoding="utf-8")
    data = parse_document(text, Path(path).suffix.lower())
    items = data.get("characters") if isinstance(data, dict) else data
    board = parse_storyboard({"title": "bible", "fps": 1, "width": 1, "height": 1,
                              "scenes": [{"id": "s", "prompt": "-"}], "characters": items})
    errors = [FieldError(f"{path}: characters[{i}].references[{j}]", f"no such file: {ref}")
              for i, ch in enumerate(board.characters) for j, ref in enumerate(ch.references)
              if not (Path(path).parent / ref).is_file()]
    if errors:
        raise SpecError(errors)
    src = Path(path).parent
    return tuple(ch.model_copy(update={"references": [rebase(r, src, out_dir)
                                                       for r in ch.references]})
                 for ch in board.characters)


def _write_from_logline(args: argparse.Namespace, out: Path):
    from farm.story.writer import write_storyboard

    model = args.model or "tiny"
    profile = _profile(model)
    settings = _settings(args, model, profile)
    if args.scenes < 1:
        raise SpecError([FieldError("--scenes", "must be at least 1")])
    if profile.requires_image:
        raise SpecError([FieldError("--model", (
            f"{profile.family} needs media in every scene ({', '.join(sorted(profile.requires))}), "
            "which a logline does not give: write the film for a text-to-video family, add "
            "them, then render"))])
    characters = load_bible(args.characters, out.parent) if args.characters else ()
    brief = Brief(logline=args.logline, scenes=args.scenes, style=args.style,
                  extend_prompts=args.extend_prompts, characters=characters,
                  max_characters=args.max_characters)
    llm = _make_llm(args, "writing a storyboard needs an LLM")
    return write_storyboard(llm, brief, profile, settings, out.parent)


def _finish_storyboard(args: argparse.Namespace, out: Path):
    src = Path(args.storyboard)
    board = rebased(load_storyboard(src), src.parent, out.parent)
    direct = dict(board.direct.model_dump() if board.direct else {})
    if args.extend_prompts:
        direct["extend_prompts"] = True
    if args.style:
        direct["style"] = args.style
    if direct:
        board = board.model_copy(update={"direct": DirectSpec(**direct)})
    profile = _profile(board.model)
    llm = None
    if board.direct is not None and board.direct.extend_prompts:
        llm = _make_llm(args, "this film asks for prompt extension (direct.extend_prompts)")
    return to_yaml(finish(board, llm), profile, out.parent)


def _write_atomic(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)


def _summary(out: Path) -> None:
    board = load_storyboard(out)
    frames = sum(s.frames or 0 for s in board.scenes)
    who = ", ".join(c.name or c.id for c in board.characters) or "none"
    print(f"wrote {out}: {board.title!r}, {len(board.scenes)} scenes, {frames} frames, "
          f"{board.width}x{board.height} at {board.fps} fps; characters: {who}")
