"""The synthetic writer (handwriting/datasets/synthetic.py): convention, scale, determinism, styles, speed."""

from __future__ import annotations

import string
import time

import numpy as np
import pytest

from handwriting.datasets import synthetic as S
from handwriting.errors import DataError
from handwriting.strokes import check_offsets, from_strokes, resample, to_absolute, to_strokes

def height(sample) -> float:
    return float(np.ptp(to_absolute(sample.offsets)[:, 1]))


def test_alphabet_covers_letters_digits_punctuation_and_space():
    for c in string.ascii_letters + string.digits + " .,;:!?'\"()-":
        assert c in S.SYNTHETIC_ALPHABET
    assert set(S.WORD_ALPHABET) <= set(S.SYNTHETIC_ALPHABET)


@pytest.mark.parametrize("writer", ["neat", "print"])  # one per font
def test_every_character_of_the_alphabet_can_be_drawn(writer):
    text = S.SYNTHETIC_ALPHABET.replace(" ", "")
    for chunk in (text[i : i + 16] for i in range(0, len(text), 16)):
        s = S.SyntheticWriter(writer, seed=0).write(chunk)
        check_offsets(s.offsets, where=chunk)
        assert s.text == chunk


def test_samples_follow_the_stroke_convention_and_bigbank_scale():
    words = ["minimum", "hello", "Quartz", "jumpy", "a", "1984", "(wow)!"]
    for s in S.synthesize(words, seed=1) + S.synthesize(words, writer="print", seed=1):
        off = check_offsets(s.offsets, where=s.text)
        assert off.dtype == np.float32 and s.offsets.dtype == np.float32
        assert off[-1, 2] == 1
        per_char = len(s) / len(s.text)
        assert 12 <= per_char <= 60, (s.text, per_char)
    # lower-case words without ascenders are about one x-height (~0.1) high; with them 0.2-0.4
    short = S.synthesize(["cannon", "swan", "ocean", "warm"] * 5, seed=2)
    tall = S.synthesize(["jolly", "fight", "played", "begged"] * 5, seed=2)  # the same 20 random writers
    assert all(0.06 < height(s) < 0.2 for s in short), [height(s) for s in short]
    assert all(0.15 < height(s) < 0.5 for s in tall), [height(s) for s in tall]
    assert all(height(t) > 1.3 * height(s) for s, t in zip(short, tall))


def test_y_grows_upwards():
    for writer in ("neat", "print"):
        s = S.SyntheticWriter(writer, seed=0).write("lo")
        pts = to_absolute(s.offsets)
        mid = (pts[:, 0].min() + pts[:, 0].max()) / 2
        # the l's ascender is the highest point, on the left half
        assert pts[np.argmax(pts[:, 1]), 0] < mid
        g = to_absolute(S.SyntheticWriter(writer, seed=0).write("og").offsets)
        # the g's descender is the lowest point, on the right half
        assert g[np.argmin(g[:, 1]), 0] > (g[:, 0].min() + g[:, 0].max()) / 2


def test_spaces_separate_words():
    s = S.SyntheticWriter("print", seed=0).write("mmm mmm")
    x = np.sort(to_absolute(s.offsets)[:, 0])
    gaps = np.diff(x)
    k = int(np.argmax(gaps))
    assert gaps[k] > 0.05  # a clear gap (a word space is about one x-height, ~0.1)
    assert 0.3 < k / len(x) < 0.7  # in the middle
    assert S.SyntheticWriter("neat", seed=0).write("  a  b ").text == "  a  b "


def test_deterministic_by_seed_and_independent_per_sample():
    words = S.random_words(20, seed=4)
    a = S.synthesize(words, seed=9)
    b = S.synthesize(words, seed=9)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.offsets, y.offsets)
        assert (x.text, x.writer, x.source) == (y.text, y.writer, y.source)
    c = S.synthesize(words, seed=10)
    assert not any(np.array_equal(x.offsets, y.offsets) for x, y in zip(a, c))
    # sample i depends only on (seed, i, text): a shorter list gives the same first samples
    for x, y in zip(S.synthesize(words[:5], seed=9), a[:5]):
        np.testing.assert_array_equal(x.offsets, y.offsets)
    # writer=None draws a different random writer per sample; a named writer keeps its name
    assert len({s.writer for s in a}) == len(a)
    assert {s.writer for s in S.synthesize(words[:3], writer="hasty")} == {"hasty"}


