"""The synthetic writer: handwriting-like samples drawn from single-stroke Hershey fonts, no download needed.

Every glyph of a single-stroke ("simplex") Hershey font is a handful of pen paths on an integer grid.  The
synthetic writer turns text into such paths and then makes them look written by a person:

* the paths are smoothed (a centripetal Catmull–Rom curve through the grid points) and laid out glyph by
  glyph with a per-glyph width and height jitter that varies *smoothly* along the line, so that joined
  letters stay joined;
* pen lifts: a stroke that starts where the pen already is continues the same pen-down stroke; within a
  glyph the pen may also run back along what it just drew (printing ``b``, ``n``, ``w`` in one go); in the
  script font consecutive letters join — directly where the font's exit and entry points touch, otherwise
  through a smooth connecting curve (over the top of the bowl for ``a``, ``c``, ``d``, ``g``, ``q``, back up
  a stem for ``m``, ``n``, ``t``) — so words come out cursive; i and j dots and t and f crosses are drawn
  either where the font has them or, as many people do, after the word;
* the writer's slant (a shear), baseline drift (a slow curve plus a slight tilt), a smooth "wobble" (a sum
  of a few random sinusoids of the pen's path length) and sensor noise are applied to all points at once;
* every stroke is resampled at the writer's point spacing (about 20–45 points per character, like a pen
  digitiser; the vectorised equivalent of :func:`handwriting.strokes.resample`).

The result is a :class:`~handwriting.strokes.Sample` in the project convention — ``(dx, dy, end_of_stroke)``
offsets, y upwards — at the scale of ``bigbank_3500``: a lower-case letter is about 0.1 units high, a word
0.2–0.4 units with its ascenders and descenders, a character about 0.15 units wide.

A :class:`WriterStyle` holds ranges for each trait; every sample draws its values from the ranges (natural
variation within one writer), and the named styles in :data:`WRITERS` keep their ranges apart so that
different writers differ visibly and measurably (their slant, :func:`estimate_slant`, for instance).
Everything is deterministic given the seed, and fast (well over a thousand words a second on one core).

Fonts come from the ``Hershey-Fonts`` package (module ``HersheyFonts``): ``"cursive"`` is Hershey's script
simplex (letters) with simplex digits and punctuation, ``"scripts"`` the other script simplex; ``"futural"`` is
the simplex sans-serif print font and ``"rowmans"`` the simplex roman (serif) one.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import string
import unicodedata
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..errors import DataError
from ..strokes import Sample, _mean_slant, from_strokes, to_absolute

__all__ = [
    "SYNTHETIC_ALPHABET",
    "WORD_ALPHABET",
    "FONTS",
    "WriterStyle",
    "WRITERS",
    "SyntheticWriter",
    "synthesize",
    "random_style",
    "random_words",
    "estimate_slant",
]

#: every character the synthetic writer can draw: printable ASCII, space included.
SYNTHETIC_ALPHABET: str = "".join(chr(c) for c in range(32, 127))

#: the characters of ``bigbank_3500`` (Greydanus & Wimpee 2025); the default alphabet of :func:`random_words`.
WORD_ALPHABET: str = "!\"'(),.0123456789?" + string.ascii_uppercase + string.ascii_lowercase

#: every single-stroke (simplex) Latin Hershey font, and whether its letters join into cursive strokes; the
#: package's other fonts draw each line twice or three times (futuram, scriptc, timesr ...) and are left out
FONTS: dict[str, bool] = {"cursive": True, "scripts": True, "futural": False, "rowmans": False}

_JOIN_TOL = 0.2  # two paths touch when one starts within this distance (in x-heights) of where the other ends
_MARKED = "ijtf"  # letters with dots or crosses that writers may add after the word
_CR_STEPS = 4  # Catmull–Rom points per font-grid segment (the writer resamples afterwards anyway)


# ----------------------------------------------------------------------------------------------------------
# glyphs


@dataclass(frozen=True)
class _Glyph:
    strokes: tuple  # of (n, 2) float64 arrays: x from the glyph's left side, y up from the baseline, in x-heights
    width: float  # advance, in x-heights
    marks: tuple  # per stroke: True for a small detached mark (i/j dot, t cross) a writer may draw later
    letter: bool  # whether the glyph is a letter (only letters connect in cursive)


@dataclass(frozen=True)
class _Font:
    name: str
    glyphs: dict
    joins: bool
    slant: float  # the font's own slant (mean dx per unit dy of its down strokes)


def _cr_segments(p0, p1, p2, p3, steps: int) -> np.ndarray:
    """Centripetal Catmull–Rom: ``steps`` points of each segment ``p1[i] -> p2[i]`` (from p1, excluding p2),
    shaped by its neighbours ``p0[i]`` and ``p3[i]``; all inputs ``(S, 2)``; returns ``(S, steps, 2)``."""

    def knot(a, b):
        return np.maximum(np.linalg.norm(b - a, axis=1), 1e-9) ** 0.5

    t0 = np.zeros(len(p1))
    t1 = t0 + knot(p0, p1)
    t2 = t1 + knot(p1, p2)
    t3 = t2 + knot(p2, p3)
    u = np.arange(steps) / steps
    t = (t1[:, None] + u[None, :] * (t2 - t1)[:, None])[..., None]  # (S, steps, 1)
    T0, T1, T2, T3 = (x[:, None, None] for x in (t0, t1, t2, t3))
    P0, P1, P2, P3 = (x[:, None, :] for x in (p0, p1, p2, p3))
    a1 = ((T1 - t) * P0 + (t - T0) * P1) / (T1 - T0)
    a2 = ((T2 - t) * P1 + (t - T1) * P2) / (T2 - T1)
    a3 = ((T3 - t) * P2 + (t - T2) * P3) / (T3 - T2)
    b1 = ((T2 - t) * a1 + (t - T0) * a2) / (T2 - T0)
    b2 = ((T3 - t) * a2 + (t - T1) * a3) / (T3 - T1)
    return ((T2 - t) * b1 + (t - T1) * b2) / (T2 - T1)


def _catmull_rom(p: np.ndarray, steps: int = _CR_STEPS) -> np.ndarray:
    """Centripetal Catmull–Rom curve through the points ``p`` (n, 2); keeps the first and last point."""
    keep = np.ones(len(p), dtype=bool)
    keep[1:] = np.any(np.diff(p, axis=0) != 0, axis=1)
    p = p[keep]
    if len(p) < 2:
        return p
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    c = _cr_segments(ext[:-3], ext[1:-2], ext[2:-1], ext[3:], steps)
    return np.vstack([c.reshape(-1, 2), p[-1:]])


@functools.lru_cache(maxsize=None)
def _load_font(name: str) -> _Font:
    try:
        from HersheyFonts import HersheyFonts
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise DataError(
            "synthetic writer: the Hershey fonts are missing; install them with `pip install Hershey-Fonts`"
        ) from e
    if name not in FONTS:
        raise DataError(f"synthetic writer: unknown font {name!r}; use one of {sorted(FONTS)}")
    font = HersheyFonts()
    font.load_default_font(name)
    raw = font.all_glyphs
    base = float(font.render_options["base_line"])  # Hershey y grows downwards; the baseline is at y = 9
    xs = [y for s in raw["x"].strokes for _, y in s]
    xheight = float(max(xs) - min(xs))  # 9 grid units in the script font, 14 in the sans font
    raws = {}
    for ch in SYNTHETIC_ALPHABET:
        g = raw[ch]
        strokes = []
        for s in g.strokes:
            a = np.asarray(s, dtype=np.float64)
            a = np.stack([a[:, 0] - g.left_offset, base - a[:, 1]], axis=1) / xheight
            strokes.append(_catmull_rom(a))
        raws[ch] = (strokes, float(g.char_width) / xheight)
    # where script letters join: the height at which lower-case letters end
    join_y = float(np.median([raws[c][0][-1][-1, 1] for c in string.ascii_lowercase]))
    glyphs = {}
    for ch, (strokes, width) in raws.items():
        marks = tuple(
            bool(
                ch in _MARKED
                and len(strokes) > 1
                and float(np.ptp(s, axis=0).max()) <= 0.8  # small
                and abs(s[0, 0]) + abs(s[0, 1] - join_y) > _JOIN_TOL  # not the entry stroke (t's up-stroke)
                and abs(s[-1, 0] - width) + abs(s[-1, 1] - join_y) > _JOIN_TOL  # nor the exit stroke
                and not _touches(strokes, k)  # detached
            )
            for k, s in enumerate(strokes)
        )
        glyphs[ch] = _Glyph(tuple(strokes), width, marks, ch.isalpha())
    f = _Font(name, glyphs, FONTS[name], 0.0)
    # the font's own slant, measured on its lower-case alphabet drawn plainly
    pts = _layout(f, string.ascii_lowercase, _plain_params(f))[0]
    return dataclasses.replace(f, slant=estimate_slant(from_strokes(pts)))


def _touches(strokes: list, k: int) -> bool:
    s = strokes[k]
    for j, o in enumerate(strokes):
        if j != k and min(np.linalg.norm(o[-1] - s[0]), np.linalg.norm(s[-1] - o[0])) < _JOIN_TOL:
            return True
    return False


# ----------------------------------------------------------------------------------------------------------
# writer styles

Range = tuple  # (low, high): each sample draws uniformly from it


@dataclass(frozen=True)
class WriterStyle:
    """The traits of one (synthetic) writer as ranges ``(low, high)``; every sample draws its own values.

    Lengths are in x-heights (the height of a lower-case ``x``) unless said otherwise.
    """

    name: str
    font: str = "cursive"
    height: Range = (0.095, 0.11)  # x-height in data units (bigbank: about 0.12)
    slant: Range = (0.15, 0.25)  # total slant, dx per unit dy (0 = upright, > 0 leans right)
    width: Range = (0.95, 1.05)  # horizontal scale of the glyphs
    size_jitter: float = 0.05  # per-glyph relative std of height (and half of it for width)
    tracking: Range = (0.0, 0.0)  # extra space between letters (print fonts; script letters join instead)
    word_space: Range = (0.9, 1.2)  # space between words
    baseline_drift: Range = (0.05, 0.12)  # amplitude of the slow baseline curve
    tilt: float = 0.02  # std of the line's angle, radians
    wobble: Range = (0.02, 0.04)  # amplitude of the smooth wobble
    wobble_wavelength: Range = (1.5, 4.0)  # wavelengths of the wobble's sinusoids, along the pen's path
    spacing: Range = (0.13, 0.17)  # distance between consecutive pen samples
    noise: float = 0.04  # sensor noise std, as a fraction of the point spacing
    join: float = 1.0  # probability of keeping the pen down where it can (joins, connections, retraces)
    late_marks: float = 0.5  # probability that a word's i/j dots and t/f crosses are drawn after the word

    def __post_init__(self) -> None:
        if self.font not in FONTS:
            raise DataError(f"WriterStyle {self.name!r}: unknown font {self.font!r}; use one of {sorted(FONTS)}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple) and (len(v) != 2 or v[0] > v[1]):
                raise DataError(f"WriterStyle {self.name!r}: {f.name} must be a range (low, high), got {v!r}")
        if self.height[0] <= 0 or self.spacing[0] <= 0 or self.width[0] <= 0:
            raise DataError(f"WriterStyle {self.name!r}: height, width and spacing must be > 0")
        for key in ("join", "late_marks"):
            if not 0 <= getattr(self, key) <= 1:
                raise DataError(f"WriterStyle {self.name!r}: {key} is a probability in [0, 1], got {getattr(self, key)!r}")

    def replace(self, **changes) -> "WriterStyle":
        return dataclasses.replace(self, **changes)


#: named writers with distinct styles (for style and priming demos); ``synthesize(texts, writer="neat")``.
WRITERS: dict[str, WriterStyle] = {
    s.name: s
    for s in [
        WriterStyle("neat", slant=(0.12, 0.18), wobble=(0.01, 0.02), baseline_drift=(0.02, 0.05), size_jitter=0.03),
        WriterStyle(
            "hasty", slant=(0.4, 0.5), width=(1.15, 1.3), size_jitter=0.08, wobble=(0.05, 0.08),
            baseline_drift=(0.1, 0.2), spacing=(0.2, 0.24), join=0.97, late_marks=0.9, tilt=0.04,
        ),
        WriterStyle("upright", slant=(-0.03, 0.03), width=(0.8, 0.88), spacing=(0.12, 0.14), late_marks=0.1),
        WriterStyle("backhand", slant=(-0.35, -0.27), width=(0.95, 1.05), wobble=(0.02, 0.04), late_marks=0.7),
        WriterStyle(
            "small", height=(0.07, 0.08), slant=(0.22, 0.3), width=(0.9, 1.0), spacing=(0.16, 0.2),
            word_space=(0.8, 1.0), join=0.85,
        ),
        WriterStyle(
            "print", font="futural", height=(0.085, 0.1), slant=(0.0, 0.05), width=(0.85, 0.95),
            tracking=(0.05, 0.12), word_space=(0.8, 1.0), wobble=(0.03, 0.05), spacing=(0.12, 0.15),
        ),
        WriterStyle(
            "italic", font="futural", height=(0.08, 0.09), slant=(0.3, 0.38), width=(0.7, 0.78),
            tracking=(0.02, 0.06), word_space=(0.7, 0.9), spacing=(0.12, 0.15),
        ),
        WriterStyle(
            "scrawl", font="futural", height=(0.1, 0.12), slant=(0.08, 0.2), width=(1.0, 1.15),
            size_jitter=0.08, tracking=(0.08, 0.2), wobble=(0.05, 0.08), baseline_drift=(0.1, 0.18),
            spacing=(0.18, 0.22), tilt=0.03,
        ),
    ]
}


def random_style(rng: np.random.Generator, name: str = "random") -> WriterStyle:
    """A random writer: a font and narrow ranges around random centres (what ``synthesize(writer=None)`` uses)."""
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    around = lambda c, r: (c - r, c + r)  # noqa: E731
    script = bool(rng.random() < 0.7)
    return WriterStyle(
        name,
        font="cursive" if script else "futural",
        height=around(u(0.075, 0.12), 0.006),
        slant=around(u(-0.3, 0.5), 0.04),
        width=around(u(0.8, 1.25) if script else u(0.7, 1.1), 0.04),
        size_jitter=u(0.02, 0.1),
        tracking=(0.0, 0.0) if script else around(u(0.04, 0.18), 0.03),
        word_space=around(u(0.8, 1.3), 0.1),
        baseline_drift=around(u(0.03, 0.2), 0.02),
        tilt=u(0.0, 0.05),
        wobble=around(u(0.015, 0.07), 0.01),
        wobble_wavelength=(1.5, 4.0),
        spacing=around(u(0.12, 0.22), 0.015),
        noise=u(0.0, 0.08),
        join=u(0.85, 1.0),
        late_marks=u(0.0, 1.0),
    )


# ----------------------------------------------------------------------------------------------------------
# drawing


@dataclass
class _Params:
    """One sample's concrete values, drawn from a :class:`WriterStyle`."""

    height: float
    slant: float
    width: float
    size_jitter: float
    tracking: float
    word_space: float
    drift: float
    tilt: float
    wobble: float
    wavelengths: np.ndarray
    spacing: float
    noise: float
    join: float
    late_marks: float


