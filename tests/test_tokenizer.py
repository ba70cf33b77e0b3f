import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from handwriting.models.tokenizer import (
    BOS,
    END,
    NUM_SPECIAL,
    PAD,
    WORD,
    CartesianTokenizer,
    PolarTokenizer,
    format_report,
    radius_values,
    tokenizer_from_dict,
    tokenizer_report,
)
from handwriting.strokes import Sample, to_absolute

TOKENIZERS = [PolarTokenizer, CartesianTokenizer]


def random_offsets(rng, n=200, big=0.02):
    xy = rng.normal(0, big, size=(n, 2))
    xy[rng.random(n) < 0.05] *= 20  # some pen-up sized jumps
    xy[rng.random(n) < 0.03] = 0  # repeated points
    eos = (rng.random(n) < 0.1).astype(np.float32)
    eos[-1] = 1
    return np.column_stack([xy, eos]).astype(np.float32)


def test_paper_layout():
    r = radius_values()
    assert len(r) == 151 and r[0] == 0 and r[1] == pytest.approx(1e-4) and r[-1] == pytest.approx(0.9)
    assert r[30] == pytest.approx(0.06) and np.all(np.diff(r) > 0)
    # the geometric part has a constant ratio
    g = r[31:]
    assert np.allclose(g[1:] / g[:-1], (0.9 / 0.06) ** (1 / 120))
    p = PolarTokenizer()
    assert p.n_theta == 220 and p.n_r == 151
    assert p.vocab_size == NUM_SPECIAL + 220 + 302 == 526
    c = CartesianTokenizer()
    assert c.vocab_size == NUM_SPECIAL + 2 * 111 + 302
    assert (PAD, BOS, END, WORD) == (0, 1, 2, 3)


@pytest.mark.parametrize("cls", TOKENIZERS)
def test_token_counts_and_layout(cls, rng):
    tok = cls()
    x = random_offsets(rng, 50)
    t = tok.encode(x)
    assert t.dtype == np.int64 and t[0] == BOS and t[-1] == END
    assert len(t) == tok.tokens_per_point * 50 + 2
    assert len(tok.encode(x, bos=False, end=False)) == tok.tokens_per_point * 50
    assert t.min() >= 0 and t.max() < tok.vocab_size
    body = t[1:-1].reshape(50, tok.tokens_per_point)
    assert tok.is_r(body[:, -1]).all()  # the length+pen token comes last ("point, then shoot")
    assert not tok.is_special(body).any()
    # pen state folded into the r token
    assert np.array_equal(body[:, -1] >= tok.r_offset + tok.n_r, x[:, 2] > 0.5)
    tw = tok.encode(x, word_starts=[0, 10, 30, 30, 50])
    assert len(tw) == len(t) + 4  # two separators per boundary inside the sequence, duplicates ignored
    k = 1 + 10 * tok.tokens_per_point
    assert tw[k] == WORD and tw[k + 1] == WORD


@pytest.mark.parametrize("cls", TOKENIZERS)
def test_round_trip_within_bin_width(cls, rng):
    tok = cls()
    x = random_offsets(rng, 2000)
    y = tok.decode(tok.encode(x))
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.array_equal(y[:, 2], x[:, 2])
    err = np.hypot(*(y[:, :2] - x[:, :2]).T)
    bound = tok.error_bound(x)
    assert np.all(err <= bound + 1e-7)
    # the bound itself is "half a bin" (direction half a bin, length half the local gap) where not clipped
    r = np.hypot(x[:, 0], x[:, 1])
    ok = r <= tok.r_values[-1]
    gaps = np.diff(tok.r_values).max()
    assert np.all(bound[ok] <= gaps / 2 + r[ok] * 0.06 + 1e-6)


def test_polar_direction_and_length_bins(rng):
    tok = PolarTokenizer()
    x = random_offsets(rng, 3000)
    y = tok.decode(tok.encode(x))
    r, ry = np.hypot(x[:, 0], x[:, 1]), np.hypot(y[:, 0], y[:, 1])
    ok = (r > 1e-3) & (r < 0.9)
    dtheta = np.angle(np.exp(1j * (np.arctan2(y[:, 1], y[:, 0]) - np.arctan2(x[:, 1], x[:, 0]))))
    assert np.all(np.abs(dtheta[ok]) <= math.pi / 220 + 1e-5)
    k = np.searchsorted(tok.r_values, r[ok])
    lo, hi = tok.r_values[np.maximum(k - 1, 0)], tok.r_values[np.minimum(k, 150)]
    assert np.all(np.abs(ry[ok] - r[ok]) <= (hi - lo) / 2 + 1e-6)


@settings(max_examples=60, deadline=None)
@given(
    xy=arrays(np.float64, st.tuples(st.integers(1, 40), st.just(2)),
              elements=st.floats(-0.75, 0.75, allow_nan=False, width=32)),
    polar=st.booleans(),
)
def test_round_trip_property(xy, polar):
    tok = PolarTokenizer() if polar else CartesianTokenizer()
    eos = np.zeros((len(xy), 1))
    eos[-1] = 1
    x = np.hstack([xy / np.sqrt(2), eos]).astype(np.float32)  # |offset| <= 0.8: never clipped
    y = tok.decode(tok.encode(x))
    assert y.shape == x.shape
    assert np.all(np.hypot(*(y[:, :2] - x[:, :2]).T) <= tok.error_bound(x) + 1e-7)
    assert np.array_equal(y[:, 2], x[:, 2])


