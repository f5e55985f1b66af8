"""examples/media/ is what tests/docs/example_media.py makes: small, and reproducible."""

from __future__ import annotations

import av
import numpy as np

from tests.docs.example_media import ROOT, make

MEDIA = ROOT / "examples" / "media"


def _frames(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def test_example_media_is_small_and_made_by_the_script(tmp_path):
    made = make(tmp_path)
    names = sorted(str(p.relative_to(tmp_path)) for p in made)
    shipped = sorted(str(p.relative_to(MEDIA)) for p in MEDIA.rglob("*")
                     if p.is_file() and p.suffix != ".yaml")
    assert shipped == names, "examples/media holds exactly what example_media.py makes"
    assert sum((MEDIA / n).stat().st_size for n in names) < 200_000
    for name in names:
        ours, theirs = (MEDIA / name), (tmp_path / name)
        if ours.suffix == ".mp4":   # encoder builds may differ in bits, not in pictures
            a, b = _frames(ours), _frames(theirs)
            assert a.shape == b.shape and np.abs(a.astype(int) - b).mean() < 1.0, name
        else:
            assert ours.read_bytes() == theirs.read_bytes(), (
                f"{name} differs from what `python tests/docs/example_media.py` makes now")