def _plain_params(font: _Font) -> _Params:
    return _Params(1.0, font.slant, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, np.ones(3), 0.15, 0.0, 1.0, 0.0)


def _draw_params(style: WriterStyle, rng: np.random.Generator) -> _Params:
    u = lambda r: float(rng.uniform(*r))  # noqa: E731
    return _Params(
        height=u(style.height),
        slant=u(style.slant),
        width=u(style.width),
        size_jitter=style.size_jitter,
        tracking=u(style.tracking),
        word_space=u(style.word_space),
        drift=u(style.baseline_drift),
        tilt=float(rng.normal(0.0, style.tilt)),
        wobble=u(style.wobble),
        wavelengths=rng.uniform(*style.wobble_wavelength, size=3),
        spacing=u(style.spacing),
        noise=style.noise,
        join=style.join,
        late_marks=style.late_marks,
    )


def _layout(font: _Font, text: str, p: _Params, rng: np.random.Generator | None = None):
    """Place the glyphs of ``text``: returns (strokes in x-heights, glyph centres, glyph height factors)."""
    rng = rng or np.random.default_rng(0)
    n = len(text)
    zs = rng.standard_normal((n, 2)) * p.size_jitter
    coin = rng.random((n, 8))  # join decisions per glyph stroke (at most 8 strokes per glyph here)
    late = rng.random(n) < p.late_marks  # decided per word (at its first letter)
    gaps = rng.uniform(-0.15, 0.15, n)
    out: list[np.ndarray] = []
    current: list[np.ndarray] = []  # the pieces of the pen-down path being drawn
    marks: list[np.ndarray] = []  # dots and crosses left for the end of the word
    centres, factors = [], []
    cursor = 0.0
    owner = -1  # the glyph whose stroke the current path ended with
    word_late = bool(late[0]) if n else False

    def flush_path():
        if current:
            out.append(np.concatenate(current) if len(current) > 1 else current[0])
            current.clear()

    for i, ch in enumerate(text):
        if ch == " ":
            flush_path()
            out.extend(marks)
            marks.clear()
            cursor += p.word_space * (1 + gaps[i])
            word_late = bool(late[i])
            continue
        g = font.glyphs[ch]
        w = p.width * math.exp(0.5 * zs[i, 0])
        for k, s in enumerate(g.strokes):
            pts = s * (w, 1.0) + (cursor, 0.0)
            if g.marks[k]:
                if word_late:
                    marks.append(pts)
                else:
                    flush_path()
                    out.append(pts)
                continue
            more = None
            if current and coin[i, k % 8] < p.join and (owner == i or font.joins):
                prev_letter = font.glyphs[text[owner]].letter
                more = _continue(current[-1], pts, owner == i, font.joins and g.letter and prev_letter)
            if more is None:
                flush_path()
                more = pts
            current.append(more)
            owner = i
        centres.append(cursor + 0.5 * g.width * w)
        factors.append(math.exp(zs[i, 1]))
        cursor += g.width * w + (0.0 if font.joins else p.tracking * (1 + gaps[i]))
    flush_path()
    out.extend(marks)
    return out, np.asarray(centres), np.asarray(factors)


