"""English words (synthbank) beside bigbank: late i-dots and t-crosses put back beside their letters, and
sources mixed with a word-disjoint split per source."""

import numpy as np
import pytest

from handwriting import strokes as S
from handwriting.strokes import from_strokes, reorder_late_marks, to_absolute


def _word_with_late_dot():
    # a cursive "word" 1 high and 6 wide drawn left to right, then a dot above x = 2 made after it
    xs = np.linspace(0, 6, 61)
    body = np.stack([xs, 0.5 + 0.5 * np.sin(xs * 3)], 1)
    dot = np.array([[2.0, 1.4], [2.02, 1.42]])
    return from_strokes([body, dot]), body, dot


def test_a_late_dot_moves_to_where_the_pen_first_reached_it():
    off, body, dot = _word_with_late_dot()
    out, moved = reorder_late_marks(off)
    assert moved == 1
    strokes = S.to_strokes(out)
    assert len(strokes) == 3  # the body split where the pen passed x = 2, the dot between the halves
    np.testing.assert_allclose(strokes[1], dot, atol=1e-6)
    cx = dot[:, 0].mean()
    assert strokes[0][-1, 0] >= cx > strokes[0][-2, 0]
    # the same points, only in another order: nothing drawn is lost or moved
    np.testing.assert_allclose(np.sort(to_absolute(out)[:, :2], 0), np.sort(to_absolute(off)[:, :2], 0), atol=1e-5)
    np.testing.assert_allclose(out[0, :2], off[0, :2])


def test_marks_made_in_order_and_large_strokes_stay_where_they_are():
    xs = np.linspace(0, 6, 61)
    body = np.stack([xs, 0.5 + 0.5 * np.sin(xs * 3)], 1)
    near_end = np.array([[5.8, 1.4], [5.82, 1.42]])  # a dot over the last letter: in order already
    second_word_part = np.stack([np.linspace(1, 5, 20), np.full(20, 0.2)], 1)  # a long stroke: not a mark
    for extra in (near_end, second_word_part):
        off = from_strokes([body, extra])
        out, moved = reorder_late_marks(off)
        assert moved == 0 and np.array_equal(out, off)


def test_bigbank_words_are_left_alone_and_synthbank_marks_are_moved(bigbank_path, synthbank_path):
    from handwriting.datasets.jsonink import load_bigbank, load_synthbank

    big = load_bigbank(bigbank_path)
    moved_big = sum(reorder_late_marks(s.offsets)[1] > 0 for s in big)
    assert moved_big <= 0.005 * len(big)  # its writer dots letters as they go
    raw = load_bigbank(synthbank_path)
    fixed = load_synthbank(synthbank_path)
    assert len(fixed) == len(raw) == 3000 and all(s.text.isalpha() and s.text.islower() for s in fixed)
    changed = [a.text for a, b in zip(raw, fixed) if len(a.offsets) != len(b.offsets) or not np.array_equal(a.offsets, b.offsets)]
    assert 0.2 * len(raw) < len(changed) < 0.8 * len(raw)
    assert all(any(c in t for c in "ijtx") for t in changed[:200]), "only words with dots or crosses change"


def test_mixed_sources_split_word_disjointly_per_source(bigbank_path, synthbank_path, monkeypatch):
    from handwriting.train import DEFAULTS, load_data

    monkeypatch.setenv("HANDWRITING_BIGBANK", str(bigbank_path))
    monkeypatch.setenv("HANDWRITING_SYNTHBANK", str(synthbank_path))
    opts = dict(DEFAULTS, data="bigbank")
    tr_b, va_b, _ = load_data(opts)
    tr, va, info = load_data(dict(opts, data="bigbank+synthbank"))
    # bigbank's validation words are the same whatever it is mixed with (a model fine-tuned on the mix is
    # still measured on words it never saw)
    assert [s.text for s in va if s.source.startswith("bigbank")] == [s.text for s in va_b]
    train_words = {s.text for s in tr}
    assert not train_words & {s.text for s in va}
    assert set(info["data_parts"]) == {"bigbank", "synthbank"}
    assert all(len(p["data_sha256"]) == 64 and "/" not in p["data_file"] for p in info["data_parts"].values())
    assert 6450 < len(tr) + len(va) <= 6500  # less the training copies of words another source holds out


@pytest.mark.parametrize("spec", ["bigbank+bigbank", "bigbank+", "bigbank+nonsense"])
def test_bad_mixes_are_named(spec):
    from handwriting.errors import DataError
    from handwriting.train import DEFAULTS, load_data

    with pytest.raises(DataError, match="--data"):
        load_data(dict(DEFAULTS, data=spec))
