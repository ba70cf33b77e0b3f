"""Many hands from few: the multi-writer training mix, and the writers held out of it.

bigbank and synthbank are one person's writing, so a model trained on them alone cannot learn what Graves'
priming (§5.5) needs: that the ink written so far says *how* the rest of the line will look.  This module
makes many writers out of what the project can ship or download:

* **restyled real ink** — an :class:`InkStyle` changes a line of real cursive the way writers differ: slant
  (a shear), letter width, height (aspect), overall size and smoothness (rounder, blunter strokes); with
  ``ink_lifts``, also how often the pen lifts (:func:`lift_at_bottoms`);
* **synthetic writers** — the synthetic writer (:mod:`~handwriting.datasets.synthetic`) with every
  single-stroke Hershey font (two scripts, two print faces) and wide ranges of slant, width, height, spacing,
  joins and wobble;

and :class:`ManyHands` turns word data into training lines written in *one* hand each (a random style per
line: the style is constant within the line and differs between lines, which is what makes a prime
informative).  Real lines of other writers (IAM-OnDB: ``--data hands+iam:PATH``) join the mix as they are,
each in its writer's own hand, after :func:`match_ink` has brought them to the words' letter size and point
density.

**Held-out writers** (:func:`held_out_writers`): four restyled hands (:data:`HELD_OUT_INK`) and the eight
named synthetic writers (:data:`~handwriting.datasets.synthetic.WRITERS`).  Training styles are drawn away from
all of them — an ink style within :data:`HOLD_OUT_RADIUS` of a held-out one, or a synthetic style near a named
writer, is drawn again — so the measurements of style carry are on hands no model here trained on.
:func:`training_writers` is their control: hands drawn as the training lines are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import DataError
from ..strokes import Sample, from_strokes, to_strokes
from .synthetic import FONTS, WRITERS, WriterStyle, _write
from .torch_data import StitchedLines

__all__ = [
    "InkStyle",
    "HELD_OUT_INK",
    "HOLD_OUT_RADIUS",
    "random_ink_style",
    "random_font_style",
    "Writer",
    "held_out_writers",
    "training_writers",
    "ManyHands",
    "match_ink",
    "lift_at_bottoms",
    "LINE_SOURCE",
]


@dataclass(frozen=True)
class InkStyle:
    """How a restyled writer differs from the one whose ink it transforms (1 / 0: unchanged)."""

    name: str
    slant: float = 0.0  # shear added to the ink: dx per unit dy (> 0 leans further right)
    width: float = 1.0  # horizontal scale of the writing (letter width and spacing)
    height: float = 1.0  # vertical scale (with width: the aspect of the letters)
    size: float = 1.0  # overall scale
    smooth: int = 0  # moving average over 2·smooth + 1 points of every stroke: rounder, blunter letters

    def __post_init__(self) -> None:
        for key in ("width", "height", "size"):
            v = getattr(self, key)
            if not (math.isfinite(v) and 0.2 <= v <= 5):
                raise DataError(f"InkStyle {self.name!r}: {key}={v!r} must be a scale in [0.2, 5]")
        if not (math.isfinite(self.slant) and abs(self.slant) <= 2):
            raise DataError(f"InkStyle {self.name!r}: slant={self.slant!r} must be a shear in [-2, 2]")
        if not (isinstance(self.smooth, int) and 0 <= self.smooth <= 20):
            raise DataError(f"InkStyle {self.name!r}: smooth={self.smooth!r} must be a whole number of points in [0, 20]")

    def apply(self, sample: Sample) -> Sample:
        """The sample in this hand: same text and pen lifts, transformed ink."""
        off = np.asarray(sample.offsets, dtype=np.float64)
        if self.smooth:
            strokes = [_moving_average(s, self.smooth) for s in to_strokes(off)]
            off = from_strokes(strokes, where=f"InkStyle {self.name!r}")
            off[0, :2] = sample.offsets[0, :2]  # keep where the pen starts
        m = self.size * np.array([[self.width, self.slant * self.height], [0.0, self.height]])
        out = off.copy()
        out[:, :2] = off[:, :2] @ m.T
        return Sample(out.astype(sample.offsets.dtype), text=sample.text, writer=self.name,
                      source=f"{sample.source or 'ink'}|{self.name}")

    def vector(self) -> np.ndarray:
        """The style as a point in a space where 1 means "clearly a different hand" along each axis."""
        return np.array([self.slant / 0.15, math.log(self.width) / 0.12, math.log(self.height) / 0.12,
                         math.log(self.size) / 0.15, self.smooth / 1.5])


def _moving_average(points: np.ndarray, k: int) -> np.ndarray:
    if len(points) < 3:
        return points
    pad = np.concatenate([np.repeat(points[:1], k, 0), points, np.repeat(points[-1:], k, 0)])
    kernel = np.ones(2 * k + 1) / (2 * k + 1)
    return np.stack([np.convolve(pad[:, d], kernel, mode="valid") for d in range(2)], 1)


#: the restyled hands no training line is written in (with everything within HOLD_OUT_RADIUS of them)
HELD_OUT_INK: tuple[InkStyle, ...] = (
    InkStyle("ink-upright-narrow", slant=-0.28, width=0.78),
    InkStyle("ink-backhand-wide", slant=-0.5, width=1.28, height=0.92),
    InkStyle("ink-tall-italic", slant=0.32, width=0.86, height=1.3),
    InkStyle("ink-round-small", slant=-0.1, width=1.12, size=0.78, smooth=3),
)
HOLD_OUT_RADIUS = 1.5  # in InkStyle.vector units


def random_ink_style(rng: np.random.Generator, name: str = "ink") -> InkStyle:
    """A random restyled hand for training, never within :data:`HOLD_OUT_RADIUS` of a held-out one."""
    held = np.stack([h.vector() for h in HELD_OUT_INK])
    while True:
        style = InkStyle(
            name,
            slant=float(rng.uniform(-0.6, 0.45)),
            width=float(math.exp(rng.uniform(math.log(0.72), math.log(1.38)))),
            height=float(math.exp(rng.uniform(math.log(0.78), math.log(1.35)))),
            size=float(math.exp(rng.uniform(math.log(0.72), math.log(1.3)))),
            smooth=int(rng.choice([0, 0, 0, 1, 2, 3, 4])),
        )
        if np.linalg.norm(held - style.vector(), axis=1).min() > HOLD_OUT_RADIUS:
            return style


def _centre(r) -> float:
    return 0.5 * (r[0] + r[1])


def _synthetic_vector(s: WriterStyle) -> np.ndarray:
    return np.array([_centre(s.slant) / 0.08, math.log(_centre(s.width)) / 0.08, math.log(_centre(s.height)) / 0.1,
                     math.log(_centre(s.spacing)) / 0.15, 3.0 * (FONTS[s.font])])


def random_font_style(rng: np.random.Generator, name: str = "font", font: str | None = None) -> WriterStyle:
    """A random synthetic writer for training, over every single-stroke font (or in ``font``), never near a
    named writer of :data:`~handwriting.datasets.synthetic.WRITERS` (those are held out)."""
    named = [(w.font, _synthetic_vector(w)) for w in WRITERS.values()]
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    around = lambda c, r: (c - r, c + r)  # noqa: E731
    fonts = sorted(FONTS)
    want = font
    if want is not None and want not in FONTS:
        raise DataError(f"random_font_style: unknown font {want!r}; the single-stroke fonts are {fonts}")
    while True:
        drawn = fonts[int(rng.integers(len(fonts)))]  # drawn even when a font is asked for: the same styles
        font = want or drawn
        script = FONTS[font]
        style = WriterStyle(
            name, font=font,
            height=around(u(0.07, 0.125), 0.005), slant=around(u(-0.45, 0.6), 0.03),
            width=around(u(0.75, 1.35) if script else u(0.65, 1.2), 0.03), size_jitter=u(0.02, 0.1),
            tracking=(0.0, 0.0) if script else around(u(0.02, 0.2), 0.02), word_space=around(u(0.7, 1.4), 0.08),
            baseline_drift=around(u(0.02, 0.2), 0.02), tilt=u(0.0, 0.05), wobble=around(u(0.01, 0.08), 0.008),
            spacing=around(u(0.11, 0.24), 0.01), noise=u(0.0, 0.08), join=u(0.8, 1.0), late_marks=u(0.0, 1.0),
        )  # fmt: skip
        v = _synthetic_vector(style)
        if all(f != font or np.linalg.norm(v - nv) > 1.5 for f, nv in named):
            return style


@dataclass(frozen=True)
class Writer:
    """A held-out hand: ``write(text, seed)`` gives a sample of ``text`` in it."""

    name: str
    kind: str  # "ink" (restyled real words) or "synthetic"
    write: Callable[[str, int], Sample]


def held_out_writers(words: Sequence[Sample] | None = None) -> list[Writer]:
    """The held-out hands: the named synthetic writers, and (given real words to restyle: a word's text →
    its ink is looked up in ``words``, so only texts made of those words can be written) the
    :data:`HELD_OUT_INK` styles."""
    out = [Writer(name, "synthetic", _synthetic_writes(style)) for name, style in WRITERS.items()]
    return out + _ink_writers(words, HELD_OUT_INK)


def training_writers(words: Sequence[Sample] | None = None, seed: int = 0, per_font: int = 2,
                     inks: int = len(HELD_OUT_INK)) -> list[Writer]:
    """A control for :func:`held_out_writers`: hands drawn as :class:`ManyHands` draws its training lines' hands —
    ``per_font`` synthetic writers in every single-stroke font (:func:`random_font_style`) and, given real
    words, ``inks`` restyled hands (:func:`random_ink_style`) — so a model has trained on hands like these,
    though not on these exact ones.  Measured beside the held-out hands, it tells a hand the model cannot
    generalise to from one it has not learnt at all."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7A1]))
    out = []
    for font in sorted(FONTS):
        for k in range(per_font):
            st = random_font_style(rng, name=f"train-{font}-{k + 1}", font=font)
            out.append(Writer(st.name, "synthetic", _synthetic_writes(st)))
    styles = [random_ink_style(rng, name=f"train-ink-{k + 1}") for k in range(inks)]
    return out + _ink_writers(words, styles)


