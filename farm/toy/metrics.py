"""Measures of a rendered toy clip (numpy only): what bench/quality.py reports.

Frames are (F, H, W, 3) uint8. The background of the toy data is plain or a top-to-bottom
gradient, so every row's median colour is its background (a shape covers under a third of
a row); pixels far from their row's median are foreground.

    colour      the foreground's median colour, named by the nearest shape colour
    centroids   the foreground's centre per frame, (F, 2) as (x, y); NaN without foreground
    direction   the least-squares velocity of the centroid, named by its larger axis
    kind        circle / square / triangle: per frame the shape template (any size, put on
                the foreground's centroid) of the largest IoU with the foreground, then the
                frames' majority
    shows       a character's colour and kind (farm.toy.data.CHARACTERS)
    jitter      mean |second difference| of the centroid (px / frame^2): 0 for steady motion
    seams       frame differences and centroid steps at segment boundaries vs elsewhere
"""

from __future__ import annotations

import numpy as np

from farm.toy.data import DIRECTIONS, KINDS, SHAPE_COLOURS, SIZE, Character, _sdf

FOREGROUND = 90  # summed |R|+|G|+|B| distance from the row's background colour


def foreground(frames: np.ndarray) -> np.ndarray:
    """(F, H, W) bool: pixels that differ from their row's median (the background)."""
    x = frames.astype(np.int32)
    bg = np.median(x, axis=2, keepdims=True)                           # (F, H, 1, 3)
    return np.abs(x - bg).sum(axis=-1) > FOREGROUND


def colour(frames: np.ndarray) -> str | None:
    """Name of the shape colour nearest the foreground's median colour (None: no shape)."""
    mask = foreground(frames)
    if mask.sum() < 10:
        return None
    rgb = np.median(frames[mask].astype(np.float64), axis=0)            # (3,)
    names = list(SHAPE_COLOURS)
    palette = np.array([SHAPE_COLOURS[n] for n in names], dtype=np.float64)
    return names[int(np.argmin(((palette - rgb) ** 2).sum(axis=1)))]


def centroids(frames: np.ndarray) -> np.ndarray:
    """(F, 2) foreground centre (x, y) per frame, pixels; NaN where a frame has none."""
    mask = foreground(frames)
    ys, xs = np.mgrid[0:frames.shape[1], 0:frames.shape[2]]
    n = mask.sum(axis=(1, 2)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (mask * xs).sum(axis=(1, 2)) / n
        cy = (mask * ys).sum(axis=(1, 2)) / n
    out = np.stack([cx, cy], axis=1)
    out[n < 3] = np.nan
    return out


def velocity(frames: np.ndarray) -> np.ndarray:
    """(vx, vy) px/frame: least-squares slope of the centroid over the frames that have one."""
    c = centroids(frames)
    ok = ~np.isnan(c[:, 0])
    if ok.sum() < 2:
        return np.zeros(2)
    t = np.arange(len(c))[ok]
    return np.array([np.polyfit(t, c[ok, k], 1)[0] for k in range(2)])


def direction(frames: np.ndarray) -> str | None:
    """left / right / up / down by the velocity's larger component (None: no motion)."""
    v = velocity(frames)
    if not np.any(v):
        return None
    axis = int(np.argmax(np.abs(v)))
    sign = int(np.sign(v[axis]))
    return next(name for name, d in DIRECTIONS.items() if d[axis] == sign)


def moves_along(frames: np.ndarray, stated: str) -> bool:
    """The issue's direction test: the centroid's motion along the stated axis has its sign."""
    return float(np.dot(velocity(frames), DIRECTIONS[stated])) > 0


def jitter(frames: np.ndarray) -> float:
    """Mean |second difference| of the centroid, px/frame^2 (steady motion: ~0)."""
    c = centroids(frames)
    acc = np.linalg.norm(np.diff(c, n=2, axis=0), axis=1)
    acc = acc[~np.isnan(acc)]
    return float(acc.mean()) if len(acc) else float("nan")


def seams(frames: np.ndarray, boundaries: list[int]) -> tuple[float, float]:
    """(seam ratio, centroid jump) of a clip whose segments start at frames `boundaries`.

    seam ratio = mean |frame[b] - frame[b-1]| over boundaries / the same mean elsewhere;
    centroid jump = the largest centroid step across a boundary / the median step elsewhere.
    """
    x = frames.astype(np.float64)
    diff = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2, 3))              # diff[i]: i -> i+1
    at = np.zeros(len(diff), dtype=bool)
    at[[b - 1 for b in boundaries]] = True
    ratio = float(diff[at].mean() / max(diff[~at].mean(), 1e-9))
    step = np.linalg.norm(np.diff(centroids(frames), axis=0), axis=1)   # NaN if no centroid
    inner = step[~at & ~np.isnan(step)]
    across = step[at & ~np.isnan(step)]
    if len(across) == 0 or len(inner) == 0:
        return ratio, float("nan")
    return ratio, float(across.max() / max(np.median(inner), 1e-6))


def _templates() -> list[tuple[str, np.ndarray, float, float]]:
    """(kind, mask centred at SIZE / 2, centroid offset x, y) for half-sizes 5 to 15 px."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5 - SIZE / 2
    out = []
    for kind in KINDS:
        for r in np.arange(5.0, 15.0, 0.5):
            mask = _sdf(kind, xx, yy, float(r)) < 0
            ys, xs = np.nonzero(mask)
            out.append((kind, mask, xs.mean() + 0.5 - SIZE / 2, ys.mean() + 0.5 - SIZE / 2))
    return out


_TEMPLATES: list[tuple[str, np.ndarray, float, float]] = []


def frame_kind(mask: np.ndarray) -> str | None:
    """The kind whose template, centroid on the mask's centroid, overlaps (H, W) `mask` best
    (IoU over sizes); None under 10 foreground pixels."""
    if mask.sum() < 10:
        return None
    if not _TEMPLATES:
        _TEMPLATES.extend(_templates())
    ys, xs = np.nonzero(mask)
    cx, cy = xs.mean() + 0.5 - SIZE / 2, ys.mean() + 0.5 - SIZE / 2
    best, best_iou = None, -1.0
    for kind, template, ox, oy in _TEMPLATES:
        shifted = np.roll(template, (int(round(cy - oy)), int(round(cx - ox))), axis=(0, 1))
        iou = (shifted & mask).sum() / (shifted | mask).sum()
        if iou > best_iou:
            best, best_iou = kind, iou
    return best


def kind(frames: np.ndarray) -> str | None:
    """The kind most frames show (frame_kind); None if no frame has a shape."""
    votes: dict[str, int] = {}
    for mask in foreground(frames):
        if (k := frame_kind(mask)) is not None:
            votes[k] = votes.get(k, 0) + 1
    return max(votes, key=votes.__getitem__) if votes else None


def shows(frames: np.ndarray, character: Character) -> bool:
    """The clip shows the character: its colour and its kind."""
    return colour(frames) == character.colour and kind(frames) == character.kind
