"""Turn pen offsets into discrete tokens and back: the cursive transformer's tokenizers.

A handwriting sequence in the project convention (``(N, 3)`` rows of ``(dx, dy, end_of_stroke)``, y up, see
:mod:`handwriting.strokes`) becomes a 1-D array of integer tokens that a GPT-style language model can predict.

Two schemes, both from *The Cursive Transformer* (Greydanus & Wimpee 2025, arXiv:2504.00051):

* :class:`PolarTokenizer` (the paper's final one): every offset becomes **two** tokens, the direction θ first
  and then the length r with the pen state folded in ("point, then shoot").  θ has 220 equal bins over
  [−π, π]; r takes 151 values — 0, 30 values spaced linearly in [1e-4, 0.06] and 120 spaced geometrically up
  to 0.9 — and each r value exists twice, once for "the pen stays down after this point" and once for "the
  pen lifts after this point" (our ``end_of_stroke`` bit), so there are 302 r tokens.
* :class:`CartesianTokenizer` (the paper's earlier one): every offset becomes **three** tokens: the x and y
  components of the unit direction vector, each quantised on its own, and the same length-plus-pen token.

Token layout (both schemes): ``0 PAD, 1 BOS, 2 END, 3 WORD``, then the scheme's value tokens.  ``BOS`` starts
every sequence (the model's first input), ``END`` closes it, ``PAD`` fills batches, and ``WORD`` is emitted
twice between the words of a stitched line (the paper's separator).  Special tokens never decode into points.
The polar vocabulary therefore has 4 + 220 + 302 = 526 tokens (the paper's 525 has no BOS token).

Quantisation rounds to the *nearest* value (the reference floors to the lower bin edge, which doubles the
worst-case error), so the decoded offset is within half a bin of the original: the direction within π/220
(polar) and the length within half the gap between neighbouring r values.  Lengths beyond the last r value
(0.9 × scale) are clipped; :meth:`PolarTokenizer.error_bound` gives the exact per-point bound.

Units: the r values are in the units of the bigbank data set as loaded by
:func:`handwriting.datasets.jsonink.load_bigbank` (x × aspectRatio 6, as the reference code does before
tokenizing; y flipped, which mirrors θ but changes no length): a word is about 0.3 units high.  Other
sources (IAM-OnDB in its own units, QuickDraw, the synthetic writer, a user's canvas) are brought to that
scale by a single factor: ``tokenizer.fit_scale(samples)`` sets ``scale`` so that the samples' median
height equals bigbank's (:data:`BIGBANK_MEDIAN_HEIGHT`); ``encode`` multiplies offsets by ``scale`` and
``decode`` divides, so callers always work in their own units.  The scale is saved by ``to_dict``.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from ..strokes import Sample, downsample as _downsample, to_absolute

__all__ = [
    "PAD",
    "BOS",
    "END",
    "WORD",
    "NUM_SPECIAL",
    "BIGBANK_MEDIAN_HEIGHT",
    "radius_values",
    "PolarTokenizer",
    "CartesianTokenizer",
    "tokenizer_from_dict",
    "tokenizer_report",
    "format_report",
]

PAD, BOS, END, WORD = 0, 1, 2, 3
NUM_SPECIAL = 4
SPECIAL_NAMES = ("<PAD>", "<BOS>", "<END>", "<WORD>")

#: Median height (max y − min y) of a bigbank word in load_bigbank units, measured on all 3,500 words.
BIGBANK_MEDIAN_HEIGHT = 0.295


def radius_values(
    linear: Sequence[float] = (1e-4, 0.06, 30),
    geometric: Sequence[float] = (0.06, 0.9, 120),
    zero: bool = True,
) -> np.ndarray:
    """The quantised lengths: ``0`` (if ``zero``), ``linear=(lo, hi, n)`` evenly spaced values and
    ``geometric=(lo, hi, n)`` geometrically spaced values above them (a ``lo`` equal to the linear part's last
    value is not repeated).  Defaults give the paper's 151 values."""
    lo, hi, n = float(linear[0]), float(linear[1]), int(linear[2])
    glo, ghi, gn = float(geometric[0]), float(geometric[1]), int(geometric[2])
    if not (0 < lo < hi) or n < 1 or not (0 < glo < ghi) or gn < 1:
        raise ValueError(f"radius_values: need 0 < lo < hi and n >= 1, got linear={linear}, geometric={geometric}")
    lin = np.linspace(lo, hi, n)
    geo = np.geomspace(glo, ghi, gn + 1)[1:] if glo <= lin[-1] else np.geomspace(glo, ghi, gn)
    vals = np.concatenate([[0.0] if zero else [], lin, geo])
    if np.any(np.diff(vals) <= 0):
        raise ValueError(f"radius_values: values must increase strictly; check linear={linear}, geometric={geometric}")
    return vals


