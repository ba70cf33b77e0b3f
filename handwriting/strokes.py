"""The one stroke representation of the project, and every conversion into and out of it (numpy only).

Convention
----------
A handwriting sequence is an ``(N, 3)`` float array of ``(dx, dy, end_of_stroke)`` rows — the form used by
Graves (2013, arXiv:1308.0850 §4): row ``i`` holds the pen's move from point ``i-1`` to point ``i`` (row 0
holds the first point's position relative to the origin), and ``end_of_stroke`` is 1 on the last point of
each stroke (the pen lifts after it), else 0.  The last row always has ``end_of_stroke = 1``.

Coordinates: x grows to the right and **y grows upwards** (loaders of formats whose y grows downwards flip
it), so ``plt.plot(x, y)`` shows the writing the right way up.  Units are those of the source data set
(bigbank: a word is about 0.3 units high); models see offsets divided by a :class:`Normalizer` fitted on
their training data, and that normalizer is saved beside the data and in every checkpoint.

Everything that derives offsets from absolute points, or the reverse, lives here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .errors import DataError

__all__ = [
    "Sample",
    "Normalizer",
    "StrokeError",
    "check_offsets",
    "to_offsets",
    "to_absolute",
    "from_strokes",
    "to_strokes",
    "stroke_slices",
    "bounds",
    "resample",
    "downsample",
    "denoise",
    "align",
    "shear",
    "scale",
    "rotate",
    "drop_points",
    "reorder_late_marks",
    "augment",
    "AugmentConfig",
    "stitch",
]


class StrokeError(DataError):
    """A sequence that breaks the stroke convention; the message says where and how to fix it."""


@dataclass
class Sample:
    """One piece of handwriting: offsets in the project convention plus its transcription."""

    offsets: np.ndarray
    text: str = ""
    writer: str | None = None
    source: str | None = None  # e.g. "bigbank_3500.json#17", "a01-000u-01.xml"

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def num_strokes(self) -> int:
        return int(self.offsets[:, 2].sum())

    def replace(self, **changes) -> "Sample":
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------------------------------------
# validation and conversions


def check_offsets(offsets: np.ndarray, where: str = "sequence") -> np.ndarray:
    """Return ``offsets`` as float32 ``(N, 3)`` or raise :class:`StrokeError` naming ``where`` and the row."""
    arr = np.asarray(offsets)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise StrokeError(f"{where}: expected an (N, 3) array of (dx, dy, end_of_stroke), got shape {arr.shape}")
    if len(arr) == 0:
        raise StrokeError(f"{where}: the sequence is empty; drop the sample or record at least one point")
    arr = arr.astype(np.float32, copy=False)
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise StrokeError(f"{where}: row {i} holds a non-finite value {arr[i].tolist()}; clean or drop the sample")
    eos = arr[:, 2]
    notbit = (eos != 0) & (eos != 1)
    if notbit.any():
        i = int(np.argmax(notbit))
        raise StrokeError(f"{where}: row {i} has end_of_stroke={float(eos[i])!r}; it must be 0 or 1")
    if eos[-1] != 1:
        raise StrokeError(f"{where}: the last row must end a stroke (end_of_stroke=1); set offsets[-1, 2] = 1")
    return arr


def to_offsets(points: np.ndarray) -> np.ndarray:
    """Absolute ``(N, 3)`` rows ``(x, y, end_of_stroke)`` → offsets (first row relative to the origin).

    Computed in float64; for coordinates on a grid (integers, or fixed-point values such as IAM's) the round
    trip through :func:`to_absolute` is exact.
    """
    pts = np.asarray(points, dtype=np.float64)
    out = np.empty_like(pts)
    out[:, :2] = np.diff(pts[:, :2], axis=0, prepend=np.zeros((1, 2)))
    out[:, 2] = pts[:, 2]
    return out


def to_absolute(offsets: np.ndarray, origin: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """Offsets → absolute ``(N, 3)`` rows ``(x, y, end_of_stroke)`` (float64)."""
    off = np.asarray(offsets, dtype=np.float64)
    out = np.empty_like(off)
    out[:, :2] = np.cumsum(off[:, :2], axis=0) + np.asarray(origin, dtype=np.float64)
    out[:, 2] = off[:, 2]
    return out


def from_strokes(strokes: Iterable[np.ndarray], where: str = "strokes") -> np.ndarray:
    """A list of ``(n_i, 2)`` absolute point arrays (one per stroke) → offsets."""
    parts = []
    for k, s in enumerate(strokes):
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != 2:
            raise StrokeError(f"{where}: stroke {k} must be an (n, 2) array of points, got shape {s.shape}")
        if len(s) == 0:
            continue
        eos = np.zeros((len(s), 1))
        eos[-1] = 1
        parts.append(np.hstack([s, eos]))
    if not parts:
        raise StrokeError(f"{where}: no points at all; nothing to convert")
    return to_offsets(np.vstack(parts)).astype(np.float32)


def stroke_slices(offsets: np.ndarray) -> list[slice]:
    """Row ranges of each stroke (a stroke ends on a row with end_of_stroke = 1)."""
    ends = np.flatnonzero(np.asarray(offsets)[:, 2] > 0.5) + 1
    if len(ends) == 0 or ends[-1] != len(offsets):
        ends = np.append(ends, len(offsets))
    starts = np.concatenate([[0], ends[:-1]])
    return [slice(int(a), int(b)) for a, b in zip(starts, ends)]


def to_strokes(offsets: np.ndarray, origin: Sequence[float] = (0.0, 0.0)) -> list[np.ndarray]:
    """Offsets → list of ``(n_i, 2)`` absolute point arrays, one per stroke."""
    pts = to_absolute(offsets, origin)
    return [pts[s, :2] for s in stroke_slices(offsets)]


def bounds(offsets: np.ndarray) -> tuple[float, float, float, float]:
    """``(xmin, ymin, xmax, ymax)`` of the absolute points."""
    pts = to_absolute(offsets)
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


# ----------------------------------------------------------------------------------------------------------
# normalisation


@dataclass
class Normalizer:
    """Per-axis statistics of the offsets of a data set; models see ``(offset - mean) / std``.

    Only dx and dy are normalised; ``end_of_stroke`` stays a bit.  Saved with data sets and checkpoints via
    :meth:`to_dict` / :meth:`from_dict`.
    """

    mean: tuple[float, float] = (0.0, 0.0)
    std: tuple[float, float] = (1.0, 1.0)

    @classmethod
    def fit(cls, sequences: Iterable[np.ndarray], center: bool = True) -> "Normalizer":
        xy = np.concatenate([np.asarray(s, dtype=np.float64)[:, :2] for s in sequences])
        mean = xy.mean(axis=0) if center else np.zeros(2)
        std = xy.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        return cls(mean=(float(mean[0]), float(mean[1])), std=(float(std[0]), float(std[1])))

    def normalize(self, offsets: np.ndarray) -> np.ndarray:
        out = np.array(offsets, dtype=np.float32, copy=True)
        out[..., :2] = (out[..., :2] - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return out

    def denormalize(self, offsets: np.ndarray) -> np.ndarray:
        out = np.array(offsets, dtype=np.float32, copy=True)
        out[..., :2] = out[..., :2] * np.asarray(self.std, np.float32) + np.asarray(self.mean, np.float32)
        return out

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        try:
            mean, std = d["mean"], d["std"]
            if len(mean) != 2 or len(std) != 2 or min(std) <= 0:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise StrokeError(f"normalizer: expected {{'mean': [mx, my], 'std': [sx, sy]}} with std > 0, got {d!r}")
        return cls(mean=(float(mean[0]), float(mean[1])), std=(float(std[0]), float(std[1])))


# ----------------------------------------------------------------------------------------------------------
# resampling, downsampling, denoising, alignment


def resample(offsets: np.ndarray, spacing: float) -> np.ndarray:
    """Resample every stroke at (about) equal arc-length ``spacing``, keeping each stroke's first and last point."""
    if spacing <= 0:
        raise ValueError(f"resample: spacing must be > 0, got {spacing}")
    out = []
    for s in to_strokes(offsets):
        if len(s) < 2:
            out.append(s)
            continue
        seg = np.linalg.norm(np.diff(s, axis=0), axis=1)
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        total = arc[-1]
        n = max(int(math.ceil(total / spacing)), 1) + 1
        t = np.linspace(0.0, total, n)
        # np.interp needs strictly increasing xp only loosely (ties are fine)
        out.append(np.stack([np.interp(t, arc, s[:, 0]), np.interp(t, arc, s[:, 1])], axis=1))
    return from_strokes(out)


def grid_resample(offsets: np.ndarray, step: float, grid: float) -> np.ndarray:
    """Resample every stroke the way a pixel-grid recorder does: one point each time the pen has moved ``step``
    along its larger axis (the chessboard distance), every point rounded to a square grid of side ``grid``,
    repeated points dropped.  bigbank was recorded so (``step=0.01, grid=0.005`` in its units, x after the
    aspect ratio), and the cursive transformer learns that lattice: ink that is not on it is another
    distribution to the network, however alike it looks."""
    if step <= 0 or grid <= 0:
        raise ValueError(f"grid_resample: step and grid must be > 0, got {step} and {grid}")
    out = []
    for s in to_strokes(offsets):
        if len(s) > 1:
            arc = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(s, axis=0)).max(axis=1))])
            t = np.linspace(0.0, arc[-1], max(math.ceil(arc[-1] / step - 1e-6), 1) + 1)  # (float32 sums overshoot)
            s = np.stack([np.interp(t, arc, s[:, 0]), np.interp(t, arc, s[:, 1])], axis=1)
        p = np.round(s / grid) * grid
        keep = np.concatenate([[True], np.abs(np.diff(p, axis=0)).max(axis=1) > grid / 2])
        out.append(p[keep])
    return from_strokes(out)