def _synthetic_writes(style: WriterStyle) -> Callable[[str, int], Sample]:
    return lambda text, seed: _write(
        style, text, np.random.default_rng(np.random.SeedSequence([int(seed), 0x417])), "replace", "?",
        f"writer {style.name!r}", f"synthetic:{style.name}")


def _ink_writers(words: Sequence[Sample] | None, styles: Sequence[InkStyle]) -> list[Writer]:
    """Writers that restyle real ink: a text is written with ``words``' ink for its words (none: no writers)."""
    if not words:
        return []
    by_text: dict[str, list[Sample]] = {}
    for s in words:
        by_text.setdefault(s.text, []).append(s)
    return [Writer(ink.name, "ink", lambda text, seed, ink=ink: ink.apply(_real_line(text, by_text, seed)))
            for ink in styles]


def _real_line(text: str, by_text: dict, seed: int) -> Sample:
    from ..strokes import stitch

    missing = [w for w in text.split() if w not in by_text]
    if missing:
        raise DataError(f"held-out ink writer: no real ink for the word(s) {missing[:3]!r}; write texts made of the given words")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1A4]))
    picks = [by_text[w][int(rng.integers(len(by_text[w])))] for w in text.split()]
    return picks[0] if len(picks) == 1 else stitch(picks, rng)


