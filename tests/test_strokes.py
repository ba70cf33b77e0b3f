"""The stroke convention (handwriting/strokes.py): conversions, normalisation, resampling, augmentation, stitching."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from handwriting.strokes import (
    AugmentConfig,
    Normalizer,
    Sample,
    StrokeError,
    align,
    augment,
    bounds,
    check_offsets,
    denoise,
    downsample,
    drop_points,
    from_strokes,
    grid_resample,
    resample,
    rotate,
    scale,
    shear,
    stitch,
    stroke_slices,
    to_absolute,
    to_offsets,
    to_strokes,
)

FAST = settings(max_examples=60, deadline=None)


# ----------------------------------------------------------------------------------------------------------
# strategies


@st.composite
def absolute_points(draw, integer: bool = True, max_n: int = 60):
    """``(n, 3)`` absolute rows (x, y, end_of_stroke) whose last row ends a stroke."""
    n = draw(st.integers(1, max_n))
    if integer:
        xy = draw(hnp.arrays(np.int64, (n, 2), elements=st.integers(-(10**6), 10**6))).astype(np.float64)
    else:
        xy = draw(
            hnp.arrays(np.float64, (n, 2), elements=st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False))
        )
    eos = draw(hnp.arrays(np.int8, n, elements=st.integers(0, 1))).astype(np.float64)
    eos[-1] = 1
    return np.column_stack([xy, eos])


@st.composite
def stroke_lists(draw, integer: bool = True):
    k = draw(st.integers(1, 6))
    out = []
    for _ in range(k):
        n = draw(st.integers(1, 20))
        if integer:
            s = draw(hnp.arrays(np.int64, (n, 2), elements=st.integers(-5000, 5000))).astype(np.float64)
        else:
            s = draw(hnp.arrays(np.float64, (n, 2), elements=st.floats(-10, 10, allow_nan=False)))
        out.append(s)
    return out


def polyline_strokes(rng: np.random.Generator, k: int = 4, n: int = 30, step: float = 1.0) -> list[np.ndarray]:
    return [np.cumsum(rng.normal(0, step, size=(n, 2)), axis=0) + rng.normal(0, 10, 2) for _ in range(k)]


def word(rng: np.random.Generator, width: float = 1.0, n_strokes: int = 3) -> Sample:
    """A word-like sample: a few wavy strokes with loops, baseline at y = 0, height ~0.3, starting at x = 0."""
    strokes = []
    x0 = 0.0
    for _ in range(n_strokes):
        t = np.linspace(0, 1, 40)
        w = width / n_strokes * 0.8
        x = x0 + w * t + 0.03 * np.sin(8 * np.pi * t)
        y = 0.15 + 0.15 * np.sin(2 * np.pi * (3 * t + rng.uniform()))
        strokes.append(np.stack([x, y], axis=1))
        x0 += width / n_strokes
    return Sample(from_strokes(strokes), text="w", source="test")


# ----------------------------------------------------------------------------------------------------------
# conversions


@FAST
@given(absolute_points(integer=True))
def test_absolute_offsets_round_trip_is_exact_on_a_grid(points):
    off = to_offsets(points)
    assert off.shape == points.shape
    np.testing.assert_array_equal(off[:, 2], points[:, 2])
    np.testing.assert_array_equal(off[0, :2], points[0, :2])  # row 0 is the first point relative to the origin
    np.testing.assert_array_equal(to_absolute(off), points)


@FAST
@given(absolute_points(integer=False))
def test_absolute_offsets_round_trip_for_general_floats(points):
    back = to_absolute(to_offsets(points))
    scale_ = max(1.0, float(np.abs(points[:, :2]).max()))
    np.testing.assert_allclose(back[:, :2], points[:, :2], rtol=0, atol=1e-9 * scale_)
    np.testing.assert_array_equal(back[:, 2], points[:, 2])


def test_to_absolute_honours_the_origin():
    off = np.array([[1.0, 2.0, 0], [1.0, -1.0, 1]])
    np.testing.assert_array_equal(to_absolute(off, origin=(10, 20))[:, :2], [[11, 22], [12, 21]])


@FAST
@given(stroke_lists(integer=True))
def test_stroke_lists_round_trip_exactly_on_a_grid(strokes):
    off = from_strokes(strokes)
    assert off.dtype == np.float32
    assert int(off[:, 2].sum()) == len(strokes) and off[-1, 2] == 1
    back = to_strokes(off)
    assert len(back) == len(strokes)
    for a, b in zip(back, strokes):
        np.testing.assert_array_equal(a, b)
    assert [sl.stop - sl.start for sl in stroke_slices(off)] == [len(s) for s in strokes]


@FAST
@given(stroke_lists(integer=False))
def test_stroke_lists_round_trip_for_floats(strokes):
    back = to_strokes(from_strokes(strokes))  # float32 offsets: about 7 significant digits
    for a, b in zip(back, strokes):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


def test_from_strokes_skips_empty_strokes_and_rejects_bad_ones():
    off = from_strokes([np.zeros((0, 2)), np.array([[1.0, 1.0], [2.0, 2.0]])])
    assert len(off) == 2 and off[:, 2].tolist() == [0, 1]
    with pytest.raises(StrokeError, match="stroke 1 must be an"):
        from_strokes([np.ones((2, 2)), np.ones((3, 3))], where="demo")
    with pytest.raises(StrokeError, match="no points"):
        from_strokes([np.zeros((0, 2))])


def test_bounds_and_sample_helpers():
    s = Sample(from_strokes([np.array([[0.0, 1.0], [2.0, -1.0]]), np.array([[5.0, 3.0]])]), text="ab")
    assert bounds(s.offsets) == (0.0, -1.0, 5.0, 3.0)
    assert len(s) == 3 and s.num_strokes == 2 and s.offsets.dtype == np.float32
    assert s.replace(text="x").text == "x" and s.text == "ab"


# ----------------------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 2)), r"expected an \(N, 3\) array"),
        (np.zeros((0, 3)), "empty"),
        (np.array([[0, 0, 0], [np.nan, 1, 0], [1, 1, 1]], float), "row 1 holds a non-finite value"),
        (np.array([[0, 0, 0], [1, 1, 0.5], [1, 1, 1]], float), "row 1 has end_of_stroke=0.5"),
        (np.array([[0, 0, 1], [1, 1, 0]], float), r"last row must end a stroke.*offsets\[-1, 2\] = 1"),
    ],
)
def test_check_offsets_names_where_and_the_row(bad, message):
    with pytest.raises(StrokeError, match=message) as e:
        check_offsets(bad, where="words.json#7")
    assert str(e.value).startswith("words.json#7: ")


def test_check_offsets_accepts_and_converts_good_input():
    out = check_offsets([[0.5, 1, 0], [1, 1, 1]])
    assert out.dtype == np.float32 and out.shape == (2, 3)


# ----------------------------------------------------------------------------------------------------------
# normalisation


@FAST
@given(st.integers(0, 2**32 - 1))
def test_normalizer_fit_normalize_denormalize_and_dict_round_trip(seed):
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(rng.integers(1, 5)):
        n = int(rng.integers(2, 50))
        off = np.column_stack([rng.normal(0.3, 2.0, n), rng.normal(-1.0, 0.5, n), rng.integers(0, 2, n)])
        off[-1, 2] = 1
        seqs.append(off.astype(np.float32))
    nz = Normalizer.fit(seqs)
    normed = nz.normalize(np.concatenate(seqs))
    np.testing.assert_allclose(normed[:, :2].mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(normed[:, :2].std(axis=0), 1.0, atol=1e-3)
    np.testing.assert_array_equal(normed[:, 2], np.concatenate(seqs)[:, 2])  # the pen bit is left alone
    for s in seqs:
        np.testing.assert_allclose(nz.denormalize(nz.normalize(s)), s, rtol=1e-5, atol=1e-5)
    again = Normalizer.from_dict(nz.to_dict())
    assert again == nz
    # batched (B, T, 3) input works the same way
    b = np.stack([seqs[0], seqs[0]])
    np.testing.assert_allclose(nz.normalize(b)[1], nz.normalize(seqs[0]))


def test_normalizer_handles_constant_data_and_uncentred_fit():
    nz = Normalizer.fit([np.array([[1.0, 2.0, 0], [1.0, 2.0, 1]])])
    assert nz.std == (1.0, 1.0)  # no division by zero
    nz = Normalizer.fit([np.array([[1.0, 2.0, 0], [3.0, 2.0, 1]])], center=False)
    assert nz.mean == (0.0, 0.0) and nz.std[0] == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [{}, {"mean": [0, 0]}, {"mean": [0, 0], "std": [1, 0]}, {"mean": [0], "std": [1]}, None])
def test_normalizer_from_dict_rejects_bad_dicts(bad):
    with pytest.raises(StrokeError, match="normalizer"):
        Normalizer.from_dict(bad)


# ----------------------------------------------------------------------------------------------------------
# resampling, downsampling, denoising, alignment


@FAST
@given(st.integers(0, 2**32 - 1), st.floats(0.05, 3.0))
def test_resample_keeps_stroke_ends_and_spacing(seed, spacing):
    rng = np.random.default_rng(seed)
    strokes = polyline_strokes(rng, k=int(rng.integers(1, 5)), n=int(rng.integers(2, 30)))
    strokes.append(np.array([[0.0, 0.0]]))  # a dot stays a dot
    out = to_strokes(resample(from_strokes(strokes), spacing))
    assert len(out) == len(strokes)
    for a, s in zip(out, strokes):
        np.testing.assert_allclose(a[0], s[0], atol=1e-3)
        np.testing.assert_allclose(a[-1], s[-1], atol=1e-3)
        if len(s) < 2:
            assert len(a) == 1
            continue
        length = np.linalg.norm(np.diff(s, axis=0), axis=1).sum()
        assert len(a) == max(math.ceil(length / spacing), 1) + 1
        # points are equally spaced along the path, so no chord is longer than the spacing
        assert np.linalg.norm(np.diff(a, axis=0), axis=1).max() <= spacing * (1 + 1e-3) + 1e-3


def test_resample_is_exact_on_a_straight_line():
    out = to_strokes(resample(from_strokes([np.array([[0.0, 0.0], [10.0, 0.0]])]), 0.5))[0]
    assert len(out) == 21
    np.testing.assert_allclose(np.diff(out[:, 0]), 0.5, atol=1e-5)
    with pytest.raises(ValueError, match="spacing must be > 0"):
        resample(from_strokes([np.zeros((2, 2))]), 0)


@FAST
@given(st.integers(0, 2**32 - 1), st.floats(0.5, 3.0))
@example(0, 1.2)  # the dot at x = 0.3 lies half a cell off the 0.6 grid: a rounding tie
def test_grid_resample_puts_every_point_on_the_grid_one_step_apart(seed, step):
    """A recorder's lattice: every point on the grid, consecutive points of a stroke one chessboard step apart
    (within the rounding), strokes and their ends kept, the path within half a grid cell of the original."""
    rng = np.random.default_rng(seed)
    grid = step / 2
    strokes = polyline_strokes(rng, k=int(rng.integers(1, 5)), n=int(rng.integers(2, 30)))
    strokes.append(np.array([[0.3, 0.4]]))  # a dot stays a dot (on the grid)
    offsets = from_strokes(strokes)
    out = to_strokes(grid_resample(offsets, step, grid))
    assert len(out) == len(strokes)
    # the ends are rounded as the (float32) offsets give them: a coordinate half a cell off the grid is a tie
    for a, s, given in zip(out, strokes, to_strokes(offsets)):
        assert np.allclose(a / grid, np.round(a / grid), atol=1e-3)
        np.testing.assert_allclose(a[[0, -1]], np.round(given[[0, -1]] / grid) * grid, atol=1e-3)
        if len(a) > 1:
            moves = np.abs(np.diff(a, axis=0)).max(axis=1)
            assert moves.min() >= grid - 1e-3 and moves.max() <= step + grid + 1e-3
            # every point lies near the original polyline
            seg_a, seg_b = s[:-1], s[1:]
            d = seg_b - seg_a
            along = np.einsum("pij,ij->pi", a[:, None] - seg_a[None], d)
            t = np.clip(along / np.maximum((d * d).sum(1), 1e-12), 0, 1)
            near = np.linalg.norm(a[:, None] - (seg_a[None] + t[..., None] * d[None]), axis=2).min(axis=1)
            assert near.max() <= grid * 0.71 + 1e-3


def test_grid_resample_walks_a_straight_line_in_equal_steps():
    """bigbank's recording: (0, 0) → (0.1, 0.05) at step 0.01 on a 0.005 grid is ten moves of (0.01, 0.005)."""
    out = grid_resample(from_strokes([np.array([[0.0, 0.0], [0.1, 0.05]])]), 0.01, 0.005)
    np.testing.assert_allclose(out[1:, :2], np.tile([0.01, 0.005], (10, 1)), atol=1e-6)
    with pytest.raises(ValueError, match="step and grid must be > 0"):
        grid_resample(out, 0, 0.005)


