"""The online recognizer: CTC decoding (greedy and prefix beam search), the network, and that it can learn."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from handwriting import checkpoint as ckpt
from handwriting.datasets.synthetic import synthesize
from handwriting.datasets.torch_data import Alphabet, StrokeDataset, collate
from handwriting.models.recognizer import (
    Recognizer,
    RecognizerConfig,
    beam_decode,
    collapse,
    greedy_decode,
    prefix_beam_search,
    prepare_offsets,
)
from handwriting.strokes import Normalizer


def _lp(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    return np.log(p / p.sum(-1, keepdims=True))


def _one_hot_path(path, C=4, p=0.9):
    out = np.full((len(path), C), (1 - p) / (C - 1))
    out[np.arange(len(path)), path] = p
    return _lp(out)


# ----------------------------------------------------------------------------------------------------------
# decoding


def test_collapse_merges_repeats_and_drops_blanks():
    assert collapse([1, 1, 1]) == [1]
    assert collapse([1, 0, 1]) == [1, 1]  # a blank separates a doubled letter
    assert collapse([0, 2, 2, 0, 0, 3, 3, 3, 0]) == [2, 3]
    assert collapse([]) == []


def test_greedy_decode_collapses_and_respects_lengths():
    a = _one_hot_path([1, 1, 0, 1, 2, 2, 0, 0])  # "a a" then "b": doubled a survives thanks to the blank
    b = _one_hot_path([3, 3, 3, 3, 3, 3, 3, 3])
    lp = torch.from_numpy(np.stack([a, b])).float()
    assert greedy_decode(lp) == [[1, 1, 2], [3]]
    # frames past a sequence's length are ignored
    c = _one_hot_path([2, 0, 1, 1, 3, 3, 3, 3])
    assert greedy_decode(torch.from_numpy(c[None]).float(), lengths=[4]) == [[2, 1]]
    # a 2-D array is one sequence
    assert greedy_decode(a) == [[1, 1, 2]]


def test_beam_finds_the_better_labelling_where_greedy_fails():
    # two frames, each blank 0.55 / "a" 0.45: the best path is blank-blank (""), p = 0.3025, but the
    # labelling "a" collects three paths (a-a, a-blank, blank-a): 0.2025 + 0.2475 + 0.2475 = 0.6975
    lp = _lp([[0.55, 0.45], [0.55, 0.45]])
    assert greedy_decode(lp) == [[]]
    (labels, score), = prefix_beam_search(lp, beam_width=4)
    assert labels == [1]
    assert score == pytest.approx(math.log(0.6975))
    assert beam_decode(torch.from_numpy(lp[None]), beam_width=4) == [[1]]


def test_beam_keeps_doubled_letters_apart_only_with_a_blank():
    lp = _one_hot_path([1, 0, 1], C=3, p=0.98)
    assert prefix_beam_search(lp, 8)[0][0] == [1, 1]
    lp = _one_hot_path([1, 1, 1], C=3, p=0.98)
    assert prefix_beam_search(lp, 8)[0][0] == [1]


def _brute_force(lp: np.ndarray) -> dict[tuple, float]:
    T, C = lp.shape
    out: dict[tuple, float] = {}
    for path in itertools.product(range(C), repeat=T):
        lab = tuple(collapse(path))
        out[lab] = np.logaddexp(out.get(lab, -np.inf), lp[np.arange(T), list(path)].sum())
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wide_beam_is_exact_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    lp = _lp(rng.dirichlet(np.ones(3) * 0.7, size=5))
    exact = _brute_force(lp)
    best = max(exact, key=exact.get)
    top = prefix_beam_search(lp, beam_width=1000, prune=-np.inf, top_n=5)
    assert tuple(top[0][0]) == best
    for labels, score in top:
        assert score == pytest.approx(exact[tuple(labels)], abs=1e-9)


def test_beam_decode_batch_with_lengths_matches_single_sequences():
    rng = np.random.default_rng(3)
    lp = _lp(rng.dirichlet(np.ones(5) * 0.3, size=(3, 12)))
    lengths = [12, 7, 3]
    batch = beam_decode(torch.from_numpy(lp).float(), lengths, beam_width=6)
    for i, n in enumerate(lengths):
        assert batch[i] == prefix_beam_search(lp[i, :n].astype(np.float32), 6)[0][0]


# ----------------------------------------------------------------------------------------------------------
# the network


def _tiny(**kw) -> Recognizer:
    torch.manual_seed(0)
    cfg = RecognizerConfig(conv_channels=(16, 32, 32, 32), hidden=32, layers=1, dropout=0.0, **kw)
    return Recognizer(cfg)


def _dataset(model: Recognizer, samples, normalizer=None):
    prepared = [s.replace(offsets=model.prepare(s.offsets)) for s in samples]
    norm = normalizer or Normalizer.fit([s.offsets[1:] for s in prepared])
    return StrokeDataset(prepared, model.alphabet, normalizer=norm), norm


def test_config_and_alphabet_classes():
    m = _tiny()
    assert m.num_classes == len(m.config.alphabet) + 1  # + the blank (= padding id 0)
    assert m.alphabet == Alphabet(m.config.alphabet)
    with pytest.raises(Exception, match="conv_channels"):
        RecognizerConfig(conv_channels=(8, 8), conv_strides=(2,))


def test_forward_shapes_lengths_and_padding_invariance():
    m = _tiny().eval()
    samples = synthesize(["hello", "ox", "minimum"], writer="neat", seed=1)
    ds, _ = _dataset(m, samples)
    batch = collate([ds[i] for i in range(3)])
    lp, lengths = m(batch.x, batch.x_mask)
    L = batch.x_mask.sum(1)
    frames = lambda n: math.ceil(math.ceil(n / 2) / 3)  # noqa: E731  (strides 1, 2, 3, 1)
    assert m.config.downsampling == 6
    assert lengths.tolist() == [frames(int(n)) for n in L]
    assert lp.shape[:2] == (3, frames(batch.x.shape[1])) and lp.shape[2] == m.num_classes
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(lp.shape[:2]))
    # a sequence read alone gives the same scores as inside a padded batch
    one = collate([ds[1]])
    lp1, n1 = m(one.x, one.x_mask)
    torch.testing.assert_close(lp1[0, : int(n1[0])], lp[1, : int(lengths[1])], atol=1e-5, rtol=1e-5)


def test_training_step_follows_the_trainer_contract():
    m = _tiny()
    samples = synthesize(["abc", "de"], writer="neat", seed=2)
    ds, _ = _dataset(m, samples)
    out = m.training_step(collate([ds[0], ds[1]]))
    assert set(out) >= {"loss", "nll_sum", "points", "sequences"}
    assert out["points"] == 5 and out["sequences"] == 2  # points = target characters
    assert out["loss"].item() == pytest.approx(out["nll_sum"] / 5, rel=1e-5)
    out["loss"].backward()
    assert all(p.grad is not None for p in m.parameters())


def test_prepare_is_lenient_with_generated_sequences():
    assert prepare_offsets(np.zeros((0, 3)), 0.02, lenient=True).shape == (1, 3)
    off = np.array([[0.3, 0.1, 0], [0.01, 0.0, 0], [np.nan, 0.01, 0]], np.float32)
    out = prepare_offsets(off, 0.02, lenient=True)
    assert np.isfinite(out).all() and out[-1, 2] == 1 and (out[0, :2] == 0).all()


def test_recognizer_overfits_a_few_words_and_reads_them_back():
    words = ["hello", "moon", "tall", "xyz"]
    samples = synthesize(words, writer="neat", seed=0)
    m = _tiny()
    ds, norm = _dataset(m, samples)
    m.normalizer = norm
    batch = collate([ds[i] for i in range(len(ds))])
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    m.train()
    for step in range(300):
        loss = m.training_step(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 24 and m.recognize(samples) == words:
            break
    assert m.recognize(samples) == words  # raw data-unit offsets in, text out
    assert m.recognize(samples, beam_width=4) == words
    assert m.recognize([s.offsets for s in samples]) == words
    assert m.embed(samples).shape == (4, 64)
    limited = m.recognize(samples, chars="helo", beam_width=3)  # only these characters may be read
    assert limited[0] == "hello" and all(set(t) <= set("helo") for t in limited)


def test_save_and_load_round_trip(tmp_path):
    m = _tiny()
    m.normalizer = Normalizer((0.001, 0.0), (0.02, 0.02))
    samples = synthesize(["round", "trip"], writer="neat", seed=4)
    before = m.log_probs(samples)
    ckpt.save_model(tmp_path / "rec", m)
    m2, meta = ckpt.load_model(tmp_path / "rec")
    assert isinstance(m2, Recognizer) and m2.config == m.config
    assert m2.normalizer == m.normalizer
    for a, b in zip(before, m2.log_probs(samples)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_shipped_recognizer_reads_held_out_bigbank_words(bigbank_path):
    from handwriting.datasets.jsonink import load_bigbank
    from handwriting.datasets.torch_data import word_disjoint_split
    from handwriting.evaluate import REPO_PRETRAINED, cer, load_recognizer

    if not (REPO_PRETRAINED / "recognizer-bigbank.safetensors").is_file():
        pytest.skip("data/pretrained/recognizer-bigbank is not there; train it with `handwriting train recognizer`")
    rec = load_recognizer()
    split = rec.meta["training"]["data"]
    train, held = word_disjoint_split(load_bigbank(bigbank_path), split["valid_fraction"], seed=split["split_seed"])
    words = held[:40]
    assert not {s.text for s in train} & {s.text for s in words}  # never trained on these words
    preds = rec.recognize(words)
    assert cer(preds, [s.text for s in words]) <= 0.05
