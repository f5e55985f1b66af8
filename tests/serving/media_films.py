"""One small film per media-conditioned family, with its media files: what the served and
the clustered renders are compared with (`reelfarm render` of the same storyboard).

Every film also has scene audio, so the deliverable's sound track is compared too, and a
rights statement for the photo it is made from (the credentials must carry it)."""

from __future__ import annotations

from pathlib import Path

from tests.media_files import write_image, write_tone, write_video

FPS = 16
W = H = 32
# family -> (size, scenes); sizes are the family's multiple (S2V pools motion by 64).
FILMS = {
    "i2v-a14b": (32, [{"id": "a", "frames": 9, "image": "start.png", "last_image": "end.png",
                       "audio": "voice.flac"}]),
    "ti2v-5b": (32, [{"id": "a", "frames": 9, "image": "start.png", "audio": "voice.flac"}]),
    "s2v-14b": (64, [{"id": "a", "frames": 9, "image": "hero.png", "audio": "voice.flac",
                      "pose_video": "pose.mp4"}]),
    "animate-14b": (32, [{"id": "a", "frames": 9, "references": ["hero.png"],
                          "pose_video": "pose.mp4", "face_video": "face.webm",
                          "audio": "voice.flac"}]),
    "vace-a14b": (32, [{"id": "a", "frames": 9, "references": ["hero.png", "prop.png"],
                        "control_video": "depth.webm", "mask": "start.png",
                        "audio": "voice.flac"}]),
}


def write_media(folder: Path) -> Path:
    write_image(folder / "hero.png", 24, 40, seed=1)
    write_image(folder / "prop.png", 40, 24, seed=2)
    write_image(folder / "start.png", W, H, seed=3)
    write_image(folder / "end.png", 48, 48, seed=4)
    write_video(folder / "pose.mp4", 40, 24, 48, 40, seed=5)
    write_video(folder / "face.webm", 26, FPS, 24, 24, seed=6)
    write_video(folder / "depth.webm", 17, FPS, W, H, seed=7)
    write_tone(folder / "voice.flac", 1.2)
    return folder


def storyboard(family: str) -> dict:
    size, scenes = FILMS[family]
    photo = "start.png" if scenes[0].get("image") == "start.png" else "hero.png"
    return {"title": family, "fps": FPS, "width": size, "height": size,
            "model": f"tiny-{family}", "steps": 2,
            "scenes": [{"prompt": f"shot {s['id']}", "seed": 1, **s} for s in scenes],
            "rights": [{"media": photo, "holder": "Jane Doe (pictured)",
                        "reference": "release RF-2291"}]}