def test_a_writer_varies_between_calls_and_repeats_with_the_same_seed():
    w1, w2 = S.SyntheticWriter("neat", seed=3), S.SyntheticWriter("neat", seed=3)
    first, second = w1.write("hello"), w1.write("hello")
    assert not np.array_equal(first.offsets, second.offsets)  # natural variation
    np.testing.assert_array_equal(w2.write("hello").offsets, first.offsets)
    np.testing.assert_array_equal(w2.write("hello").offsets, second.offsets)
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(w1.write("hi", rng=rng_a).offsets, w2.write("hi", rng=rng_b).offsets)


def test_named_writers_differ_measurably():
    words = [w for w in S.random_words(80, seed=11) if len(w) >= 4][:30]
    slant = {
        name: float(np.mean([S.estimate_slant(s.offsets) for s in S.synthesize(words, writer=name, seed=0)]))
        for name in ("backhand", "upright", "neat", "hasty", "print", "italic")
    }
    # the writers' slants are ordered as their styles say, with clear margins
    assert slant["backhand"] + 0.15 < slant["upright"] < slant["neat"] - 0.05 < slant["hasty"] - 0.15
    assert slant["print"] + 0.15 < slant["italic"]
    for name, value in slant.items():
        lo, hi = S.WRITERS[name].slant
        assert lo - 0.1 < value < hi + 0.1, (name, value)
    # script writers join letters; print writers lift the pen between letters
    assert S.SyntheticWriter("neat", seed=0).write("mum").num_strokes == 1
    assert S.SyntheticWriter("print", seed=0).write("mum").num_strokes >= 3
    # sizes: the small writer writes smaller than the neat one
    h_small = np.median([height(s) for s in S.synthesize(["mice"] * 10, writer="small")])
    h_neat = np.median([height(s) for s in S.synthesize(["mice"] * 10, writer="neat")])
    assert h_small < 0.85 * h_neat


def test_dots_and_crosses_inline_or_after_the_word():
    late = S.WRITERS["neat"].replace(name="late", late_marks=1.0, join=1.0)
    early = S.WRITERS["neat"].replace(name="early", late_marks=0.0, join=1.0)
    s = S.SyntheticWriter(late, seed=0).write("tit")
    strokes = to_strokes(s.offsets)
    assert len(strokes) == 4  # the word in one stroke, then the i's dot and two t crosses
    assert len(strokes[0]) > 3 * max(len(x) for x in strokes[1:])
    e = to_strokes(S.SyntheticWriter(early, seed=0).write("it").offsets)
    # written in the font's order: the dot first, then the letters, then the t's cross
    assert len(e) == 3 and len(e[0]) < len(e[1]) and len(e[2]) < len(e[1])


def test_unknown_characters_raise_with_position_or_are_replaced():
    w = S.SyntheticWriter("neat", seed=0)
    with pytest.raises(DataError, match=r"'é' \(U\+00E9\) at position 2 of 'caén'.*unknown='replace'"):
        w.write("caén")
    assert w.write("caén", unknown="replace").text == "caen"  # the ASCII look-alike
    assert w.write("5€", unknown="replace").text == "5?"
    assert w.write("a\tb", unknown="replace", replacement="-").text == "a-b"
    with pytest.raises(DataError, match=r"synthesize: text 1: character '\\n' \(U\+000A\) at position 2"):
        S.synthesize(["ok", "ab\ncd"])
    with pytest.raises(DataError, match="nothing to draw"):
        w.write("   ")
    with pytest.raises(DataError, match="nothing to draw"):
        w.write("")