#: the source prefix :func:`match_ink` gives a whole line of another writer: :class:`ManyHands` keeps it as it is
LINE_SOURCE = "line:"


def _width_per_char(s: Sample) -> float:
    pts = np.cumsum(s.offsets[:, :2], axis=0)
    return float(np.ptp(pts[:, 0])) / max(len(s.text.replace(" ", "")), 1)


def match_ink(lines: Sequence[Sample], words: Sequence[Sample]) -> list[Sample]:
    """``lines`` of other writers (IAM-OnDB: other units, other pen sampling) brought to the ink of ``words``:
    scaled so that their median width per character is the words' and resampled at the arc-length spacing that
    gives them the words' mean points per character.  Each keeps its own hand (slant, proportions, joins); its
    source becomes ``LINE_SOURCE + source``, which :class:`ManyHands` keeps as a line of its own."""
    from ..strokes import resample, scale

    lines = [s for s in lines if len(s.offsets) > 1 and s.text.strip()]
    if not lines:
        return []
    if not words:
        raise DataError("match_ink: no words to match the lines' ink to")
    width = float(np.median([_width_per_char(s) for s in words])) / max(
        float(np.median([_width_per_char(s) for s in lines])), 1e-9)
    arc = sum(float(np.linalg.norm(s.offsets[1:, :2], axis=1)[s.offsets[:-1, 2] < 0.5].sum()) for s in words)
    spacing = arc / max(sum(len(s.offsets) for s in words), 1)  # pen-down path per point
    out = []
    for s in lines:
        off = resample(scale(s.offsets, width), spacing)
        out.append(s.replace(offsets=off.astype(np.float32), source=f"{LINE_SOURCE}{s.source}"))
    return out


