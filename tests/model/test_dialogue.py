"""A dialogue scene rendered with the tiny S2V model: cut at the turns frame for frame, each
shot equal to a plain S2V scene of its speaker's photo and audio slice, and the mp4 carrying
the mixed track in sync over the whole dialogue (decoded back with PyAV)."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from farm.cli import main
from farm.media.audio import SAMPLE_RATE, decode_audio, film_track
from farm.media.probe import check_media
from farm.spec.film import resolve_film
from farm.spec.profiles import PROFILES
from farm.spec.storyboard import load_storyboard
from tests.media_files import write_image

pytestmark = pytest.mark.model
FPS, SEED = 16, 5
TONES = {"mira": 330.0, "sam": 523.0}
# mira speaks, sam answers, mira listens (a reaction shot) while sam goes on
TURNS = [{"speaker": "mira", "start": 0, "end": 0.5},
         {"speaker": "sam", "start": 0.55, "end": 0.8},
         {"speaker": "mira", "start": 0.85, "end": 1.4, "reaction": True}]


def rule(t: float) -> int:
    """The documented frame rule: the first frame starting at or after t (as written)."""
    return math.ceil(Fraction(str(t)) * FPS)


CUTS = [0] + [rule(t["start"]) for t in TURNS[1:]] + [rule(TURNS[-1]["end"])]


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Float stereo WAV, exact: (2, n) float32."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_f32le", rate=rate, layout="stereo")
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.T.reshape(1, -1)),
                                       format="flt", layout="stereo")
        f.sample_rate, f.pts, f.time_base = rate, 0, Fraction(1, rate)
        for p in [*s.encode(f), *s.encode()]:
            c.mux(p)
    return path


def speech(seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """The mixed track: each speaker's tone over its words (sam on to the end), and faint
    noise, so any shift of the track shows."""
    t = np.arange(round(seconds * rate)) / rate
    who = np.where(t < TURNS[1]["start"], TONES["mira"], TONES["sam"])
    tone = 0.3 * np.sin(2 * np.pi * who * t)
    noise = 0.05 * np.random.default_rng(0).standard_normal(len(t))
    return np.stack([tone + noise] * 2).astype(np.float32)


def board(model: str, **scene) -> dict:
    return {"title": "talk", "fps": FPS, "width": 64, "height": 64, "model": model, "steps": 2,
            "negative_prompt": "blurry",
            "scenes": [{"id": "talk", "prompt": "two people talk", "seed": SEED, **scene}]}


def render(folder: Path, story: dict) -> tuple[Path, Path]:
    (folder / "film.yaml").write_text(yaml.safe_dump(story))
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only contend on a shared machine
    try:
        assert main(["render", str(folder / "film.yaml"), "-o", str(folder / "out.mp4"),
                     "--frames-dir", str(folder / "frames")]) == 0
    finally:
        torch.set_num_threads(n)
    return folder / "out.mp4", folder / "frames"


def pngs(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))])


@pytest.fixture(scope="module")
def dialogue(tiny_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dialogue")
    write_image(tmp / "mira.png", 96, 80, seed=1)
    write_image(tmp / "sam.png", 80, 96, seed=2)
    write_wav(tmp / "talk.wav", speech(1.5), SAMPLE_RATE)
    model = tiny_dirs("s2v-14b")
    story = board(model, dialogue={
        "audio": "talk.wav", "turns": TURNS,
        "speakers": [{"id": "mira", "photo": "mira.png"}, {"id": "sam", "photo": "sam.png"}]})
    mp4, frames = render(tmp, story)
    return tmp, model, mp4, frames


def test_the_shots_are_cut_at_the_turns(dialogue):
    tmp, _, _, frames = dialogue
    shots = sorted(p.name for p in frames.iterdir() if p.is_dir())
    assert shots == ["talk-1-mira", "talk-2-sam", "talk-3-mira"]
    assert [len(pngs(frames / s)) for s in shots] == [b - a for a, b in pairwise(CUTS)]


def test_each_shot_is_its_speakers_plain_s2v_scene(dialogue, tmp_path):
    """The film's frames [c_k, c_k+1) are, bit for bit, a plain S2V scene of the speaker's
    photo and its slice of the track (silence for the reaction), rendered on its own."""
    src, model, _, frames = dialogue
    voice = decode_audio(str(src / "talk.wav"), 16000)  # the rate the model listens at
    scenes = []
    for k, (turn, (a, b)) in enumerate(zip(TURNS, pairwise(CUTS), strict=True)):
        part = voice[:, a * 16000 // FPS:b * 16000 // FPS]
        write_wav(tmp_path / f"{k}.wav", part * (0 if turn.get("reaction") else 1), 16000)
        (tmp_path / f"{turn['speaker']}.png").write_bytes((src / f"{turn['speaker']}.png")
                                                          .read_bytes())
        scenes.append({"id": f"p{k}", "prompt": "two people talk", "seed": SEED + k,
                       "frames": b - a, "image": f"{turn['speaker']}.png", "audio": f"{k}.wav"})
    story = board(model) | {"scenes": scenes}
    _, plain = render(tmp_path, story)
    film = np.concatenate([pngs(frames / d) for d in sorted(p.name for p in frames.iterdir())])
    alone = np.concatenate([pngs(plain / f"p{k}") for k in range(len(TURNS))])
    assert film.shape == alone.shape
    changed = [i for i in range(len(film)) if not np.array_equal(film[i], alone[i])]
    assert changed == []


def test_the_mp4_carries_every_frame_and_the_mixed_track_in_sync(dialogue):
    src, _, mp4, frames = dialogue
    with av.open(str(mp4)) as c:
        video = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    n_video = len(video)
    # the shots' frames in order (h264 at crf 18: a few levels off)
    film = np.concatenate([pngs(frames / d)[..., :3] for d in sorted(p.name for p in
                                                                      frames.iterdir())])
    assert np.abs(video.astype(int) - film).mean(axis=(1, 2, 3)).max() < 3
    with av.open(str(mp4)) as c:
        rate = c.streams.audio[0].rate
        pcm = np.concatenate([f.to_ndarray().reshape(-1, f.samples)[0]
                              for f in c.decode(audio=0)])
    assert n_video == CUTS[-1]
    want = CUTS[-1] * rate // FPS
    assert abs(len(pcm) - want) < 1024            # AAC codes frames of 1024 samples
    track = speech(1.5)[0, :want]
    # the track's shift in the mp4: 0 samples (the noise makes any shift show)
    lags = range(-2048, 2049)
    n = want - 4096
    score = [float(np.dot(pcm[2048 + lag:2048 + lag + n], track[2048:2048 + n])) for lag in lags]
    assert lags[int(np.argmax(score))] == 0
    # the reaction shot plays sam's voice (off screen), not its silent model input
    a, b = (c * rate // FPS for c in CUTS[2:4])
    spectrum = np.abs(np.fft.rfft(pcm[a:b]))
    freq = np.fft.rfftfreq(b - a, 1 / rate)
    assert abs(freq[np.argmax(spectrum)] - TONES["sam"]) < 2 * rate / (b - a)


def test_a_turn_past_the_end_of_the_audio_is_refused(dialogue, tmp_path):
    src, model, _, _ = dialogue
    write_wav(tmp_path / "short.wav", speech(1.2), SAMPLE_RATE)
    for name in ("mira.png", "sam.png"):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    story = board(model, dialogue={
        "audio": "short.wav", "turns": TURNS,
        "speakers": [{"id": "mira", "photo": "mira.png"}, {"id": "sam", "photo": "sam.png"}]})
    (tmp_path / "film.yaml").write_text(yaml.safe_dump(story))
    film = resolve_film(load_storyboard(tmp_path / "film.yaml"), PROFILES["s2v-14b"],
                        base_dir=tmp_path)
    errors = {e.path: e.message for e in check_media(film)}
    assert list(errors) == ["scenes[0].dialogue.turns[2].end"]
    assert "ends at 1.4 s, but short.wav has 1.2 s of audio" in errors[
        "scenes[0].dialogue.turns[2].end"]


def test_track_slices_meet_sample_exact_at_every_rate(tmp_path):
    """A dialogue's shots, as film_track plays them, are the track itself: no sample lost or
    repeated at a cut, also at a rate that does not divide 48 kHz."""
    from farm.spec.dialogue import audio_slice

    track = speech(2.0)
    path = str(write_wav(tmp_path / "t.wav", track, SAMPLE_RATE))
    for fps, cuts in ((16, [0, 9, 14, 23]), (7, [0, 5, 6, 11])):
        slots = [(b - a, audio_slice(path, a, b, fps)) for a, b in pairwise(cuts)]
        played = film_track(slots, fps)
        assert played.shape[1] == cuts[-1] * SAMPLE_RATE // fps
        np.testing.assert_array_equal(played, track[:, :played.shape[1]])


def test_per_speaker_tracks_are_summed_and_reactions_are_silent(tmp_path):
    from farm.spec.dialogue import audio_slice

    a, b = speech(1.0), speech(1.0)[:, ::-1].copy()
    pa = str(write_wav(tmp_path / "a.wav", a, SAMPLE_RATE))
    pb = str(write_wav(tmp_path / "b.wav", b, SAMPLE_RATE))
    both = (audio_slice(pa, 4, 9, FPS), audio_slice(pb, 4, 9, FPS))
    played = film_track([(5, both)], FPS)
    np.testing.assert_array_equal(played, (a + b)[:, 4 * 3000:9 * 3000])
    silent = decode_audio(audio_slice(pa, 4, 9, FPS, silent=True))
    assert silent.shape == (2, 5 * 3000) and not silent.any()
    past = decode_audio(audio_slice(pa, 14, 18, FPS))      # 1 s of audio: 0.875 .. 1.125 s
    np.testing.assert_array_equal(past[:, :6000], a[:, 14 * 3000:])
    assert not past[:, 6000:].any()                          # padded with silence
