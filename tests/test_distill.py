"""scripts/distill_data.py: texts apart from every evaluation draw, ink on bigbank's recording lattice, and only
what the reader reads back exactly kept."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import distill_data  # noqa: E402

from handwriting.datasets.jsonink import bigbank_pen, load_samples  # noqa: E402
from handwriting.evaluate import _bigbank_words, unseen_texts  # noqa: E402
from handwriting.strokes import from_strokes, resample, to_strokes  # noqa: E402

CHARS = "!\"'(),.0123456789?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def test_distilled_texts_are_new_distinct_and_apart_from_the_evaluation():
    held = distill_data.evaluation_texts(CHARS, seeds=range(3), n=300)
    assert set(unseen_texts(300, 2, CHARS)) <= held  # the table's and the selection draws are covered
    texts = distill_data.distill_texts(2000, CHARS, held)
    assert len(texts) == len(set(texts)) == 2000
    assert not set(texts) & held
    assert set("".join(texts)) <= set(CHARS)
    assert texts == distill_data.distill_texts(2000, CHARS, held)  # deterministic


def _on_bigbank_lattice(offsets: np.ndarray) -> bool:
    """Every point as bigbank stores it: y on the 0.005 grid, x = 6 × (a multiple of 0.005/6, to 4 decimals)."""
    for s in to_strokes(offsets):
        k = np.round(s[:, 0] / 0.005)
        if not (np.allclose(s[:, 0], 6 * np.round(k * 0.005 / 6, 4), atol=1e-5)
                and np.allclose(s[:, 1] / 0.005, np.round(s[:, 1] / 0.005), atol=1e-3)):
            return False
    return True


def test_bigbank_pen_puts_a_curve_on_the_recording_lattice():
    t = np.linspace(0, 1, 37)
    curve = np.stack([0.4 * t + 0.03 * np.sin(9 * t), 0.15 * np.sin(6 * t)], axis=1)
    off = bigbank_pen(from_strokes([curve, curve[:5] + 0.2]))
    assert off.dtype == np.float32 and len(to_strokes(off)) == 2
    assert _on_bigbank_lattice(off)
    moves = np.abs(off[1:, :2][off[:-1, 2] == 0])
    assert np.all(moves.max(axis=1) <= 0.0155) and np.all(moves.max(axis=1) >= 0.0045)


def test_bigbank_pen_leaves_bigbank_words_on_their_own_moves():
    """Re-recording real bigbank words keeps them bigbank-like: nearly all their moves are moves bigbank makes,
    at about the same number of points."""
    words = _bigbank_words()
    if words is None:
        pytest.skip("needs bigbank_3500.json.zip (HANDWRITING_BIGBANK or `handwriting data download bigbank`)")
    words = words[:60]
    moves = lambda m: [tuple(r) for r in np.round(m[1:][m[:-1, 2] == 0, :2] * 1e4).astype(int)]  # noqa: E731
    vocab = {r for w in words for r in moves(w.offsets)}
    share = lambda seqs: np.mean([r in vocab for a in seqs for r in moves(a)])  # noqa: E731
    again = [bigbank_pen(w.offsets) for w in words]
    assert share(again) > 0.93
    assert share([resample(w.offsets, 0.0108) for w in words]) < 0.1  # the same ink off the lattice
    ratio = sum(map(len, again)) / sum(len(w.offsets) for w in words)
    assert 0.9 < ratio < 1.1
    assert all(_on_bigbank_lattice(a) for a in again)


class _Reader:
    """Reads every other line back right, the rest wrong."""

    def __init__(self, alphabet):
        self.alphabet = alphabet
        self.calls = 0

    def recognize(self, samples, chars=None):
        out = [s.text if (self.calls + i) % 2 == 0 else s.text + "x" for i, s in enumerate(samples)]
        self.calls += len(samples)
        return out


def test_only_lines_read_back_exactly_are_kept(tmp_path, monkeypatch):
    if _bigbank_words() is None:
        pytest.skip("needs bigbank_3500.json.zip (HANDWRITING_BIGBANK or `handwriting data download bigbank`)")
    from handwriting.generate import resolve_model

    reader = _Reader(resolve_model("graves-synthesis-tiny").alphabet)
    monkeypatch.setattr(distill_data, "load_recognizer", lambda name: reader)
    out = tmp_path / "d.json"
    assert distill_data.main(["--model", "graves-synthesis-tiny", "-n", "12", "--batch", "4", "--bias", "1", "2",
                              "-o", str(out)]) == 0
    kept = load_samples(out)
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["written"] == 12 and manifest["kept"] == len(kept) == 6
    assert manifest["kept_by_bias"] == {"1.0": {"written": 8, "kept": 4}, "2.0": {"written": 4, "kept": 2}}
    chars = "".join(sorted(set(reader.alphabet.chars) - {" "}))
    held = {s.text for s in _bigbank_words()} | distill_data.evaluation_texts(chars)
    texts = distill_data.distill_texts(12, chars, held)
    assert [s.text for s in kept] == texts[::2]
    assert all(_on_bigbank_lattice(s.offsets) for s in kept)


@pytest.mark.parametrize("argv, message", [(["-n", "0"], "-n and --batch must be at least 1"),
                                           (["--batch", "0"], "-n and --batch must be at least 1"),
                                           (["--bias", "-1"], "--bias must be >= 0")])
def test_bad_options_are_refused_before_anything_is_written(tmp_path, capsys, argv, message):
    out = tmp_path / "d.json"
    with pytest.raises(SystemExit):
        distill_data.main(argv + ["-o", str(out)])
    assert message in capsys.readouterr().err
    assert not out.exists()
