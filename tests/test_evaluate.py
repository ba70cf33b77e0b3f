"""Measuring handwriting: CER, word accuracy, bootstrap intervals, diversity, and the legibility / reference
commands (deterministic for a fixed seed) with tiny untrained models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from handwriting import checkpoint as ckpt
from handwriting.cli import main
from handwriting.datasets.synthetic import synthesize
from handwriting.datasets.torch_data import Alphabet
from handwriting.evaluate import (
    bootstrap_ci,
    cer,
    confusions,
    diversity,
    edit_distance,
    edit_ops,
    legibility,
    reference,
    score,
    unseen_texts,
    word_accuracy,
)
from handwriting.models.recognizer import Recognizer, RecognizerConfig
from handwriting.strokes import Normalizer

# ----------------------------------------------------------------------------------------------------------
# metrics on constructed strings


def test_edit_distance_and_alignment():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3
    assert edit_distance("same", "same") == 0
    ops = edit_ops("hallo", "hello")  # (ref, read) pairs
    assert ops == [("h", "h"), ("e", "a"), ("l", "l"), ("l", "l"), ("o", "o")]
    ops = edit_ops("ab", "abc")  # the reader missed the c
    assert ("c", "") in ops and sum(a != b for a, b in ops) == 1
    ops = edit_ops("abxc", "abc")  # an extra x
    assert ("", "x") in ops and sum(a != b for a, b in ops) == 1


def test_cer_and_word_accuracy():
    assert cer("hello", "hello") == 0.0
    assert cer("hallo", "hello") == pytest.approx(1 / 5)
    assert cer("", "abcd") == 1.0
    assert cer("abcdx", "abcd") == pytest.approx(1 / 4)
    # a list is a corpus: edits summed over all words, divided by all reference characters
    assert cer(["hallo", "ab"], ["hello", "abcde"]) == pytest.approx((1 + 3) / 10)
    assert word_accuracy(["a", "b", "c", "x"], ["a", "b", "c", "d"]) == pytest.approx(0.75)
    assert word_accuracy("word", "word") == 1.0
    with pytest.raises(ValueError):
        cer(["a"], ["a", "b"])


def test_confusions_count_the_most_frequent_errors():
    pred = ["cat", "cot", "dog", "dag", "ab"]
    ref = ["cat", "cat", "dog", "dog", "abc"]
    conf = confusions(pred, ref)
    assert conf[0] == ("a", "o", 1) or conf[0] == ("o", "a", 1)
    assert set(conf) == {("a", "o", 1), ("o", "a", 1), ("c", "", 1)}


def test_bootstrap_interval_is_deterministic_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    edits = rng.integers(0, 3, size=200)
    chars = rng.integers(3, 9, size=200)
    lo, hi = bootstrap_ci(edits, chars, seed=5)
    assert (lo, hi) == bootstrap_ci(edits, chars, seed=5)
    est = edits.sum() / chars.sum()
    assert lo < est < hi and hi - lo < 0.1
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)  # no spread, no width
    s = score(["a", "bc", "x"], ["a", "bd", "y"])
    assert s["cer"] == pytest.approx(2 / 4) and s["word_accuracy"] == pytest.approx(1 / 3)
    assert s["cer_ci95"][0] <= s["cer"] <= s["cer_ci95"][1]


def test_unseen_texts_avoid_excluded_words_and_are_deterministic():
    ex = set(unseen_texts(50, seed=1))
    words = unseen_texts(80, seed=1, alphabet="abcdefgh", exclude=ex)
    assert len(words) == 80 and not (set(words) & ex)
    assert all(set(w) <= set("abcdefgh") for w in words)
    assert words == unseen_texts(80, seed=1, alphabet="abcdefgh", exclude=ex)


def test_diversity_is_zero_for_copies_and_grows_with_different_writers():
    one = synthesize(["hello"], writer="neat", seed=0)[0]
    assert diversity([one, one, one])["spread"] == pytest.approx(0.0, abs=1e-9)
    same = synthesize(["hello"] * 6, writer="neat", seed=0)
    many = synthesize(["hello"] * 6, writer=None, seed=0)  # a random writer each
    d_same, d_many = diversity(same), diversity(many)
    assert 0 < d_same["spread"] < d_many["spread"]
    assert set(d_many["features"]) >= {"slant", "log_height", "log_width_per_char"}


# ----------------------------------------------------------------------------------------------------------
# legibility and reference with tiny untrained models


def _tiny_recognizer() -> Recognizer:
    torch.manual_seed(0)
    m = Recognizer(RecognizerConfig(conv_channels=(8, 16, 16, 16), hidden=16, layers=1))
    m.normalizer = Normalizer((0.002, 0.0), (0.02, 0.02))
    return m.eval()


def _tiny_writer():
    from handwriting.models.graves import GravesConfig, SynthesisNetwork

    alphabet = Alphabet("abcdefghijklmnopqrstuvwxyz")
    torch.manual_seed(0)
    m = SynthesisNetwork(GravesConfig(alphabet_size=len(alphabet), hidden=16, layers=1, mixtures=2, window_mixtures=2))
    m.alphabet = alphabet
    m.normalizer = Normalizer((0.005, 0.0), (0.02, 0.02))
    return m.eval()


def _strip_times(d):
    if isinstance(d, dict):
        return {k: _strip_times(v) for k, v in d.items() if not k.startswith("seconds_per_sample")}
    if isinstance(d, list):
        return [_strip_times(v) for v in d]
    return d


def test_legibility_is_deterministic_for_a_seed():
    gen, rec = _tiny_writer(), _tiny_recognizer()
    texts = ["abc", "hello", "xyz", "mmm"]
    a = legibility(gen, bias=0.5, n=4, seed=3, texts=texts, recognizer=rec)
    b = legibility(gen, bias=0.5, n=4, seed=3, texts=texts, recognizer=rec)
    assert _strip_times(a) == _strip_times(b)
    assert a["n"] == 4 and 0 <= a["word_accuracy"] <= 1 and a["cer"] >= 0
    assert a["seconds_per_sample"] > 0 and a["diversity"]["n"] == 4
    c = legibility(gen, bias=0.5, n=4, seed=4, texts=texts, recognizer=rec)
    assert c["diversity"] != a["diversity"]  # another seed, other samples


def test_legibility_can_return_its_samples_and_readings():
    gen, rec = _tiny_writer(), _tiny_recognizer()
    texts = ["abc", "hello", "xyz"]
    a = legibility(gen, bias=0.5, n=3, seed=3, texts=texts, recognizer=rec)
    b = legibility(gen, bias=0.5, n=3, seed=3, texts=texts, recognizer=rec, return_samples=True)
    assert "samples" not in a and "read" not in a
    assert _strip_times({k: v for k, v in b.items() if k not in ("samples", "read")}) == _strip_times(a)
    assert [s.text for s in b["samples"]] == texts and len(b["read"]) == 3
    assert [[t, r] for t, r in zip(texts, b["read"])] == b["examples"]
    assert rec.recognize(b["samples"], chars="abcdefghijklmnopqrstuvwxyz") == b["read"]
    assert diversity(b["samples"]) == b["diversity"]


def test_legibility_command_writes_the_same_json_twice(tmp_path, capsys):
    ckpt.save_model(tmp_path / "gen", _tiny_writer())
    ckpt.save_model(tmp_path / "rec", _tiny_recognizer())
    (tmp_path / "texts.txt").write_text("abc\nzebra\nquick\n")
    outs = []
    for k in range(2):
        out = tmp_path / f"leg{k}.json"
        rc = main(["evaluate", "legibility", "--model", str(tmp_path / "gen"), "--recognizer", str(tmp_path / "rec"),
                   "--bias", "1", "-n", "3", "--seed", "7", "--texts", str(tmp_path / "texts.txt"), "--json", str(out)])  # fmt: skip
        assert rc == 0
        outs.append(json.loads(out.read_text()))
    assert _strip_times(outs[0]) == _strip_times(outs[1])
    assert [e[0] for e in outs[0]["examples"]] == ["abc", "zebra", "quick"]
    printed = capsys.readouterr().out
    assert "CER" in printed and "bias 1" in printed


def test_evaluate_threads_below_one_are_refused(capsys):
    for n in ("0", "-1"):
        assert main(["evaluate", "legibility", "--model", "graves-synthesis-tiny", "--threads", n, "-n", "1"]) == 2
        assert f"--threads must be >= 1 (a whole number), got {n}" in capsys.readouterr().err


def test_reference_scores_synthetic_writing_deterministically():
    rec = _tiny_recognizer()
    a = reference(n=4, seed=2, recognizer=rec)
    b = reference(n=4, seed=2, recognizer=rec)
    assert _strip_times(a["synthetic"]) == _strip_times(b["synthetic"])
    assert a["synthetic"]["n"] == 4 and "cer_ci95" in a["synthetic"]
    assert "human" in a  # scored when bigbank is available, else says why it was skipped


def test_legibility_on_held_out_bigbank_words(bigbank_path, monkeypatch):
    from handwriting.datasets.jsonink import load_bigbank
    from handwriting.datasets.torch_data import word_disjoint_split

    monkeypatch.setenv("HANDWRITING_BIGBANK", str(bigbank_path))
    gen, rec = _tiny_writer(), _tiny_recognizer()
    r = legibility(gen, bias=1.0, n=3, seed=0, texts="heldout", recognizer=rec)
    train, _ = word_disjoint_split(load_bigbank(bigbank_path), 0.1, seed=0)
    refs = [e[0] for e in r["examples"]]
    assert r["n"] == 3 and r["texts"] == "held-out bigbank words"
    assert not set(refs) & {s.text for s in train}  # words the generator never saw
    assert all(set(t) <= set(gen.alphabet.chars) for t in refs)