def _continue(path: np.ndarray, pts: np.ndarray, same_glyph: bool, connect: bool) -> np.ndarray | None:
    """The points that continue the pen's ``path`` into the stroke ``pts`` without lifting the pen, or None.

    * A stroke that starts where the path ends continues it (the joins of a script font).
    * Within one glyph a writer also draws a stroke that *ends* there backwards, and goes back along the path
      a little (at most one x-height) to a stroke that starts on it: how people print ``b``, ``n`` or ``w``.
    * With ``connect`` (letters of a script font) a short forward gap, or a steep one (going back up or down
      a stem, as in cursive ``m``, ``n``, ``t``, ``d``, ``p``), is bridged with a smooth connecting curve:
      how cursive reaches the top of an ``a`` or ``o`` from the previous letter.
    """
    end = path[-1]
    if abs(pts[0, 0] - end[0]) + abs(pts[0, 1] - end[1]) < _JOIN_TOL:
        return pts[1:]
    if same_glyph:
        if abs(pts[-1, 0] - end[0]) + abs(pts[-1, 1] - end[1]) < _JOIN_TOL:
            return pts[-2::-1]
        d = np.abs(path - pts[0]).sum(axis=1)
        j = int(np.argmin(d))
        if d[j] < _JOIN_TOL:
            back = path[j:][::-1]
            step = np.diff(back, axis=0)
            if np.hypot(step[:, 0], step[:, 1]).sum() <= 1.0:
                return np.concatenate([back[1:], pts[1:]])
    if connect and len(path) >= 2 and len(pts) >= 2:
        head = pts[:0]
        if not same_glyph and pts[0, 0] - end[0] > 0.5:
            # letters that start on their bowl (a, c, d, g, q) are entered over the top of the bowl: the
            # connecting stroke rises along the bowl's upper left to its top, runs back over the font's first
            # few points (a retrace, as in real cursive) and then draws the letter, instead of cutting across
            top = int(np.argmax(pts[: max(len(pts) // 3, 1), 1]))
            if pts[top, 1] > pts[0, 1] + 0.1:
                head = pts[top::-1]
        target = head[0] if len(head) else pts[0]
        gx, gy = target[0] - end[0], target[1] - end[1]
        dist = math.hypot(gx, gy)
        if (gx > 0 and dist <= 1.2) or (abs(gy) >= 2 * abs(gx) and dist <= 2.2):
            after = head[1] if len(head) else pts[1]
            bridge = _hermite(end, target, end - path[-2], after - target, dist)
            return np.concatenate([bridge, head, pts[1:] if len(head) else pts])
    return None


_HT = np.linspace(0.0, 1.0, 13)[1:-1, None]  # the interior points of a bridge
_HERMITE = np.hstack([2 * _HT**3 - 3 * _HT**2 + 1, -2 * _HT**3 + 3 * _HT**2, _HT**3 - 2 * _HT**2 + _HT, _HT**3 - _HT**2])


def _hermite(a: np.ndarray, b: np.ndarray, ta: np.ndarray, tb: np.ndarray, length: float) -> np.ndarray:
    """Interior points of a smooth curve from ``a`` to ``b`` leaving ``a`` along ``ta`` and reaching ``b``
    along ``tb`` (cubic Hermite, tangents scaled to ``length``)."""
    ta = ta * (length / max(math.hypot(ta[0], ta[1]), 1e-12))
    tb = tb * (length / max(math.hypot(tb[0], tb[1]), 1e-12))
    return _HERMITE @ np.stack([a, b, ta, tb])


def _sines(s: np.ndarray, wavelengths: np.ndarray, rng: np.random.Generator, dims: int = 1) -> np.ndarray:
    """``dims`` smooth random functions of ``s`` (``(len(s), dims)``), each a sum of sinusoids with the given
    wavelengths and random phases and amplitudes, scaled to a peak of about 1."""
    k = len(wavelengths)
    amp = rng.uniform(0.5, 1.0, size=(dims, k))
    amp /= amp.sum(axis=1, keepdims=True) / 1.5  # the sum rarely reaches its bound: peaks come out near 1
    phase = rng.uniform(0.0, 2 * np.pi, size=(dims, k))
    arg = s[:, None, None] * (2 * np.pi / np.asarray(wavelengths))[None, None, :] + phase[None]
    return (np.sin(arg) * amp).sum(axis=-1)


def _resample_all(pts: np.ndarray, lens: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`handwriting.strokes.resample` for strokes given as concatenated points ``pts`` and their
    lengths ``lens``, vectorised over all strokes (same points: equal arc-length steps, ends kept).
    Returns the new points and the new stroke lengths."""
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    seg[starts[1:] - 1] = 0.0  # no length between one stroke's end and the next one's start
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[starts + lens - 1] - arc[starts]
    n = np.where(lens < 2, 1, np.maximum(np.ceil(total / spacing), 1).astype(np.int64) + 1)
    gap = float(total.max()) + 1.0
    key = arc + gap * np.repeat(np.arange(len(lens)), lens)  # one increasing parameter over all strokes
    sid = np.repeat(np.arange(len(lens)), n)
    j = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    t = arc[starts][sid] + total[sid] * j / np.maximum(n - 1, 1)[sid] + gap * sid
    return np.stack([np.interp(t, key, pts[:, 0]), np.interp(t, key, pts[:, 1])], axis=1), n


def _render(font: _Font, text: str, p: _Params, rng: np.random.Generator, where: str = "synthetic writer"):
    strokes, centres, factors = _layout(font, text, p, rng)
    if not strokes:
        raise DataError(f"{where}: text {text!r} has nothing to draw (it is empty or only spaces); pass some characters")
    lens = np.array([len(s) for s in strokes])
    pts = np.concatenate(strokes)
    x, y = pts[:, 0], pts[:, 1]
    # smooth per-glyph size jitter, slant, baseline drift and tilt: one vectorised pass over all points
    y = y * (np.interp(x, centres, factors) if len(centres) > 1 else factors[0])
    x = x + (p.slant - font.slant) * y
    y = y + p.drift * _sines(x, rng.uniform(6.0, 15.0, size=2), rng)[:, 0] + math.tan(p.tilt) * x
    pts, lens = _resample_all(np.stack([x, y], axis=1) * p.height, lens, p.spacing * p.height)
    # wobble along the pen's path (pen-up moves do not advance it), then sensor noise
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    ends = np.cumsum(lens) - 1
    seg[ends[:-1]] = 0.0
    s = np.concatenate([[0.0], np.cumsum(seg)]) / p.height
    pts += p.wobble * p.height * _sines(s, p.wavelengths, rng, dims=2)
    if p.noise > 0:
        pts += rng.normal(0.0, p.noise * p.spacing * p.height, size=pts.shape)
    out = np.empty((len(pts), 3), dtype=np.float64)
    out[:, :2] = np.diff(pts, axis=0, prepend=np.zeros((1, 2)))
    out[:, 2] = 0.0
    out[ends, 2] = 1.0
    return out.astype(np.float32)


def _check_text(text: str, unknown: str, replacement: str, where: str) -> str:
    if not isinstance(text, str):
        raise DataError(f"{where}: expected a string, got {type(text).__name__}")
    if unknown not in ("error", "replace"):
        raise DataError(f"{where}: unknown={unknown!r}; use 'error' or 'replace'")
    bad = [i for i, c in enumerate(text) if c not in _ALPHA_SET]
    if not bad:
        return text
    if unknown == "error":
        i = bad[0]
        raise DataError(
            f"{where}: character {text[i]!r} (U+{ord(text[i]):04X}) at position {i} of {text!r} is not in the "
            f"synthetic writer's alphabet (printable ASCII, see SYNTHETIC_ALPHABET); remove it, or pass "
            f"unknown='replace' to draw its ASCII look-alike or {replacement!r}"
        )
    chars = list(text)
    for i in bad:
        folded = unicodedata.normalize("NFKD", text[i]).encode("ascii", "ignore").decode()
        chars[i] = folded if folded and all(c in _ALPHA_SET for c in folded) else replacement
    return "".join(chars)


_ALPHA_SET = frozenset(SYNTHETIC_ALPHABET)


class SyntheticWriter:
    """A writer with a :class:`WriterStyle` (or the name of one in :data:`WRITERS`) and a seed.

    ``write(text)`` draws one sample; successive calls draw different samples (a writer never writes the
    same word twice identically), and a new ``SyntheticWriter(style, seed)`` repeats the same sequence.
    Pass ``rng`` to ``write`` to control the randomness of one sample yourself.
    """

    def __init__(self, style: WriterStyle | str = "neat", seed: int = 0):
        if isinstance(style, str):
            if style not in WRITERS:
                raise DataError(f"synthetic writer: unknown writer {style!r}; use one of {sorted(WRITERS)}")
            style = WRITERS[style]
        if not isinstance(style, WriterStyle):
            raise DataError(f"synthetic writer: style must be a WriterStyle or a name, got {type(style).__name__}")
        self.style = style
        self.seed = seed
        self._font = _load_font(style.font)
        self._rng = np.random.default_rng(np.random.SeedSequence([int(seed), _name_key(style.name)]))

    def __repr__(self) -> str:
        return f"SyntheticWriter({self.style.name!r}, seed={self.seed})"

    def write(
        self,
        text: str,
        *,
        rng: np.random.Generator | None = None,
        unknown: str = "error",
        replacement: str = "?",
        source: str | None = None,
    ) -> Sample:
        """Draw ``text`` (printable ASCII; spaces separate words) as one :class:`Sample`.

        Characters outside :data:`SYNTHETIC_ALPHABET` raise :class:`DataError` naming the character and its
        position, or with ``unknown="replace"`` become their ASCII look-alike (é → e) or ``replacement``; the
        sample's text is what was drawn.
        """
        return _write(
            self.style, text, self._rng if rng is None else rng, unknown, replacement,
            f"synthetic writer {self.style.name!r}", source or f"synthetic:{self.style.name}",
        )


def _write(style: WriterStyle, text: str, rng, unknown: str, replacement: str, where: str, source: str) -> Sample:
    text = _check_text(text, unknown, replacement, where)
    offsets = _render(_load_font(style.font), text, _draw_params(style, rng), rng, where)
    return Sample(offsets, text=text, writer=style.name, source=source)


def _name_key(name: str) -> int:
    return int.from_bytes(name.encode()[:16].ljust(16, b"\0"), "little")


def synthesize(
    texts: Iterable[str],
    writer: WriterStyle | str | None = None,
    seed: int = 0,
    unknown: str = "error",
) -> list[Sample]:
    """Draw every text in ``texts``; sample ``i`` depends only on ``(seed, i, text, writer)``.

    ``writer``: a name in :data:`WRITERS`, a :class:`WriterStyle`, or ``None`` for a different random writer
    (:func:`random_style`) per sample, named ``random-<seed>-<i>``.
    """
    if isinstance(writer, str):
        if writer not in WRITERS:
            raise DataError(f"synthesize: unknown writer {writer!r}; use one of {sorted(WRITERS)} or None")
        writer = WRITERS[writer]
    out = []
    for i, text in enumerate(texts):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), i]))
        style = writer if writer is not None else random_style(rng, name=f"random-{seed}-{i}")
        where = f"synthesize: text {i}"
        out.append(_write(style, text, rng, unknown, "?", where, f"synthetic:{style.name}:{seed}:{i}"))
    return out


# ----------------------------------------------------------------------------------------------------------
# words and slant

_VOWELS = "aeiouy"


def random_words(n: int, seed: int = 0, alphabet: str = WORD_ALPHABET, max_len: int = 12) -> list[str]:
    """``n`` random words like bigbank's: mostly pronounceable lower-case syllables, some random strings,
    occasional capitals, digits and punctuation — using only characters of ``alphabet`` (no spaces)."""
    chars = sorted(set(alphabet) - {" ", "\t", "\n"})
    if not chars:
        raise DataError(f"random_words: alphabet {alphabet!r} has no characters to draw words from")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED]))
    vow = [c for c in chars if c in _VOWELS]
    con = [c for c in chars if c.islower() and c not in _VOWELS]
    upper = set(c for c in chars if c.isupper())
    punct = [c for c in chars if not c.isalnum()]
    digits = [c for c in chars if c.isdigit()]
    words = []
    for _ in range(n):
        r = rng.random()
        if vow and con and r < 0.65:
            w = ""
            for _ in range(int(rng.integers(1, 4))):
                syl = con[rng.integers(len(con))] if rng.random() < 0.85 else ""
                syl += vow[rng.integers(len(vow))]
                if rng.random() < 0.35:
                    syl += con[rng.integers(len(con))]
                w += syl
            if rng.random() < 0.15 and w[0].upper() in upper:
                w = w[0].upper() + w[1:]
        elif digits and r < 0.72:
            w = "".join(digits[i] for i in rng.integers(len(digits), size=int(rng.integers(1, 5))))
        else:
            w = "".join(chars[i] for i in rng.integers(len(chars), size=int(rng.integers(1, 8))))
        if punct and rng.random() < 0.1:
            w += punct[rng.integers(len(punct))]
        words.append(w[:max_len])
    return words


def estimate_slant(offsets: np.ndarray) -> float:
    """Mean slant of the writing: dx per unit dy of its near-vertical pen-down moves (0 = upright, > 0 leans
    right), measured as :func:`handwriting.strokes.align` measures it before removing it."""
    a = to_absolute(offsets)
    return _mean_slant(np.diff(a[:, :2], axis=0)[a[:-1, 2] < 0.5])