@pytest.mark.parametrize("cls", TOKENIZERS)
def test_special_tokens_never_decode_into_points(cls, rng):
    tok = cls()
    assert tok.decode([PAD, BOS, END, WORD, WORD, PAD]).shape == (0, 3)
    assert tok.decode(np.array([], dtype=np.int64)).shape == (0, 3)
    x = random_offsets(rng, 30)
    t = tok.encode(x, bos=False, end=False)
    # specials sprinkled *between* point groups change nothing
    groups = list(t.reshape(30, tok.tokens_per_point))
    noisy = []
    for g in groups:
        noisy += [int(v) for v in rng.choice([PAD, BOS, WORD], size=rng.integers(0, 3))] + list(g)
    np.testing.assert_array_equal(tok.decode(noisy), tok.decode(t))
    # decoding stops at END; stop_at_end=False reads on
    both = np.concatenate([t, [END], t])
    assert len(tok.decode(both)) == 30
    assert len(tok.decode(both, stop_at_end=False)) == 60
    # a special inside a group breaks that group only
    broken = t.copy()
    broken[1] = PAD
    assert len(tok.decode(broken)) == 29


def test_malformed_model_output_is_skipped():
    tok = PolarTokenizer()
    th, r = tok.theta_offset + 5, tok.r_offset + 40
    out = tok.decode([BOS, th, th, r, r, th, r, th])
    assert out.shape == (2, 3)  # (th, r) pairs only; dangling tokens are dropped
    c = CartesianTokenizer()
    ux, uy, rr = c.ux_offset + 3, c.uy_offset + 7, c.r_offset + 9
    assert c.decode([ux, uy, rr, uy, ux, rr, ux, uy]).shape == (1, 3)


@pytest.mark.parametrize("cls", TOKENIZERS)
def test_word_starts_round_trip(cls, rng):
    tok = cls()
    x = random_offsets(rng, 40)
    y, starts = tok.decode(tok.encode(x, word_starts=[12, 25]), return_word_starts=True)
    assert starts == [12, 25] and len(y) == 40


def test_clipping_keeps_direction():
    tok = PolarTokenizer()
    x = np.array([[3.0, 4.0, 1.0]], np.float32)
    y = tok.decode(tok.encode(x))
    assert np.hypot(y[0, 0], y[0, 1]) == pytest.approx(0.9)
    assert math.atan2(y[0, 1], y[0, 0]) == pytest.approx(math.atan2(4, 3), abs=math.pi / 220)


@pytest.mark.parametrize("cls", TOKENIZERS)
def test_dict_round_trip_and_scale(cls, rng):
    tok = cls(scale=2.5)
    d = tok.to_dict()
    back = tokenizer_from_dict(d)
    assert type(back) is cls and back.to_dict() == d and back.vocab_size == tok.vocab_size
    assert type(cls.from_dict(d)) is cls
    other = CartesianTokenizer if cls is PolarTokenizer else PolarTokenizer
    with pytest.raises(ValueError):
        other.from_dict(d)
    with pytest.raises(ValueError):
        tokenizer_from_dict({"kind": "spiral"})
    # scale: callers keep their units; the bins see offsets × scale
    x = random_offsets(rng, 100) * np.array([40, 40, 1], np.float32)  # "pixels"
    s = [Sample(x, "a")]
    tok.fit_scale(s, target_height=0.3)
    assert np.ptp(to_absolute(x * np.array([tok.scale, tok.scale, 1]))[:, 1]) == pytest.approx(0.3, rel=1e-4)
    y = tok.decode(tok.encode(x))
    assert np.all(np.hypot(*(y[:, :2] - x[:, :2]).T) <= tok.error_bound(x) + 1e-6)
    with pytest.raises(ValueError):
        tok.fit_scale([np.zeros((3, 3), np.float32)])
    with pytest.raises(ValueError):
        cls(scale=0)


def test_bad_input_messages():
    tok = PolarTokenizer()
    with pytest.raises(ValueError, match="shape"):
        tok.encode(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="row 1"):
        tok.encode(np.array([[0, 0, 0], [np.nan, 0, 1]]))
    with pytest.raises(ValueError, match="word_starts"):
        tok.encode(np.zeros((4, 3)), word_starts=[7])


def test_describe():
    tok = PolarTokenizer()
    assert tok.describe(END) == "<END>"
    assert tok.describe(tok.theta_offset).startswith("θ=")
    assert "lift" in tok.describe(tok.r_offset + tok.n_r + 3)


def test_report_on_bigbank(bigbank_path):
    from handwriting.datasets.jsonink import load_bigbank

    words = load_bigbank(bigbank_path, limit=60)
    rep = tokenizer_report(words)
    assert rep["samples"] == 60
    for name, per in (("polar", 2), ("cartesian", 3)):
        for setting in ("remove=0", "remove=0.65"):
            row = rep[name][setting]
            assert row["tokens_per_char"] == pytest.approx(per * row["points_per_char"])
            assert row["max_err_rel"] < 0.1 and row["mean_err_rel"] < 0.01
        assert rep[name]["remove=0.65"]["points_per_char"] < 0.5 * rep[name]["remove=0"]["points_per_char"]
    assert "polar" in format_report(rep)
