"""`reelfarm direct` without a usable LLM: exit 2 and one line saying what to do; bad flags."""

from __future__ import annotations

import sys

import pytest

from farm.cli import main


@pytest.fixture(autouse=True)
def no_llm_env(monkeypatch):
    for var in ("REELFARM_LLM_URL", "REELFARM_LLM_MODEL", "REELFARM_VLLM_PYTHON"):
        monkeypatch.delenv(var, raising=False)


def err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_a_logline_without_an_llm_says_which_flag(tmp_path, capsys):
    out = tmp_path / "f.yaml"
    assert main(["direct", "a fox in snow", "-o", str(out)]) == 2
    [line] = err_lines(capsys)
    assert "--llm-url" in line and "--llm-model" in line and not out.exists()


def test_a_python_without_vllm_says_what_to_install(tmp_path, capsys):
    # The worker really starts in this interpreter (the main venv, which has no vLLM).
    out = tmp_path / "f.yaml"
    rc = main(["direct", "a fox in snow", "--llm-model", str(tmp_path), "--vllm-python",
               sys.executable, "-o", str(out)])
    assert rc == 2 and not out.exists()
    [line] = err_lines(capsys)
    assert "cannot import vllm" in line and "make vllm" in line


def test_a_film_that_asks_for_extension_needs_an_llm(tmp_path, capsys):
    sb = tmp_path / "in.yaml"
    sb.write_text("title: t\nfps: 16\nwidth: 64\nheight: 64\ndirect: {extend_prompts: true}\n"
                  "scenes: [{id: a, prompt: a fox, frames: 5}]\n")
    assert main(["direct", "--storyboard", str(sb), "-o", str(tmp_path / "o.yaml")]) == 2
    [line] = err_lines(capsys)
    assert "extend_prompts" in line and "--llm-url" in line


def test_a_film_without_extension_needs_no_llm(tmp_path, capsys):
    sb = tmp_path / "in.yaml"
    sb.write_text("title: t\nfps: 16\nwidth: 64\nheight: 64\n"
                  "characters: [{id: fox, description: a small red fox}]\n"
                  "scenes: [{id: a, prompt: the fox runs, frames: 5}, "
                  "{id: b, prompt: snow falls, frames: 5}]\n")
    out = tmp_path / "sub" / "o.yaml"
    assert main(["direct", "--storyboard", str(sb), "-o", str(out)]) == 0
    text = out.read_text()
    assert text.count("a small red fox") == 2  # the bible entry and scene a only
    assert "original_prompt: the fox runs" in text


@pytest.mark.parametrize("flags, field", [
    (["--frames", "18"], "--frames"),
    (["--seconds-per-scene", "1"], "--seconds-per-scene"),   # 16 frames at 16 fps
    (["--model", "no-such-model"], "--model"),
    (["--scenes", "0"], "--scenes"),
    (["--model", "tiny-i2v-a14b"], "--model"),   # image-to-video: no first frames from a logline
])
def test_bad_film_flags_fail_before_any_llm_call(tmp_path, capsys, flags, field):
    out = tmp_path / "f.yaml"
    assert main(["direct", "x", "--llm-url", "http://127.0.0.1:9", *flags, "-o", str(out)]) == 2
    assert field in capsys.readouterr().err and not out.exists()


def test_logline_and_storyboard_are_exclusive(tmp_path, capsys):
    assert main(["direct", "-o", str(tmp_path / "f.yaml")]) == 2
    assert "LOGLINE or --storyboard" in capsys.readouterr().err