def _nearest(values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of the sorted ``values`` for every ``x`` (vectorised, clipped at the ends)."""
    mid = 0.5 * (values[1:] + values[:-1])
    return np.searchsorted(mid, x, side="left")


class _Tokenizer:
    """Shared machinery: special tokens, the length-plus-pen tokens, scaling, word separators."""

    kind = "base"
    tokens_per_point = 0
    PAD, BOS, END, WORD = PAD, BOS, END, WORD

    def __init__(self, r_linear, r_geometric, r_zero, scale):
        self.r_linear = (float(r_linear[0]), float(r_linear[1]), int(r_linear[2]))
        self.r_geometric = (float(r_geometric[0]), float(r_geometric[1]), int(r_geometric[2]))
        self.r_zero = bool(r_zero)
        self.r_values = radius_values(self.r_linear, self.r_geometric, self.r_zero)
        self.n_r = len(self.r_values)
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"{type(self).__name__}: scale must be a positive number, got {scale!r}")
        self.scale = float(scale)

    # -- layout -------------------------------------------------------------------------------------------
    @property
    def r_offset(self) -> int:  # first r token (pen stays down); + n_r: pen lifts after the point
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        return self.r_offset + 2 * self.n_r

    def is_special(self, tokens) -> np.ndarray:
        return np.asarray(tokens) < NUM_SPECIAL

    def is_r(self, tokens) -> np.ndarray:
        t = np.asarray(tokens)
        return (t >= self.r_offset) & (t < self.r_offset + 2 * self.n_r)

    def _r_tokens(self, r: np.ndarray, eos: np.ndarray) -> np.ndarray:
        return self.r_offset + _nearest(self.r_values, r) + self.n_r * eos.astype(np.int64)

    def _r_decode(self, tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = tok - self.r_offset
        return self.r_values[k % self.n_r], (k >= self.n_r).astype(np.float32)

    # -- encoding -----------------------------------------------------------------------------------------
    def _check(self, offsets, where: str) -> np.ndarray:
        arr = np.asarray(offsets, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ValueError(f"{where}: expected an (N, 3) array of (dx, dy, end_of_stroke), got shape {arr.shape}")
        if not np.isfinite(arr).all():
            i = int(np.argmax(~np.isfinite(arr).all(axis=1)))
            raise ValueError(f"{where}: row {i} is not finite ({arr[i].tolist()}); clean or drop the sample")
        return arr

    def _point_tokens(self, xy: np.ndarray, eos: np.ndarray) -> np.ndarray:  # (N, tokens_per_point)
        raise NotImplementedError

    def encode(
        self,
        offsets: np.ndarray,
        word_starts: Sequence[int] | None = None,
        bos: bool = True,
        end: bool = True,
    ) -> np.ndarray:
        """Offsets ``(N, 3)`` → 1-D int64 tokens: ``[BOS] point tokens [END]``.

        ``word_starts`` lists the rows at which a new word of a stitched line begins; ``WORD WORD`` is put
        before those rows' tokens (row 0 and repeats are ignored)."""
        arr = self._check(offsets, f"{type(self).__name__}.encode")
        xy = arr[:, :2] * self.scale
        toks = self._point_tokens(xy, arr[:, 2] > 0.5).reshape(-1)
        if word_starts is not None and len(word_starts):
            ws = np.unique(np.asarray(word_starts, dtype=np.int64))
            if ws.min() < 0 or ws.max() > len(arr):
                raise ValueError(f"encode: word_starts must lie in [0, {len(arr)}], got {ws.tolist()}")
            ws = ws[(ws > 0) & (ws < len(arr))]
            pos = np.repeat(ws * self.tokens_per_point, 2)
            toks = np.insert(toks, pos, WORD)
        parts = ([np.array([BOS])] if bos else []) + [toks] + ([np.array([END])] if end else [])
        return np.concatenate(parts).astype(np.int64)

    # -- decoding -----------------------------------------------------------------------------------------
    def _find_points(self, t: np.ndarray) -> np.ndarray:
        """Start index of every complete, well-formed point group in ``t``."""
        raise NotImplementedError

    def _decode_points(self, t: np.ndarray, idx: np.ndarray) -> np.ndarray:  # (n, 3) in scaled units
        raise NotImplementedError

    def decode(self, tokens, return_word_starts: bool = False, stop_at_end: bool = True):
        """Tokens → offsets ``(N, 3)`` float32 in the caller's units (``0 × 3`` if there is no point).

        Decoding stops at the first ``END`` (unless ``stop_at_end=False``); special tokens and incomplete or
        out-of-order groups (possible in model samples) are skipped, never turned into points.  The last row
        gets ``end_of_stroke = 1`` so the result follows the stroke convention.  With
        ``return_word_starts=True`` it also returns the rows at which each ``WORD`` separator starts a word."""
        t = np.asarray(tokens.detach().cpu() if hasattr(tokens, "detach") else tokens).astype(np.int64).reshape(-1)
        if stop_at_end:
            ends = np.flatnonzero(t == END)
            if len(ends):
                t = t[: ends[0]]
        idx = self._find_points(t)
        pts = self._decode_points(t, idx)
        pts[:, :2] /= self.scale
        out = pts.astype(np.float32)
        if len(out):
            out[-1, 2] = 1.0
        if not return_word_starts:
            return out
        w = np.flatnonzero(t == WORD)
        first = w[(w == 0) | (np.roll(t, 1)[w] != WORD)] if len(w) else w
        starts = np.searchsorted(idx, first)
        starts = np.unique(starts[(starts > 0) & (starts < len(out))])
        return out, starts.tolist()

    # -- scale --------------------------------------------------------------------------------------------
    def fit_scale(self, samples: Iterable, target_height: float = BIGBANK_MEDIAN_HEIGHT):
        """Set ``scale`` so that the median height of ``samples`` (Samples or offset arrays) becomes
        ``target_height`` (bigbank's median word height by default); returns ``self``."""
        heights = []
        for s in samples:
            off = s.offsets if isinstance(s, Sample) else np.asarray(s)
            y = to_absolute(off)[:, 1]
            heights.append(float(np.ptp(y)))
        h = float(np.median(heights)) if heights else 0.0
        if not h > 0:
            raise ValueError("fit_scale: the samples have no height (empty or flat); cannot fit a scale")
        self.scale = float(target_height / h)
        return self

    # -- inspection ---------------------------------------------------------------------------------------
    def error_bound(self, offsets: np.ndarray) -> np.ndarray:
        """Per-row upper bound of ``|decode(encode(x)) − x|`` (Euclidean, caller's units)."""
        arr = self._check(offsets, "error_bound")
        r = np.hypot(arr[:, 0], arr[:, 1]) * self.scale
        k = _nearest(self.r_values, r)
        r_err = np.abs(self.r_values[k] - r)
        return (r_err + self._direction_bound() * r) / self.scale + 1e-9 * (1 + r / self.scale)

    def _direction_bound(self) -> float:
        raise NotImplementedError

    def describe(self, token: int) -> str:
        """A short human-readable name of one token (for notebooks)."""
        token = int(token)
        if 0 <= token < NUM_SPECIAL:
            return SPECIAL_NAMES[token]
        if self.is_r(token):
            r, e = self._r_decode(np.array([token]))
            return f"r={r[0]:.4g}{' lift' if e[0] else ''}"
        return self._describe_direction(token)

    def _describe_direction(self, token: int) -> str:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, scale={self.scale:.4g})"

    def _base_dict(self) -> dict:
        return {
            "kind": self.kind,
            "version": 1,
            "r_linear": list(self.r_linear),
            "r_geometric": list(self.r_geometric),
            "r_zero": self.r_zero,
            "scale": self.scale,
        }