@FAST
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.95), st.booleans())
def test_downsample_keeps_ends_and_removes_the_right_fraction(seed, remove, random):
    rng = np.random.default_rng(seed)
    strokes = polyline_strokes(rng, k=int(rng.integers(1, 5)), n=int(rng.integers(1, 40)))
    off = from_strokes(strokes)
    out = downsample(off, remove, np.random.default_rng(seed) if random else None)
    got = to_strokes(out)
    assert len(got) == len(strokes)
    for g, s in zip(got, strokes):
        interior = max(len(s) - 2, 0)
        assert len(g) == len(s) - int(round(interior * remove))
        np.testing.assert_allclose(g[[0, -1]], s[[0, -1]], atol=1e-3)
        # the kept points are original points, in their original order
        d = np.linalg.norm(g[:, None, :] - s[None, :, :], axis=2)
        idx = d.argmin(axis=1)
        assert d.min(axis=1).max() < 1e-3 and np.all(np.diff(idx) > 0)
    if random:
        np.testing.assert_array_equal(out, downsample(off, remove, np.random.default_rng(seed)))


def test_downsample_rejects_bad_fractions():
    off = from_strokes([np.zeros((5, 2))])
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"remove must be in \[0, 1\)"):
            downsample(off, bad)


def test_denoise_reduces_noise_on_a_circle():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 200)
    clean = np.stack([np.cos(t), np.sin(t)], axis=1)
    noisy = clean + rng.normal(0, 0.02, clean.shape)
    out = to_strokes(denoise(from_strokes([noisy, np.array([[5.0, 5.0], [5.1, 5.0]])])))
    err = lambda a: np.abs(np.linalg.norm(a, axis=1) - 1.0).mean()  # noqa: E731 - distance from the circle
    assert err(out[0]) < 0.7 * err(noisy)  # Savitzky–Golay (7, 3) keeps about 0.6 of white noise
    wide = to_strokes(denoise(from_strokes([noisy]), window=21))[0]
    assert err(wide) < 0.8 * err(out[0])  # a wider window smooths more
    np.testing.assert_allclose(out[1], [[5.0, 5.0], [5.1, 5.0]], atol=1e-5)  # shorter than the window: kept


