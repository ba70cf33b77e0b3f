"""The multi-writer mix: restyled ink, synthetic writers of every font, and the hands held out of training."""

from __future__ import annotations

import math

import numpy as np
import pytest

from handwriting.datasets import synthetic, writers
from handwriting.datasets.writers import (
    HELD_OUT_INK,
    HOLD_OUT_RADIUS,
    InkStyle,
    ManyHands,
    held_out_writers,
    lift_at_bottoms,
    training_writers,
)
from handwriting.errors import DataError
from handwriting.evaluate import style_features
from handwriting.strokes import Sample, from_strokes


def zigzag(n_letters: int = 5, slant: float = 0.0, width: float = 0.1, height: float = 0.1) -> Sample:
    """A constructed word: ``n_letters`` up-and-down strokes of one letter each, two pen lifts."""
    pts = []
    for i in range(n_letters):
        x0 = i * width
        up = np.linspace(0, height, 8)
        pts.append(np.stack([x0 + slant * up, up], 1))
        pts.append(np.stack([x0 + width / 2 + slant * up[::-1], up[::-1]], 1))
    line = np.concatenate(pts)
    strokes = [line[: len(line) // 2], line[len(line) // 2 :], np.array([[0.2, 0.2], [0.21, 0.2]])]  # a dash: no vertical move
    return Sample(from_strokes(strokes), text="a" * n_letters)


def test_style_features_on_constructed_strokes():
    s = zigzag(5, slant=0.0)
    f = style_features(s)
    assert f["slant"] == pytest.approx(0.0, abs=1e-9)
    assert f["lifts_per_char"] == pytest.approx(3 / 5)  # three strokes end
    pts = np.cumsum(s.offsets[:, :2], 0)[1:]
    assert f["log_width_per_char"] == pytest.approx(math.log(np.ptp(pts[:, 0]) / 5))
    leaning = style_features(zigzag(5, slant=0.3))
    assert leaning["slant"] == pytest.approx(0.3, abs=1e-6)


def test_an_ink_style_changes_slant_width_and_size_as_it_says():
    base = zigzag(6)
    f0 = style_features(base)
    sheared = InkStyle("s", slant=0.25).apply(base)
    assert style_features(sheared)["slant"] == pytest.approx(f0["slant"] + 0.25, abs=1e-6)
    wide = InkStyle("w", width=1.5).apply(base)
    assert style_features(wide)["log_width_per_char"] == pytest.approx(f0["log_width_per_char"] + math.log(1.5), abs=1e-6)
    small = InkStyle("z", size=0.5).apply(base)
    assert style_features(small)["log_height"] == pytest.approx(f0["log_height"] + math.log(0.5), abs=1e-6)
    for out in (sheared, wide, small, InkStyle("r", smooth=3).apply(base)):
        assert out.text == base.text
        np.testing.assert_array_equal(out.offsets[:, 2], base.offsets[:, 2])  # the same pen lifts
    smooth = InkStyle("r", smooth=3).apply(base)
    assert np.abs(np.diff(smooth.offsets[1:20, :2], axis=0)).sum() < np.abs(np.diff(base.offsets[1:20, :2], axis=0)).sum()


@pytest.mark.parametrize("field, value", [("width", 0.0), ("height", 9.0), ("slant", float("nan")), ("smooth", -1)])
def test_a_bad_ink_style_is_refused_naming_the_field(field, value):
    with pytest.raises(DataError, match=field):
        InkStyle("bad", **{field: value})


def test_training_styles_keep_away_from_every_held_out_hand():
    rng = np.random.default_rng(0)
    held = np.stack([h.vector() for h in HELD_OUT_INK])
    inks = [writers.random_ink_style(rng) for _ in range(1500)]
    gaps = [np.linalg.norm(held - s.vector(), axis=1).min() for s in inks]
    assert min(gaps) > HOLD_OUT_RADIUS
    spread = np.array([[s.slant, s.width, s.height, s.size] for s in inks])
    assert spread[:, 0].min() < -0.4 and spread[:, 0].max() > 0.3  # wide ranges, not a few styles
    fonts = [writers.random_font_style(rng) for _ in range(600)]
    assert {f.font for f in fonts} == set(synthetic.FONTS)  # every single-stroke font
    named = {w.name for w in synthetic.WRITERS.values()}
    for f in fonts:
        assert f.name not in named
        v = writers._synthetic_vector(f)
        for w in synthetic.WRITERS.values():
            if w.font == f.font:
                assert np.linalg.norm(v - writers._synthetic_vector(w)) > 1.5


def test_many_hands_writes_each_line_in_one_training_hand_reproducibly():
    words = synthetic.synthesize(synthetic.random_words(40, seed=3), writer="neat", seed=3)
    mh = ManyHands(words, (2, 3), num_lines=30, seed=5, real_share=0.5)
    again = ManyHands(words, (2, 3), num_lines=30, seed=5, real_share=0.5)
    kinds = set()
    held = {w.name for w in held_out_writers()} | {h.name for h in HELD_OUT_INK}
    for i in range(30):
        a, b = mh[i], again[i]
        np.testing.assert_array_equal(a.offsets, b.offsets)
        assert a.text == mh.lines[i].text  # the line's text, whoever writes it
        assert a.writer not in held
        kinds.add(type(mh.style(i)).__name__)
    assert kinds == {"InkStyle", "WriterStyle"}
    assert len({mh.style(i).name for i in range(30)}) == 30  # a new hand per line


def test_a_font_asked_for_keeps_the_training_styles_stream_and_their_distance_from_held_out_hands():
    mixed = [writers.random_font_style(np.random.default_rng(s)) for s in range(40)]
    # the same seed with the font asked for gives that font, and the very style where the free draw picked it
    for s, free in enumerate(mixed):
        asked = writers.random_font_style(np.random.default_rng(s), font=free.font)
        assert asked == free
    rng = np.random.default_rng(1)
    for f in synthetic.FONTS:
        for _ in range(30):
            st = writers.random_font_style(rng, font=f)
            assert st.font == f
            for w in synthetic.WRITERS.values():
                if w.font == f:
                    assert np.linalg.norm(writers._synthetic_vector(st) - writers._synthetic_vector(w)) > 1.5
    with pytest.raises(DataError, match="unknown font 'comic'.*futural"):
        writers.random_font_style(rng, font="comic")


def test_training_writers_are_a_control_of_trained_on_hands_in_every_font():
    words = synthetic.synthesize(["alpha", "beta", "gamma"], writer="neat", seed=1)
    hands = training_writers(words, seed=3)
    fonts = sorted(synthetic.FONTS)
    assert [h.name for h in hands] == [f"train-{f}-{k}" for f in fonts for k in (1, 2)] + [
        f"train-ink-{k}" for k in range(1, len(HELD_OUT_INK) + 1)]
    assert {h.name for h in hands}.isdisjoint({h.name for h in held_out_writers(words)})
    assert [h.kind for h in hands].count("ink") == len(HELD_OUT_INK)
    again = training_writers(words, seed=3)
    other = training_writers(words, seed=4)
    for a, b, c in zip(hands, again, other):
        np.testing.assert_array_equal(a.write("alpha beta", 0).offsets, b.write("alpha beta", 0).offsets)
        assert not np.array_equal(a.write("alpha beta", 0).offsets, c.write("alpha beta", 0).offsets)
    assert len(training_writers(None, per_font=1)) == len(fonts)  # no real words: no restyled hands


def test_held_out_writers_write_in_their_own_hands():
    words = synthetic.synthesize(["alpha", "beta", "gamma"], writer="neat", seed=1)
    hands = held_out_writers(words)
    assert len(hands) == len(synthetic.WRITERS) + len(HELD_OUT_INK) >= 8
    assert len({h.name for h in hands}) == len(hands)
    slants = {h.name: style_features(h.write("alpha beta", 0))["slant"] for h in hands}
    assert slants["backhand"] < 0 < slants["hasty"]
    assert slants["ink-tall-italic"] > slants["ink-upright-narrow"]
    ink = next(h for h in hands if h.kind == "ink")
    with pytest.raises(DataError, match="delta"):
        ink.write("alpha delta", 0)


def test_hands_data_is_bigbank_and_synthbank_with_the_same_split(bigbank_path, synthbank_path):
    from handwriting.datasets.sources import is_cursive_data, is_many_hands, load_data

    opts = dict(seed=0, valid_fraction=0.1, limit=200, bigbank=str(bigbank_path))
    train_h, valid_h, info = load_data({**opts, "data": "hands"})
    train_b, valid_b, _ = load_data({**opts, "data": "bigbank+synthbank"})
    assert [s.text for s in valid_h] == [s.text for s in valid_b] and len(train_h) == len(train_b)
    assert info["hands"] is True and info["data"] == "hands"
    assert is_many_hands("hands") and is_cursive_data("hands") and not is_many_hands("bigbank")
    with pytest.raises(DataError, match="hands"):
        load_data({**opts, "data": "hands+synthetic", "synthetic": 10})


def test_the_reference_reads_every_held_out_hand_and_names_the_readers_hands(bigbank_path):
    from handwriting import evaluate

    r = evaluate.reference(n=6, hands=True)
    hands = r["held_out_hands"]
    assert len(hands) == len(held_out_writers()) + len(HELD_OUT_INK)
    assert all(v["n"] == 6 for v in hands.values()) and r["held_out_pooled"]["n"] == 6 * len(hands)
    assert {v["kind"] for v in hands.values()} == {"synthetic", "ink"}
    assert "synthetic" in r["recognizer_trained_on"] and "bigbank" in r["recognizer_trained_on"]
    lines = evaluate.held_out_lines([f"w{k}" for k in range(6)], seed=0)
    assert all(v["lines"]["n"] == len(lines) for v in hands.values())
    assert r["held_out_lines_pooled"]["n"] == len(lines) * len(hands)


@pytest.mark.parametrize("n", [1, 2, 5, 6, 11])
def test_held_out_lines_keep_every_word_in_order_two_or_three_a_line(n):
    from handwriting.evaluate import held_out_lines

    words = [f"w{k}" for k in range(n)]
    for seed in range(4):
        lines = held_out_lines(words, seed)
        assert " ".join(lines).split() == words
        assert all(2 <= len(t.split()) <= 4 for t in lines) if n > 1 else lines == ["w0"]
    assert held_out_lines(words, 1) == held_out_lines(words, 1)


def test_match_ink_brings_other_lines_to_the_words_size_and_density():
    """IAM-like lines (100x the units, a third of the points per character) come out at the words' width and
    points per character, in their own shape (slant kept), marked as whole lines of their own."""
    words = [zigzag(5, slant=0.0, width=0.1) for _ in range(4)]
    sparse = zigzag(6, slant=0.3, width=0.1)
    pts = np.cumsum(sparse.offsets[:, :2], 0)[::3]  # every third point: sparser pen sampling
    big = Sample(from_strokes([pts * 100.0]), text="b" * 6, source="a01-000u-01.xml")
    (m,) = writers.match_ink([big], words)
    f, w = style_features(m), style_features(words[0])
    assert math.exp(f["log_width_per_char"]) == pytest.approx(math.exp(w["log_width_per_char"]), rel=0.1)
    assert len(m.offsets) / 6 == pytest.approx(len(words[0].offsets) / 5, rel=0.2)
    assert f["slant"] == pytest.approx(0.3, abs=0.05) and m.text == big.text
    assert m.source == writers.LINE_SOURCE + "a01-000u-01.xml"
    assert writers.split_lines(words + [m]) == (words, [m])
    mh = ManyHands(synthetic.synthesize(["alpha", "beta", "gamma"], writer="neat", seed=1), 2, num_lines=5, seed=1,
                   lines=[m])
    assert len(mh) == 6 and mh[5] is m and mh.lengths[5] == len(m.offsets)
    assert writers.match_ink([], words) == []
    with pytest.raises(DataError, match="no words"):
        writers.match_ink([big], [])


def test_lift_at_bottoms_lifts_the_pen_only_at_stroke_bottoms_and_leaves_the_ink_where_it_was():
    word = zigzag(5)  # one long stroke of up-and-down letters, a second half, and a dash
    rng = np.random.default_rng(0)
    every = lift_at_bottoms(word, 1.0, rng)
    pos = lambda s: np.cumsum(s.offsets[:, :2], 0)  # noqa: E731
    np.testing.assert_array_equal(pos(every), pos(word))
    added = np.flatnonzero((every.offsets[:, 2] > 0.5) & (word.offsets[:, 2] < 0.5))
    y = pos(word)[:, 1]
    assert len(added) >= 3  # the zigzag's bottoms between letters, away from the strokes' ends
    assert all(y[i] < y[i - 1] and y[i] <= y[i + 1] for i in added)  # each a bottom: where the stroke stops going down
    assert (word.offsets[:, 2] > 0.5).sum() + len(added) == (every.offsets[:, 2] > 0.5).sum()  # none removed
    np.testing.assert_array_equal(lift_at_bottoms(word, 0.0, rng).offsets, word.offsets)
    some = [int((lift_at_bottoms(word, 0.5, np.random.default_rng(k)).offsets[:, 2] > 0.5).sum()) for k in range(40)]
    assert min(some) < max(some) and 3 < np.mean(some) < 3 + len(added)
    with pytest.raises(DataError, match="share=1.5"):
        lift_at_bottoms(word, 1.5, rng)


def test_ink_lifts_vary_the_real_ink_lines_rate_of_lifts_and_change_nothing_else():
    words = synthetic.synthesize(synthetic.random_words(40, seed=3), writer="neat", seed=3)
    plain = ManyHands(words, (2, 3), num_lines=30, seed=5, real_share=0.5)
    lifted = ManyHands(words, (2, 3), num_lines=30, seed=5, real_share=0.5, ink_lifts=0.5)
    more = 0
    for i in range(30):
        a, b = plain[i], lifted[i]
        assert plain.style(i) == lifted.style(i)  # the same hands
        np.testing.assert_array_equal(np.cumsum(a.offsets[:, :2], 0), np.cumsum(b.offsets[:, :2], 0))
        if isinstance(plain.style(i), InkStyle):
            more += int(b.offsets[:, 2].sum() > a.offsets[:, 2].sum())
        else:
            np.testing.assert_array_equal(a.offsets, b.offsets)  # synthetic writers vary their joins already
    assert more >= 3
    with pytest.raises(DataError, match="ink_lifts"):
        ManyHands(words, (2, 3), num_lines=3, ink_lifts=-0.1)


def test_real_share_sets_the_training_mix_and_only_there(bigbank_path, synthbank_path):
    """`--real-share` is the share of training lines in restyled real ink (the rest by synthetic writers); the
    validation lines keep the default mix, so validation NLLs stay comparable; other data or models refuse it."""
    from handwriting.train import TrainError
    from handwriting.train.command import DEFAULTS
    from handwriting.train.recipes import build_training

    opts = {**DEFAULTS, "model": "graves", "data": "hands", "bigbank": str(bigbank_path), "limit": 200, "steps": 1,
            "lines": 40, "valid_lines": 16, "progress": False}
    shares = {}
    for share in (None, 1.0, 0.0):
        _, train, valid, *_ = build_training({**opts, "real_share": share, "out": None})
        tr, va = train.dataset.samples, valid.dataset.samples
        shares[share] = [type(tr.style(i)).__name__ for i in range(40)]
        assert va.real_share == 0.6 and tr.real_share == (0.6 if share is None else share)
    assert set(shares[1.0]) == {"InkStyle"} and set(shares[0.0]) == {"WriterStyle"}
    assert set(shares[None]) == {"InkStyle", "WriterStyle"}
    for bad in ({"data": "bigbank"}, {"model": "transformer"}):
        with pytest.raises(TrainError, match="--real-share is for Graves networks on --data hands"):
            build_training({**opts, **bad, "real_share": 0.9, "out": None})
        with pytest.raises(TrainError, match="--ink-lifts is for Graves networks on --data hands"):
            build_training({**opts, **bad, "ink_lifts": 0.5, "out": None})
    _, train, valid, *_ = build_training({**opts, "ink_lifts": 0.5, "out": None})
    assert train.dataset.samples.ink_lifts == 0.5 and valid.dataset.samples.ink_lifts == 0.0


def test_the_readers_lines_hold_the_words_asked_for_each_in_a_training_hand(bigbank_path, synthbank_path):
    """The reader for any hand sees lines of `--words-per-line` words at `--line-share` per word: real lines
    stitched from training words and restyled into a training hand, synthetic lines in one font each; no
    held-out word is in any of them; a bad range is refused."""
    from handwriting.models.recognizer import RecognizerConfig
    from handwriting.train import TrainError
    from handwriting.train.recipes import recognizer_data

    kw = dict(bigbank=str(bigbank_path), synthbank=str(synthbank_path), limit=80, synthetic=40, hands=True, lines=0.5)
    d = recognizer_data(RecognizerConfig(), words_per_line=(2, 3), **kw)
    items = d.train.samples
    real_lines = [s for s in items if "|ink-line-" in str(s.source)]
    assert len(real_lines) == d.info["stitched_pairs"] == round(0.5 * d.info["real_words"]) > 0
    assert {len(s.text.split()) for s in real_lines} == {2, 3}
    syn_lines = [s for s in items if s.source.startswith("synthetic") and " " in s.text]
    assert len(syn_lines) == round(0.5 * 40) and {len(s.text.split()) for s in syn_lines} == {2, 3}
    held = {s.text for s in d.valid_words}
    assert not held & {w for s in items for w in s.text.split()}
    assert d.info["words_per_line"] == [2, 3]
    two = recognizer_data(RecognizerConfig(), **kw)  # the default: two words a line
    assert {len(s.text.split()) for s in two.train.samples if "|ink-line-" in str(s.source)} == {2}
    with pytest.raises(TrainError, match="words_per_line"):
        recognizer_data(RecognizerConfig(), words_per_line=(3, 2), **kw)
    from handwriting.train.command import DEFAULTS
    from handwriting.train.recipes import build_training

    opts = {**DEFAULTS, "model": "recognizer", "data": "hands", "bigbank": str(bigbank_path), "limit": 80, "synthetic": 40,
            "steps": 1, "progress": False, "out": None, "line_share": 0.5, "words_per_line": "2-3"}
    *_, meta, _ = build_training(opts)
    assert meta["training"]["words_per_line"] == [2, 3] and meta["training"]["stitched_pairs"] == d.info["stitched_pairs"]