class PolarTokenizer(_Tokenizer):
    """Two tokens per offset: direction θ, then length r with the pen state (Greydanus & Wimpee 2025)."""

    kind = "polar"
    tokens_per_point = 2

    def __init__(
        self,
        n_theta: int = 220,
        r_linear: Sequence[float] = (1e-4, 0.06, 30),
        r_geometric: Sequence[float] = (0.06, 0.9, 120),
        r_zero: bool = True,
        scale: float = 1.0,
    ):
        super().__init__(r_linear, r_geometric, r_zero, scale)
        if int(n_theta) < 2:
            raise ValueError(f"PolarTokenizer: n_theta must be >= 2, got {n_theta}")
        self.n_theta = int(n_theta)
        self.theta_width = 2 * math.pi / self.n_theta
        self.theta_centers = -math.pi + (np.arange(self.n_theta) + 0.5) * self.theta_width
        self.theta_offset = NUM_SPECIAL

    @property
    def r_offset(self) -> int:
        return NUM_SPECIAL + self.n_theta

    def is_theta(self, tokens) -> np.ndarray:
        t = np.asarray(tokens)
        return (t >= self.theta_offset) & (t < self.theta_offset + self.n_theta)

    def _point_tokens(self, xy, eos):
        theta = np.arctan2(xy[:, 1], xy[:, 0])
        k = np.floor((theta + math.pi) / self.theta_width).astype(np.int64)
        k = np.clip(k, 0, self.n_theta - 1)
        r = np.hypot(xy[:, 0], xy[:, 1])
        return np.stack([self.theta_offset + k, self._r_tokens(r, eos)], axis=1)

    def _find_points(self, t):
        if len(t) < 2:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.is_theta(t[:-1]) & self.is_r(t[1:]))

    def _decode_points(self, t, idx):
        theta = self.theta_centers[t[idx] - self.theta_offset]
        r, eos = self._r_decode(t[idx + 1])
        return np.stack([r * np.cos(theta), r * np.sin(theta), eos], axis=1).astype(np.float64).reshape(-1, 3)

    def _direction_bound(self) -> float:
        return self.theta_width / 2  # chord <= arc = r * |Δθ|

    def _describe_direction(self, token):
        return f"θ={math.degrees(self.theta_centers[token - self.theta_offset]):+.1f}°"

    def to_dict(self) -> dict:
        return {**self._base_dict(), "n_theta": self.n_theta}

    @classmethod
    def from_dict(cls, d: dict) -> "PolarTokenizer":
        return tokenizer_from_dict(d, expect=cls)