def _slant(offsets: np.ndarray) -> float:
    """Mean dx/dy of the pen-down moves within 45 degrees of vertical."""
    a = to_absolute(offsets)
    d = np.diff(a[:, :2], axis=0)[a[:-1, 2] == 0]
    d = d[np.abs(d[:, 1]) > np.abs(d[:, 0])]
    d = d * np.sign(d[:, 1:2])
    return float(d[:, 0].sum() / d[:, 1].sum())


def _ls_slope(offsets: np.ndarray) -> float:
    a = to_absolute(offsets)
    return float(np.polyfit(a[:, 0], a[:, 1], 1)[0])


def _picket_fence(n: int = 12) -> np.ndarray:
    """Upright strokes (down, then a shallow connector) along a horizontal baseline: no slant, no tilt."""
    strokes = []
    for k in range(n):
        x = 0.3 * k
        strokes.append(np.array([[x, 1.0], [x, 0.5], [x, 0.0], [x + 0.1, 0.05]]))
    return from_strokes(strokes)


@pytest.mark.parametrize("angle", [-0.3, -0.1, 0.15, 0.3])
def test_align_derotates_a_rotated_sample(angle):
    rng = np.random.default_rng(1)
    s = word(rng, width=3.0, n_strokes=5).offsets
    tilted = rotate(s, angle)
    assert abs(_ls_slope(tilted) - _ls_slope(s)) > 0.05
    out = align(tilted, slant=False)
    assert abs(_ls_slope(out)) < 0.2 * abs(math.tan(angle))
    # only a rotation: the shape (distances between points) is unchanged, pen bits too
    a, b = to_absolute(out), to_absolute(s)
    np.testing.assert_allclose(np.linalg.norm(np.diff(a[:, :2], axis=0), axis=1),
                               np.linalg.norm(np.diff(b[:, :2], axis=0), axis=1), atol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(out[:, 2], s[:, 2])
    np.testing.assert_allclose(out[0, :2], tilted[0, :2])  # the start position is kept


@pytest.mark.parametrize("amount", [-0.4, -0.2, 0.25, 0.45])
def test_align_deslants_a_sheared_sample(amount):
    s = _picket_fence()
    sheared = shear(s, amount)
    assert _slant(sheared) == pytest.approx(amount, abs=1e-5)
    out = align(sheared)
    assert abs(_slant(out)) < 0.02
    assert abs(_ls_slope(out)) < 0.05
    assert abs(_slant(align(sheared, slant=False))) > 0.1  # slant=False leaves the slant


# ----------------------------------------------------------------------------------------------------------
# linear maps and augmentation


offsets_strategy = absolute_points(integer=False, max_n=30).map(lambda p: to_offsets(p / 1000).astype(np.float32))
small = st.floats(-1.0, 1.0)


@FAST
@given(offsets_strategy, small, small)
def test_shear_scale_rotate_compose(off, a, b):
    tol = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(shear(shear(off, a), b), shear(off, a + b), **tol)
    np.testing.assert_allclose(rotate(rotate(off, a), b), rotate(off, a + b), **tol)
    sa, sb = 1 + a / 2, 1 + b / 2
    np.testing.assert_allclose(scale(scale(off, sa, sb), sb, sa), scale(off, sa * sb), **tol)
    np.testing.assert_allclose(rotate(rotate(off, a), -a), off, **tol)


@FAST
@given(offsets_strategy, offsets_strategy, small)
def test_shear_scale_rotate_are_linear_and_act_on_points_alike(o1, o2, a):
    n = min(len(o1), len(o2))
    o1, o2 = o1[:n].copy(), o2[:n].copy()
    o2[:, 2] = o1[:, 2]
    total = o1.copy()
    total[:, :2] += o2[:, :2]
    for f in (lambda o: shear(o, a), lambda o: rotate(o, a), lambda o: scale(o, 1 + a, 2 - a)):
        out = f(total)
        np.testing.assert_allclose(out[:, :2], f(o1)[:, :2] + f(o2)[:, :2], rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(out[:, 2], total[:, 2])
    # on absolute points: shear moves x by amount * y, rotation is counter-clockwise
    pts = to_absolute(o1)
    np.testing.assert_allclose(to_absolute(shear(o1, a))[:, 0], pts[:, 0] + a * pts[:, 1], rtol=1e-4, atol=1e-5)
    quarter = to_absolute(rotate(o1, math.pi / 2))
    np.testing.assert_allclose(quarter[:, :2], np.stack([-pts[:, 1], pts[:, 0]], axis=1), rtol=1e-4, atol=1e-5)


@FAST
@given(st.integers(0, 2**32 - 1))
def test_augment_is_deterministic_given_the_rng(seed):
    s = word(np.random.default_rng(3)).offsets
    a = augment(s, np.random.default_rng(seed))
    b = augment(s, np.random.default_rng(seed))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, augment(s, np.random.default_rng(seed + 1)))
    np.testing.assert_array_equal(a[:, 2], s[:, 2])
    # the default ranges: a shear of -0.3..-0.1, scales within ±10%, rotation within ±0.05 rad
    pts = to_absolute(s)
    height, width = np.ptp(pts[:, 1]), np.ptp(pts[:, 0])
    ratio = np.ptp(to_absolute(a)[:, 1]) / height
    # y scales by 0.9..1.1; the rotation by θ mixes in up to |sin θ| × the (sheared, x-scaled) width
    slack = np.sin(0.05) * 1.1 * (width + 0.3 * height) / height
    assert 0.9 * np.cos(0.05) - slack - 1e-6 < ratio < 1.1 + slack + 1e-6


def test_augment_with_dropout_keeps_stroke_ends():
    s = word(np.random.default_rng(3)).offsets
    cfg = AugmentConfig(shear=(0.0, 0.0), scale_x=(1, 1), scale_y=(1, 1), rotate=(0, 0), drop=0.5)
    out = augment(s, np.random.default_rng(0), cfg)
    assert out[:, 2].sum() == s[:, 2].sum()
    assert 0.3 * len(s) < len(out) < 0.75 * len(s)
    for a, b in zip(to_strokes(out), to_strokes(s)):
        np.testing.assert_allclose(a[[0, -1]], b[[0, -1]], atol=1e-5)
    out2 = drop_points(s, 0.5, np.random.default_rng(0))
    assert out2[:, 2].sum() == s[:, 2].sum()


# ----------------------------------------------------------------------------------------------------------
# stitching


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_stitch_puts_words_left_to_right_without_overlap(seed, k):
    rng = np.random.default_rng(seed)
    words = []
    for i in range(k):
        w = word(rng, width=float(rng.uniform(0.3, 1.5)), n_strokes=int(rng.integers(1, 4)))
        # each word somewhere else on the page
        w = Sample(shear(w.offsets, 0.0) + np.array([[rng.uniform(-5, 5), rng.uniform(-5, 5), 0]] + [[0, 0, 0]] * (len(w) - 1), np.float32),
                   text=f"w{i}", source=f"src{i}")  # fmt: skip
        words.append(w)
    line = stitch(words, rng=np.random.default_rng(seed))
    assert line.text == " ".join(f"w{i}" for i in range(k))
    assert len(line) == sum(len(w) for w in words)
    assert line.num_strokes == sum(w.num_strokes for w in words)
    pts = to_absolute(line.offsets)
    spans, start = [], 0
    for w in words:
        p = pts[start : start + len(w)]
        spans.append((p[:, 0].min(), p[:, 0].max()))
        # each word keeps its shape (a translation only)
        np.testing.assert_allclose(np.diff(p[:, :2], axis=0), np.diff(to_absolute(w.offsets)[:, :2], axis=0), atol=1e-4)
        start += len(w)
    for (_, right), (left, _) in zip(spans, spans[1:]):
        assert left > right  # a gap between consecutive words
    line2 = stitch(words, rng=np.random.default_rng(seed))
    np.testing.assert_array_equal(line.offsets, line2.offsets)


def test_stitch_shares_a_baseline_and_rejects_nothing_to_stitch():
    rng = np.random.default_rng(0)
    words = [Sample(w.offsets + np.array([[0, 3.0 * i, 0]] + [[0, 0, 0]] * (len(w) - 1), np.float32), text=str(i))
             for i, w in enumerate(word(rng) for _ in range(4))]  # fmt: skip
    line = stitch(words, rng=rng, baseline_jitter=0.0)
    pts = to_absolute(line.offsets)
    bases, start = [], 0
    for w in words:
        bases.append(np.percentile(pts[start : start + len(w), 1], 10))
        start += len(w)
    assert np.ptp(bases) < 1e-4
    with pytest.raises(ValueError, match="no samples"):
        stitch([])