def test_bad_writers_and_styles_are_reported():
    with pytest.raises(DataError, match=r"unknown writer 'nope'.*'neat'"):
        S.SyntheticWriter("nope")
    with pytest.raises(DataError, match=r"unknown writer 'nope'"):
        S.synthesize(["a"], writer="nope")
    with pytest.raises(DataError, match=r"slant must be a range \(low, high\)"):
        S.WriterStyle("x", slant=(0.3, 0.1))
    with pytest.raises(DataError, match="unknown font 'comic'"):
        S.WriterStyle("x", font="comic")
    assert 6 <= len(S.WRITERS) <= 10 and all(name == s.name for name, s in S.WRITERS.items())


def test_random_words_respect_the_alphabet_and_look_like_bigbank():
    words = S.random_words(300, seed=1)
    assert words == S.random_words(300, seed=1) and words != S.random_words(300, seed=2)
    assert len(words) == 300 and len(set(words)) > 250
    assert all(1 <= len(w) <= 12 and set(w) <= set(S.WORD_ALPHABET) for w in words)
    lengths = np.array([len(w) for w in words])
    assert 3.5 < lengths.mean() < 8  # bigbank: 5.3 characters on average
    lower = sum(w.isalpha() and w.islower() for w in words) / len(words)
    assert 0.4 < lower < 0.9  # mostly lower-case words, with capitals, digits and punctuation mixed in
    assert any(any(c.isdigit() for c in w) for w in words) and any(any(c.isupper() for c in w) for w in words)
    digits = S.random_words(50, seed=0, alphabet="0123456789")
    assert all(w.isdigit() for w in digits)
    assert all(set(w) <= set("abc") for w in S.random_words(50, seed=0, alphabet="abc"))
    with pytest.raises(DataError, match="no characters"):
        S.random_words(3, alphabet=" ")


def test_vectorised_resampling_matches_strokes_resample():
    rng = np.random.default_rng(0)
    strokes = [np.cumsum(rng.normal(size=(m, 2)), axis=0) for m in (5, 1, 9, 2, 30)]
    pts, lens = S._resample_all(np.concatenate(strokes), np.array([len(s) for s in strokes]), 0.3)
    ref = to_strokes(resample(from_strokes(strokes), 0.3))
    assert lens.tolist() == [len(r) for r in ref]
    np.testing.assert_allclose(pts, np.concatenate(ref), atol=1e-5)


def test_estimate_slant_measures_a_shear():
    s = S.SyntheticWriter("upright", seed=0).write("minimum")
    base = S.estimate_slant(s.offsets)
    from handwriting.strokes import shear

    for k in (-0.3, 0.2, 0.5):
        assert S.estimate_slant(shear(s.offsets, k)) == pytest.approx(base + k, abs=0.06)


def test_throughput():
    words = S.random_words(500, seed=0)
    S.synthesize(words[:20], seed=0)  # fonts loaded and cached
    # CPU time of this process, so that other jobs on a busy machine do not count
    t = time.process_time()
    out = S.synthesize(words, seed=1)
    cpu = time.process_time() - t
    assert len(out) == 500
    assert cpu < 2.0, f"500 words took {cpu:.2f} s of CPU time"


def test_scale_matches_bigbank(bigbank_path):
    from handwriting.datasets.jsonink import load_bigbank

    real = load_bigbank(bigbank_path, limit=300)
    texts = [s.text for s in real]
    synth = S.synthesize(texts, seed=0)
    h_real = np.median([height(s) for s in real])
    h_synth = np.median([height(s) for s in synth])
    assert 0.6 < h_synth / h_real < 1.5, (h_real, h_synth)
    w_real = np.median([np.ptp(to_absolute(s.offsets)[:, 0]) / len(s.text) for s in real])
    w_synth = np.median([np.ptp(to_absolute(s.offsets)[:, 0]) / len(s.text) for s in synth])
    assert 0.6 < w_synth / w_real < 1.6, (w_real, w_synth)