def downsample(offsets: np.ndarray, remove: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Drop a fraction ``remove`` of the *interior* points of each stroke (stroke ends are always kept).

    With ``rng`` the dropped points are random; without it they are evenly spaced (deterministic).
    The cursive transformer removes about 65% ± 5% of points before tokenizing (Greydanus & Wimpee 2025).
    """
    if not 0 <= remove < 1:
        raise ValueError(f"downsample: remove must be in [0, 1), got {remove}")
    pts = to_absolute(offsets)
    keep = np.ones(len(pts), dtype=bool)
    for sl in stroke_slices(offsets):
        interior = np.arange(sl.start + 1, sl.stop - 1)
        k = int(round(len(interior) * remove))
        if k <= 0:
            continue
        if rng is None:
            drop = interior[np.round(np.linspace(0, len(interior) - 1, k)).astype(int)]
        else:
            drop = rng.choice(interior, size=k, replace=False)
        keep[drop] = False
    return to_offsets(pts[keep]).astype(np.float32)


def denoise(offsets: np.ndarray, window: int = 7, order: int = 3) -> np.ndarray:
    """Savitzky–Golay smoothing of each stroke's absolute points (strokes shorter than the window are kept)."""
    from scipy.signal import savgol_filter

    out = []
    for s in to_strokes(offsets):
        if len(s) >= window and window > order:
            s = savgol_filter(s, window, order, axis=0)
        out.append(s)
    return from_strokes(out)


def _mean_slant(moves: np.ndarray, iterations: int = 4) -> float:
    """Mean slant (dx per unit dy) of the near-vertical ``moves`` ``(n, 2)``; 0 when there are too few.

    Iterated: the first pass takes moves within 45 degrees of vertical (so writing slanted by up to 1 is
    measured), the later ones those within about 27 degrees of the current estimate (robust to connectors)."""
    k = 0.0
    for it in range(iterations):
        dx = moves[:, 0] - k * moves[:, 1]
        steep = np.abs(moves[:, 1]) > (1.0 if it == 0 else 2.0) * np.abs(dx) + 1e-12
        if steep.sum() < 3:
            break
        sgn = np.sign(moves[steep, 1])
        k += float(np.sum(dx[steep] * sgn) / np.sum(moves[steep, 1] * sgn))
    return k


def align(offsets: np.ndarray, slant: bool = True) -> np.ndarray:
    """Rotate so the baseline is horizontal (least-squares line through the points) and, optionally, remove
    the mean slant (shear so that near-vertical pen movements become vertical).

    Slant and tilt disturb each other's estimates, so with ``slant`` the two steps are repeated a few times."""
    pts = to_absolute(offsets)
    xy = pts[:, :2] - pts[:, :2].mean(axis=0)
    within = pts[:-1, 2] == 0  # moves within a stroke (the previous point did not end one)
    for _ in range(3 if slant else 1):
        if len(xy) >= 2 and np.ptp(xy[:, 0]) > 0:
            a = np.polyfit(xy[:, 0], xy[:, 1], 1)[0]
            xy = xy @ _rotation(-math.atan(a)).T
        if slant:
            k = _mean_slant(np.diff(xy, axis=0)[within])
            xy[:, 0] -= k * xy[:, 1]
    out = np.hstack([xy, pts[:, 2:3]])
    res = to_offsets(out)
    res[0, :2] = offsets[0, :2]  # keep the start position
    return res.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------
# augmentation (as used for the cursive transformer)


def _rotation(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _linear(offsets: np.ndarray, m: np.ndarray) -> np.ndarray:
    out = np.array(offsets, dtype=np.float64, copy=True)
    out[:, :2] = out[:, :2] @ np.asarray(m, dtype=np.float64).T
    return out.astype(np.float32)


def shear(offsets: np.ndarray, amount: float) -> np.ndarray:
    """Horizontal shear: x += amount * y (negative amounts lean the writing left)."""
    return _linear(offsets, np.array([[1.0, amount], [0.0, 1.0]]))


def scale(offsets: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """Scale x and y independently."""
    return _linear(offsets, np.diag([sx, sx if sy is None else sy]))


def rotate(offsets: np.ndarray, angle: float) -> np.ndarray:
    """Rotate by ``angle`` radians (counter-clockwise)."""
    return _linear(offsets, _rotation(angle))


def drop_points(offsets: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Drop each interior point of a stroke with probability ``p`` (stroke ends are kept)."""
    pts = to_absolute(offsets)
    keep = rng.random(len(pts)) >= p
    for sl in stroke_slices(offsets):
        keep[sl.start] = keep[sl.stop - 1] = True
    return to_offsets(pts[keep]).astype(np.float32)


@dataclass
class AugmentConfig:
    """Random augmentation ranges; defaults follow the cursive transformer (shear about −0.2, scale ±10%)."""

    shear: tuple[float, float] = (-0.3, -0.1)
    scale_x: tuple[float, float] = (0.9, 1.1)
    scale_y: tuple[float, float] = (0.9, 1.1)
    rotate: tuple[float, float] = (-0.05, 0.05)  # radians
    drop: float = 0.0


def augment(offsets: np.ndarray, rng: np.random.Generator, config: AugmentConfig | None = None) -> np.ndarray:
    """Apply a random shear, x/y scale, small rotation and (optionally) point dropout."""
    c = config or AugmentConfig()
    m = (
        _rotation(rng.uniform(*c.rotate))
        @ np.diag([rng.uniform(*c.scale_x), rng.uniform(*c.scale_y)])
        @ np.array([[1.0, rng.uniform(*c.shear)], [0.0, 1.0]])
    )
    out = _linear(offsets, m)
    if c.drop > 0:
        out = drop_points(out, c.drop, rng)
    return out


def reorder_late_marks(
    offsets: np.ndarray, max_size: float = 0.6, min_back: float = 0.5
) -> tuple[np.ndarray, int]:
    """Move i-dots and t-crosses written after the whole word back beside their letter.

    Some writers (synthbank's among them) finish a word and then go back to dot its i's and cross its t's.
    A model trained on that learns to end words with stray dots and dashes far from any letter.  A *late
    mark* is a stroke no larger than ``max_size`` × the word's height whose centre lies more than
    ``min_back`` × the height left of everything drawn before it.  Each one is moved to where the pen first
    reached its x position: the stroke passing there is split (the pen lifts, makes the mark, and comes back),
    which is how the same writer dots letters in order elsewhere.  The points are unchanged, only their order
    and the pen lifts.  Returns ``(offsets, number of marks moved)``; the first point keeps its position.
    """
    off = np.asarray(offsets)
    strokes = to_strokes(off)
    if len(strokes) < 2:
        return off.astype(np.float32), 0
    pts = np.vstack(strokes)
    h = float(np.ptp(pts[:, 1])) or 1.0
    kept: list[np.ndarray] = [strokes[0]]
    moved = 0
    for s in strokes[1:]:
        drawn = np.vstack(kept)
        size = max(float(np.ptp(s[:, 0])), float(np.ptp(s[:, 1])))
        cx = float(s[:, 0].mean())
        if size > max_size * h or cx >= drawn[:, 0].max() - min_back * h:
            kept.append(s)
            continue
        # the first point, in writing order, at or right of the mark's centre
        for k, stroke in enumerate(kept):
            hits = np.flatnonzero(stroke[:, 0] >= cx)
            if len(hits):
                i = int(hits[0])
                break
        else:  # unreachable: the mark lies left of the drawn maximum
            kept.append(s)
            continue
        head, tail = stroke[: i + 1], stroke[i + 1 :]
        kept[k : k + 1] = [head, s] + ([tail] if len(tail) else [])
        moved += 1
    if not moved:
        return off.astype(np.float32), 0
    out = from_strokes(kept)
    out[0, :2] = off[0, :2]  # from_strokes measures the first point from (0, 0): the same origin
    return out, moved


# ----------------------------------------------------------------------------------------------------------
# stitching words into lines


def stitch(
    samples: Sequence[Sample],
    rng: np.random.Generator | None = None,
    space: float = 0.35,
    space_jitter: float = 0.15,
    baseline_jitter: float = 0.03,
) -> Sample:
    """Join single-word samples into one line of text with natural spacing and a shared baseline.

    Each word is placed after the previous one with a gap of ``space`` × (median word height) (± a random
    ``space_jitter`` fraction); words are aligned on their baseline (estimated as the 10th percentile of their
    y values, robust to descenders) with a little random drift.  The texts are joined with single spaces.
    """
    if not samples:
        raise ValueError("stitch: no samples to stitch")
    rng = rng or np.random.default_rng(0)
    pts_list = [to_absolute(s.offsets) for s in samples]
    heights = [np.ptp(p[:, 1]) for p in pts_list]
    h = float(np.median(heights)) or 1.0
    x_cursor = 0.0
    out = []
    for k, p in enumerate(pts_list):
        p = p.copy()
        base = np.percentile(p[:, 1], 10)
        p[:, 1] += -base + rng.normal(0, baseline_jitter * h)
        p[:, 0] += x_cursor - p[:, 0].min()
        out.append(p)
        gap = space * h * (1 + rng.uniform(-space_jitter, space_jitter))
        x_cursor = p[:, 0].max() + gap
    pts = np.vstack(out)
    return Sample(
        to_offsets(pts).astype(np.float32),
        text=" ".join(s.text for s in samples),
        writer=samples[0].writer,
        source="+".join(str(s.source) for s in samples),
    )