def split_lines(samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
    """``(words, lines)``: the samples to restyle and stitch, and the whole lines of other writers
    (:func:`match_ink`)."""
    lines = [s for s in samples if str(s.source or "").startswith(LINE_SOURCE)]
    return [s for s in samples if not str(s.source or "").startswith(LINE_SOURCE)], lines


def lift_at_bottoms(sample: Sample, share: float, rng: np.random.Generator) -> Sample:
    """``sample`` with the pen lifted at a random ``share`` of its stroke bottoms (a pen-down point where the
    stroke stops going down, with two points of the stroke before it and two after): the same
    ink, every point where it was, written by a hand that lifts the pen more often (at the foot of a letter or of
    a join instead of running on)."""
    if not 0 <= share <= 1:
        raise DataError(f"lift_at_bottoms: share={share!r} must be a share in [0, 1]")
    off = np.array(sample.offsets, copy=True)
    n = len(off)
    if n < 5 or share == 0:
        return sample.replace(offsets=off)
    up = off[:, 2] > 0.5
    i = np.arange(2, n - 2)
    down_in, up_out = off[i, 1] < 0, off[i + 1, 1] >= 0
    inside = ~(up[i - 2] | up[i - 1] | up[i] | up[i + 1])  # the pen stays down from two points before to the next
    bottoms = i[down_in & up_out & inside]
    off[bottoms[rng.random(len(bottoms)) < share], 2] = 1.0
    return sample.replace(offsets=off)


class ManyHands(torch.utils.data.Dataset):
    """``num_lines`` training lines, each in one hand: a line of ``words`` (stitched as :class:`StitchedLines`
    does) restyled by a random :class:`InkStyle` (share ``real_share``), or the same line's text written by a
    random synthetic writer of any font (the rest); then every line of ``lines`` (real lines of other writers,
    :func:`match_ink`) as it is.  Line ``i`` depends only on ``(seed, i)``; no line is in a held-out hand.
    ``lengths`` approximates the points per line (for bucketing).

    ``ink_lifts`` > 0: half the restyled real-ink lines also lift the pen at a share of their stroke bottoms drawn
    uniformly in [0, ``ink_lifts``] (:func:`lift_at_bottoms`), so that real-ink hands differ in how often they
    lift the pen as the synthetic writers do (their ``join``), and the prime's lifts tell them apart."""

    def __init__(self, words: Sequence[Sample], words_per_line=(1, 3), num_lines: int = 20000, seed: int = 0,
                 real_share: float = 0.6, max_chars: int | None = None, lines: Sequence[Sample] = (),
                 ink_lifts: float = 0.0):
        if not 0 <= real_share <= 1:
            raise DataError(f"ManyHands: real_share={real_share!r} must be a share in [0, 1]")
        if not 0 <= ink_lifts <= 1:
            raise DataError(f"ManyHands: ink_lifts={ink_lifts!r} must be a share in [0, 1]")
        self.lines = StitchedLines(words, words_per_line, num_lines=num_lines, seed=seed, max_chars=max_chars)
        self.seed, self.real_share, self.ink_lifts = int(seed), float(real_share), float(ink_lifts)
        self.real_lines = list(lines)
        self.lengths = np.concatenate([np.asarray(self.lines.lengths),
                                       np.array([len(s.offsets) for s in self.real_lines], dtype=np.int64)])

    def __len__(self) -> int:
        return len(self.lines) + len(self.real_lines)

    def style(self, index: int) -> InkStyle | WriterStyle:
        """The hand of line ``index``."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed & 0xFFFFFFFF, int(index), 0x4A2D]))
        if rng.random() < self.real_share:
            return random_ink_style(rng, name=f"ink-{self.seed}-{index}")
        return random_font_style(rng, name=f"font-{self.seed}-{index}")

    def __getitem__(self, index: int) -> Sample:
        index = int(index)
        if index >= len(self.lines):
            return self.real_lines[index - len(self.lines)]
        line, style = self.lines[index], self.style(index)
        if isinstance(style, InkStyle):
            out = style.apply(line)
            if self.ink_lifts:  # its own random stream: the lines' hands are those of ink_lifts=0
                rng = np.random.default_rng(np.random.SeedSequence([self.seed & 0xFFFFFFFF, index, 0x11F7]))
                if rng.random() < 0.5:
                    out = lift_at_bottoms(out, float(rng.uniform(0, self.ink_lifts)), rng)
            return out
        rng = np.random.default_rng(np.random.SeedSequence([self.seed & 0xFFFFFFFF, index, 0x5E7]))
        return _write(style, line.text, rng, "replace", "?", f"ManyHands line {index}", f"synthetic:{style.name}")


def with_name(style: InkStyle, name: str) -> InkStyle:
    return replace(style, name=name)