class CartesianTokenizer(_Tokenizer):
    """Three tokens per offset: unit-vector x, unit-vector y, length r with the pen state (the paper's first
    scheme).  Unit components are rounded to ``n_unit`` values evenly spaced in [−1, 1]."""

    kind = "cartesian"
    tokens_per_point = 3

    def __init__(
        self,
        n_unit: int = 111,
        r_linear: Sequence[float] = (1e-4, 0.06, 30),
        r_geometric: Sequence[float] = (0.06, 0.9, 120),
        r_zero: bool = True,
        scale: float = 1.0,
    ):
        super().__init__(r_linear, r_geometric, r_zero, scale)
        if int(n_unit) < 3:
            raise ValueError(f"CartesianTokenizer: n_unit must be >= 3, got {n_unit}")
        self.n_unit = int(n_unit)
        self.unit_values = np.linspace(-1.0, 1.0, self.n_unit)
        self.ux_offset = NUM_SPECIAL
        self.uy_offset = NUM_SPECIAL + self.n_unit

    @property
    def r_offset(self) -> int:
        return NUM_SPECIAL + 2 * self.n_unit

    def is_ux(self, tokens) -> np.ndarray:
        t = np.asarray(tokens)
        return (t >= self.ux_offset) & (t < self.ux_offset + self.n_unit)

    def is_uy(self, tokens) -> np.ndarray:
        t = np.asarray(tokens)
        return (t >= self.uy_offset) & (t < self.uy_offset + self.n_unit)

    def _point_tokens(self, xy, eos):
        r = np.hypot(xy[:, 0], xy[:, 1])
        safe = np.where(r > 0, r, 1.0)
        u = xy / safe[:, None]
        ku = _nearest(self.unit_values, u)
        return np.stack([self.ux_offset + ku[:, 0], self.uy_offset + ku[:, 1], self._r_tokens(r, eos)], axis=1)

    def _find_points(self, t):
        if len(t) < 3:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.is_ux(t[:-2]) & self.is_uy(t[1:-1]) & self.is_r(t[2:]))

    def _decode_points(self, t, idx):
        u = np.stack([self.unit_values[t[idx] - self.ux_offset], self.unit_values[t[idx + 1] - self.uy_offset]], 1)
        n = np.hypot(u[:, 0], u[:, 1])
        u = np.where(n[:, None] > 0, u / np.where(n > 0, n, 1.0)[:, None], 0.0)
        r, eos = self._r_decode(t[idx + 2])
        return np.concatenate([u * r[:, None], eos[:, None]], axis=1).astype(np.float64).reshape(-1, 3)

    def _direction_bound(self) -> float:
        # each component is off by <= h/2 (h the grid step), so |q - u| <= h/sqrt(2), and renormalising a
        # vector q near the unit vector u at most doubles that: |q/|q| - u| <= 2|q - u|
        h = 2.0 / (self.n_unit - 1)
        return 2 * h / math.sqrt(2)

    def _describe_direction(self, token):
        if self.is_ux(token):
            return f"ux={self.unit_values[token - self.ux_offset]:+.3f}"
        return f"uy={self.unit_values[token - self.uy_offset]:+.3f}"

    def to_dict(self) -> dict:
        return {**self._base_dict(), "n_unit": self.n_unit}

    @classmethod
    def from_dict(cls, d: dict) -> "CartesianTokenizer":
        return tokenizer_from_dict(d, expect=cls)


