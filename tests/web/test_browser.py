"""The web monitor in a real browser: Debian's headless Chromium driven by playwright-core
(clients/web-tests/scenario.js, run through node). The scenario signs in with a token,
watches a rendering film's progress change in the films table, sorts it from the
keyboard, cancels that film from its page, resumes a paused film and follows it to the
end (progress, Gantt bars, a decoded preview frame, the mp4 download button), has the
API refuse a priority, re-renders a frame range, and reads the pools page; on every page
it checks accessible names (Chromium's accessibility tree) and that Tab reaches every
control. Screenshots of the three pages are written to the test's tmp dir."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from farm.api.errors import InvalidArgument
from farm.api.protos import pb
from tests.web.helpers import board

pytestmark = [pytest.mark.web, pytest.mark.model]

WEB_TESTS = Path(__file__).resolve().parents[2] / "clients" / "web-tests"


def _browser_tools() -> str:
    """Chromium's path; skips (fails under CI, which installs them) without the tools."""
    chromium = shutil.which("chromium")
    missing = [name for name, ok in (
        ("chromium (apt-get install chromium)", chromium),
        ("node", shutil.which("node")),
        ("playwright-core (npm ci in clients/web-tests)",
         (WEB_TESTS / "node_modules" / "playwright-core").is_dir())) if not ok]
    if missing:
        message = f"browser test needs {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return chromium


def _wait_state(handle, word: str, timeout: float = 60.0) -> None:
    from farm.api import convert

    deadline = time.monotonic() + timeout
    while convert.state_word(handle.get().state) != word:
        assert time.monotonic() < deadline, f"{handle.name} not {word} after {timeout} s"
        time.sleep(0.1)


def _run_scenario(args: dict) -> dict:
    proc = subprocess.run(["node", "scenario.js", json.dumps(args)], cwd=WEB_TESTS,
                          capture_output=True, text=True, timeout=600)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and lines, \
        f"node exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(lines[-1])
    assert "failure" not in report, f"{report['failure']}\n{json.dumps(report, indent=1)[:4000]}"
    return report


def _frames(progress: list[str]) -> list[int]:
    return [int(re.search(r"(\d+) / \d+", s).group(1)) for s in progress]


def test_monitor_in_headless_chromium(web_farm, connect, tmp_path):
    chromium = _browser_tools()
    server, _, web = web_farm
    client = connect("carol")
    paused = client.submit(board(scenes=5, title="Paused trailer"), priority=60)
    paused.pause()
    _wait_state(paused, "PAUSED")
    running = client.submit(board(scenes=12, frames=17, title="Long film"), priority=40)
    report = _run_scenario({"url": web.url, "token": "carol-token-0123456789abcdef",
                            "running": running.name.split("/")[1], "rerender_scene": "s1",
                            "paused": paused.name.split("/")[1], "out": str(tmp_path),
                            "chromium": chromium})
    print(f"browser steps (seconds): {report['seconds']}")
    for page, shot in report["screenshots"].items():
        assert Path(shot).stat().st_size > 10_000, shot
        print(f"screenshot of the {page} page: {shot}")
    assert report["errors"] == [], "uncaught errors in the page"
    assert report["whoami"].strip() == "tenant carol"
    _check_films_page(report, running, paused)
    _check_followed_film(report, paused)
    _check_controls(report, server, paused)
    _check_pools_page(report)
    _check_accessibility(report)


def _check_films_page(report: dict, running, paused) -> None:
    """Live without a reload; sorted by priority from the keyboard; a cancel from the page."""
    assert report["films_live"]["changed"], report["films_live"]
    ids = {"running": running.name.split("/")[1], "paused": paused.name.split("/")[1]}
    assert report["sorted"]["ascending"] == [ids["running"], ids["paused"]]  # 40, 60
    assert report["sorted"]["descending"] == [ids["paused"], ids["running"]]
    assert report["cancel"]["before"] in ("QUEUED", "RUNNING")
    assert report["cancel"]["after"] == "CANCELLED"
    assert running.get().state == pb.Film.STATE_CANCELLED  # the API agrees


def _check_followed_film(report: dict, paused) -> None:
    """Resumed from its page and followed to the end: progress, bars, preview, download."""
    assert report["paused_state"] == "PAUSED"
    frames = _frames(report["progress"])
    assert frames == sorted(frames) and frames[-1] == 45, report["progress"]
    assert report["progress"][-1].startswith("SUCCEEDED")
    assert any(frames[0] < f < 45 for f in frames), f"no progress seen in between: {frames}"
    assert report["preview"]["width"] == 32 and report["preview"]["height"] == 32
    assert 0 <= report["preview"]["film_index"] < 45
    phases = [b for b in report["bars"] if b["kind"] == "phase"]
    assert len(phases) == paused.get().phases_total == 10
    assert {b["expert"] for b in phases} == {"high", "low"}
    assert {b["row"] for b in phases} == {f"s{i}/u0" for i in range(5)}
    assert {b["row"] for b in report["bars"] if b["kind"] == "decode"} == {
        f"s{i}/u0" for i in range(5)}
    assert set(report["worker_rows"]) == {"local", "decode"}
    assert report["download_label"].startswith("Download film.mp4")


def _check_controls(report: dict, server, paused) -> None:
    """The API's own refusal, word for word; a re-render of frames 3..5 of s1."""
    with pytest.raises(InvalidArgument) as refused:
        server.api.update_film(pb.UpdateFilmRequest(
            film=pb.Film(name=paused.name, priority=101), update_mask={"paths": ["priority"]}),
            "carol")
    assert f"(INVALID_ARGUMENT): {refused.value}" in report["priority_error"]
    assert report["rerender"]["error"] == ""
    assert "SUCCEEDED" in report["rerender"]["states"]
    assert report["rerender"]["phases_after"] == report["rerender"]["phases_before"] + 2
    runs = [(e.unit_id, e.phase_index) for e in paused.executions()
            if e.kind == pb.Execution.KIND_PHASE]
    assert runs.count(("s1/u0", 0)) == 2 and runs.count(("s0/u0", 0)) == 1


def _check_pools_page(report: dict) -> None:
    """The local worker holds everything of the one model served (by the model's name:
    workers are namespaced by model); slots per expert 1 : 1."""
    assert [w["id"] for w in report["workers"]] == ["local"]
    assert report["workers"][0]["cells"][2] == "tiny/high, tiny/low, tiny/text, tiny/vae"
    assert any("Pool slots" in row and "high 1 : low 1" in row for row in report["split"])


def _check_accessibility(report: dict) -> None:
    for page in ("films", "film", "pools"):
        a11y, tab = report["a11y"][page], report["tab"][page]
        assert a11y["checked"] > 3 and a11y["unnamed"] == [], (page, a11y)
        assert a11y["lang"] == "en" and a11y["images_without_alt"] == 0, (page, a11y)
        assert a11y["inputs_without_label"] == [], (page, a11y)
        assert tab["missing"] == [] and len(tab["reached"]) == len(tab["focusable"]), (page, tab)
    assert report["signin_a11y"]["unnamed"] == []
