"""`reelfarm direct --llm-model`: a REAL vLLM engine (vLLM's CPU build in .venv-vllm, made by
`make vllm` / .ci/vllm-env) on a tiny random-weight Llama built offline by the test. Random
weights are the weakest model there is: whatever it samples under structured output must
still make a valid storyboard, keep the original prompts and carry the bible."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from farm.cli.common import load_source
from farm.spec.storyboard import load_storyboard

ROOT = Path(__file__).resolve().parents[2]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
REELFARM = Path(sys.executable).with_name("reelfarm")

if not VLLM_PYTHON.is_file():
    if os.environ.get("CI"):
        raise RuntimeError(f"{VLLM_PYTHON} is missing: .ci/run must prepare it (.ci/vllm-env)")
    pytest.skip(".venv-vllm is absent (run `make vllm` to create it; CI always does)",
                allow_module_level=True)

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

MIRA = "a lighthouse keeper in her sixties with a grey braid and a yellow oilskin coat"
HARBOR = "a small stone harbor with red fishing boats under low clouds"
BIBLE = f"""\
- id: mira
  name: Mira
  description: {MIRA}
  references: [mira.png]
- id: harbor
  description: {HARBOR}
"""


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny-llm")
    res = subprocess.run([str(VLLM_PYTHON), str(Path(__file__).with_name("tiny_llm.py")),
                          str(out)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return out


def direct(*args: str, timeout: float = 420) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELFARM_LLM")}
    return subprocess.run([str(REELFARM), "direct", *args, "--vllm-python", str(VLLM_PYTHON),
                           "--llm-temperature", "1.0"], env=env, capture_output=True, text=True,
                          timeout=timeout)


def names(text: str, *words: str) -> bool:
    """The test's own reading of "names": a whole word, any case."""
    return any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text, re.IGNORECASE) for w in words)


def test_a_logline_on_a_random_model_makes_a_valid_storyboard(tiny_llm, tmp_path):
    (tmp_path / "mira.png").write_bytes(b"png")
    (tmp_path / "bible.yaml").write_text(BIBLE)
    out = tmp_path / "film.yaml"
    res = direct("A lighthouse keeper saves a ship in a storm", "--scenes", "3",
                 "--characters", str(tmp_path / "bible.yaml"), "--extend-prompts",
                 "--style", "35mm film", "--llm-model", str(tiny_llm), "-o", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    film = load_source(out).film  # the checks of `reelfarm validate`
    board = load_storyboard(out)
    assert [s.id for s in film.scenes] == ["s010", "s020", "s030"]
    assert (film.fps, film.width, film.height, film.model) == (16, 64, 64, "tiny")
    assert all(s.num_frames in range(5, 82, 4) for s in film.scenes)
    for scene, answer in zip(board.scenes, film.scenes, strict=True):
        assert answer.prompt == scene.prompt  # what renders
        assert scene.original_prompt and scene.original_prompt != scene.prompt
        assert "Camera: " in scene.prompt and "Lighting: " in scene.prompt  # extended
        # The LLM's own text: the extension, before the bible's sentences and the style.
        text = scene.prompt.split(f" Mira: {MIRA}")[0].split(f" harbor: {HARBOR}")[0]
        texts = (scene.original_prompt, text)
        cast = scene.characters or []
        mira = "mira" in cast or any(names(t, "mira") for t in texts)
        harbor = "harbor" in cast or any(names(t, "harbor") for t in texts)
        assert (MIRA in scene.prompt) == mira and (HARBOR in scene.prompt) == harbor
        assert scene.references is None  # t2v takes no reference images; the bible has them
        assert scene.prompt.endswith("Style: 35mm film.")


def test_a_storyboard_that_opts_in_is_extended_and_gets_the_bible(tiny_llm, tmp_path):
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "mira.png").write_bytes(b"png")
    src = tmp_path / "short.yaml"
    prompts = ["Mira climbs the lighthouse stairs", "a ship fights the waves near the harbor",
               "gulls circle in the wind"]
    scenes = "".join(f"  - {{id: s{i}0, prompt: {p}, frames: 9}}\n"
                     for i, p in enumerate(prompts, 1))
    src.write_text("title: Storm\nfps: 16\nwidth: 64\nheight: 64\nmodel: tiny\n"
                   "direct: {extend_prompts: true}\ncharacters:\n"
                   + "".join("  " + line + "\n" for line in
                             BIBLE.replace("[mira.png]", "[refs/mira.png]").splitlines())
                   + "scenes:\n" + scenes)
    out = tmp_path / "out" / "storm.yaml"
    res = direct("--storyboard", str(src), "--llm-model", str(tiny_llm), "-o", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    load_source(out)
    board = load_storyboard(out)
    assert [s.original_prompt for s in board.scenes] == prompts
    assert all("Camera: " in s.prompt and s.prompt != s.original_prompt for s in board.scenes)
    assert [MIRA in s.prompt for s in board.scenes] == [True, False, False]
    assert [HARBOR in s.prompt for s in board.scenes] == [False, True, False]
    assert board.scenes[0].references is None  # t2v: the bible keeps the image
    assert {c.id: c.references for c in board.characters}["mira"] == ["../refs/mira.png"]
    assert [s.characters for s in board.scenes] == [["mira"], ["harbor"], None]