_KINDS = {"polar": PolarTokenizer, "cartesian": CartesianTokenizer}


def tokenizer_from_dict(d: dict, expect: type | None = None):
    """Rebuild a tokenizer saved with ``to_dict`` (checkpoints store it beside the model)."""
    try:
        kind = d["kind"]
        cls = _KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"tokenizer_from_dict: expected a dict with 'kind' in {sorted(_KINDS)}, got {d!r}")
    if expect is not None and cls is not expect:
        raise ValueError(f"{expect.__name__}.from_dict: the dict describes a {kind!r} tokenizer")
    common = dict(r_linear=d["r_linear"], r_geometric=d["r_geometric"], r_zero=d.get("r_zero", True),
                  scale=d.get("scale", 1.0))
    if cls is PolarTokenizer:
        return PolarTokenizer(n_theta=d["n_theta"], **common)
    return CartesianTokenizer(n_unit=d["n_unit"], **common)


# ----------------------------------------------------------------------------------------------------------
# the tokenizer report (round-trip error and tokens per character)


def tokenizer_report(
    samples: Sequence[Sample] | None = None,
    tokenizers: dict | None = None,
    removes: Sequence[float] = (0.0, 0.65),
) -> dict:
    """Round-trip error and sequence length of each tokenizer on ``samples`` (default: all of bigbank),
    without and with the paper's within-stroke downsampling (``remove`` fraction of interior points,
    evenly spaced, stroke ends kept).

    Returns ``{tokenizer_name: {"remove=0.65": {...}}}`` with, per setting: ``points_per_char``,
    ``tokens_per_char`` (point tokens only; add 2 per sample for BOS/END), ``tokens_per_word`` (mean and max),
    ``mean_err``/``rms_err``/``max_err`` of single offsets no longer than the largest r value, ``drift``
    (median over samples of the distance between the original and the decoded *last* point: quantisation
    errors accumulate along a sequence), all in data units and also relative to the median sample height
    (``*_rel``), and ``clipped`` (fraction of offsets longer than the largest r value, which decode to that
    length; ``clipped_max_err`` is their largest error)."""
    if samples is None:
        from ..datasets.jsonink import load_bigbank

        samples = load_bigbank()
    if tokenizers is None:
        tokenizers = {"polar": PolarTokenizer(), "cartesian": CartesianTokenizer()}
    height = float(np.median([np.ptp(to_absolute(s.offsets)[:, 1]) for s in samples]))
    report: dict = {"samples": len(samples), "median_height": height}
    for name, tok in tokenizers.items():
        rows = {}
        for remove in removes:
            n_char = n_pts = n_tok = 0
            per_word, errs, drifts, clipped = [], [], [], []
            for s in samples:
                off = s.offsets if remove <= 0 else _downsample(s.offsets, remove)
                t = tok.encode(off, bos=False, end=False)
                dec = tok.decode(t)
                d = np.hypot(*(dec[:, :2] - off[:, :2]).T)
                clip = np.hypot(off[:, 0], off[:, 1]) * tok.scale > tok.r_values[-1]
                errs.append(d[~clip])
                clipped.append(d[clip])
                drifts.append(float(np.hypot(*(dec[:, :2].sum(0) - off[:, :2].sum(0)))))
                n_char += len(s.text)
                n_pts += len(off)
                n_tok += len(t)
                per_word.append(len(t))
            e = np.concatenate(errs)
            c = np.concatenate(clipped)
            row = {
                "vocab_size": tok.vocab_size,
                "points_per_char": n_pts / max(n_char, 1),
                "tokens_per_char": n_tok / max(n_char, 1),
                "tokens_per_word": float(np.mean(per_word)),
                "max_tokens_per_word": int(np.max(per_word)),
                "mean_err": float(e.mean()),
                "rms_err": float(np.sqrt((e**2).mean())),
                "max_err": float(e.max()),
                "drift": float(np.median(drifts)),
                "clipped": len(c) / max(n_pts, 1),
                "clipped_max_err": float(c.max()) if len(c) else 0.0,
            }
            for k in ("mean_err", "rms_err", "max_err", "drift"):
                row[k + "_rel"] = row[k] / height
            rows[f"remove={remove:g}"] = row
        report[name] = rows
    return report


