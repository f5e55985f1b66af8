"""Continuity across cuts: a scene with `start_from: a` equals the same scene rendered on
its own with `image:` set to a PNG of scene a's last delivered frame (same seed, same id).

    film:  a ──last frame──> b (start_from: a)      c (independent)
    hand:  render a alone ─> a's last frame as PNG ─> render b alone with image: that PNG
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from farm.cli import main

pytestmark = pytest.mark.model
W, H, STEPS = 64, 64, 4


def render(tmp_path, name: str, folder: str, scenes: list[dict]) -> dict[str, np.ndarray]:
    """Frames of each scene of a film rendered by `reelfarm render`."""
    story = {"title": name, "fps": 16, "width": W, "height": H, "model": folder,
             "steps": STEPS, "scenes": scenes}
    root = tmp_path / name
    root.mkdir()
    (root / "film.yaml").write_text(yaml.safe_dump(story))
    assert main(["render", str(root / "film.yaml"), "-o", str(root / "out.mp4"),
                 "--frames-dir", str(root / "frames")]) == 0
    out = {}
    for s in scenes:
        paths = sorted((root / "frames" / s["id"]).glob("*.png"))
        assert len(paths) == s["frames"]
        out[s["id"]] = np.stack([np.asarray(Image.open(p)) for p in paths])
    return out


def by_hand(tmp_path, folder: str, a: dict, b: dict) -> np.ndarray:
    """Scene a alone; its last frame written as a PNG; scene b alone with `image:` it."""
    first = render(tmp_path, "alone-a", folder, [a])[a["id"]]
    Image.fromarray(first[-1]).save(tmp_path / "last.png")
    given = {k: v for k, v in b.items() if k != "start_from"}
    given["image"] = str(tmp_path / "last.png")
    return render(tmp_path, "alone-b", folder, [given])[b["id"]]


@pytest.mark.parametrize("family", ["i2v-a14b", "vace-a14b"])
def test_start_from_equals_the_last_frame_given_as_image(family, tiny_dirs, tmp_path):
    folder = tiny_dirs(family)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    a = {"id": "a", "prompt": "a boat on a lake", "frames": 9, "seed": 3,
         "image": str(tmp_path / "a.png")}
    # b is a chain of two clips: its own edge (u0 -> u1) on top of the cut's (a -> u0)
    b = {"id": "b", "prompt": "the boat reaches the shore", "frames": 13, "seed": 7,
         "start_from": "a", "continuity": "chain", "window": 2}
    c = {"id": "c", "prompt": "a bird", "frames": 5, "seed": 2, "image": str(tmp_path / "a.png")}
    film = render(tmp_path, "film", folder, [a, c, b])
    hand = by_hand(tmp_path, folder, a, b)
    assert film["b"].shape == hand.shape
    # The same computation from the same uint8 frame: bit for bit.
    np.testing.assert_array_equal(film["b"], hand)
    # and the cut really continues: b's first frame is a's last one, re-encoded
    assert np.abs(film["b"][0].astype(int) - film["a"][-1].astype(int)).mean() < 40


def test_ti2v_start_from_a_text_only_scene(tiny_dirs, tmp_path):
    folder = tiny_dirs("ti2v-5b")
    a = {"id": "a", "prompt": "a boat on a lake", "frames": 9, "seed": 3}
    b = {"id": "b", "prompt": "the boat reaches the shore", "frames": 9, "seed": 7,
         "start_from": "a"}
    film = render(tmp_path, "film", folder, [a, b])
    np.testing.assert_array_equal(film["b"], by_hand(tmp_path, folder, a, b))


def test_rerender_of_the_source_rerenders_its_dependant_and_the_log_says_so(tmp_path):
    """a ── b (start_from a), c between them: a re-render of a renders b again (same
    frames) and keeps c's frames on disk untouched."""
    from tests.helpers import make_film, scene

    film = make_film([scene("a", 9, seed=1), scene("c", 5, seed=2),
                      scene("b", 9, seed=3, start_from="a")], "ti2v-5b", model="tiny-ti2v-5b",
                     steps=3, width=32, height=32)
    events = check_rerender_of_a(film, "tiny-ti2v-5b", tmp_path)
    (reopened,) = [e for e in events if "re-render of a" in e.message]
    assert reopened.message == ("re-render of a frames 0..8: units a/u0, b/u0 (film frames "
                                "0..8, 14..22); dependants re-rendered too: b/u0")


def check_rerender_of_a(film, model: str, tmp_path) -> list:
    """Render `film` (scenes a, c, b: b starts from a) on a durable local director, then
    frames 0..8 of a again: b renders again too with the same frames, c stays on disk
    untouched, a's and b's files are written again. The re-render's events."""
    from farm.local import local_director
    from farm.sched.output import FilmState

    d = local_director(model, tmp_path / "art", db=f"sqlite:///{tmp_path}/jobs.db").start()
    try:
        info = d.create_film(film, tenant="t")
        assert list(d.watch(info.film_id, "t", timeout=120))[-1].state == FilmState.SUCCEEDED
        frames = tmp_path / "art" / "films" / info.film_id / "frames"
        before = {p.relative_to(frames): (p.read_bytes(), p.stat().st_mtime_ns)
                  for p in frames.rglob("*.png")}
        seen = len(d._entry(info.film_id, "t").events)
        d.rerender(info.film_id, "t", "a", 0, 8)
        events = list(d.watch(info.film_id, "t", after=seen - 1, timeout=120))
        assert events[-1].state == FilmState.SUCCEEDED
        assert any("dependants re-rendered too: b/u0" in e.message for e in events)
        runs = [x.unit_id for x in d.executions(info.film_id, "t") if x.kind == "phase"]
        assert runs.count("a/u0") == runs.count("b/u0") == 2 * runs.count("c/u0")
        after = {p.relative_to(frames): (p.read_bytes(), p.stat().st_mtime_ns)
                 for p in frames.rglob("*.png")}
        assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
        for key, (_, mtime) in after.items():  # c kept on disk, a and b written again
            assert (mtime == before[key][1]) == (key.parts[0] == "c"), key
        return events
    finally:
        d.stop()