def format_report(report: dict) -> str:
    """The report of :func:`tokenizer_report` as a plain-text table."""
    lines = [
        f"{report['samples']} samples, median height {report['median_height']:.4f} units; errors in % of it "
        "(err: single offsets, clipped ones excluded; drift: median end-point error per sample)",
        f"{'tokenizer':<10} {'remove':>6} {'vocab':>5} {'pts/char':>8} {'tok/char':>8} {'tok/word':>8} "
        f"{'max tok':>7} {'mean err':>8} {'rms err':>8} {'max err':>8} {'drift':>7} {'clipped':>7}",
    ]
    for name, rows in report.items():
        if not isinstance(rows, dict):
            continue
        for setting, r in rows.items():
            lines.append(
                f"{name:<10} {setting.split('=')[1]:>6} {r['vocab_size']:>5} {r['points_per_char']:>8.1f} "
                f"{r['tokens_per_char']:>8.1f} {r['tokens_per_word']:>8.1f} {r['max_tokens_per_word']:>7} "
                f"{100 * r['mean_err_rel']:>7.3f}% {100 * r['rms_err_rel']:>7.3f}% {100 * r['max_err_rel']:>7.3f}% "
                f"{100 * r['drift_rel']:>6.2f}% {100 * r['clipped']:>6.3f}%"
            )
    return "\n".join(lines)
