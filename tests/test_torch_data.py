"""The PyTorch data layer (handwriting/datasets/torch_data.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from handwriting.datasets import synthetic as S
from handwriting.datasets.torch_data import (
    Alphabet,
    Batch,
    BucketBatchSampler,
    StitchedLines,
    StrokeDataset,
    collate,
    make_loader,
    word_disjoint_split,
)
from handwriting.errors import DataError
from handwriting.strokes import AugmentConfig, Normalizer, Sample, from_strokes, to_absolute


@pytest.fixture(scope="module")
def words() -> list[Sample]:
    texts = S.random_words(120, seed=7)
    texts += texts[:30]  # repeated words, as in bigbank
    return S.synthesize(texts, seed=7)


@pytest.fixture(scope="module")
def alphabet(words) -> Alphabet:
    return Alphabet.from_texts((w.text for w in words), extra=" ")


# ----------------------------------------------------------------------------------------------------------
# Alphabet


def test_alphabet_round_trip_and_padding_id():
    a = Alphabet.from_texts(["hello", "world!"])
    assert a.chars == "!dehlorw" and len(a) == 9  # 8 characters + padding
    ids = a.encode("hello")
    assert ids == [4, 3, 5, 5, 6] and min(ids) >= 1
    assert a.decode(ids) == "hello"
    assert a.decode([0, 4, 0, 3, 0]) == "he"  # padding is skipped
    assert a.decode(torch.tensor([[4, 3], [0, 0]])) == "he"
    assert "h" in a and "z" not in a
    with pytest.raises(DataError, match="id 42 at position 1 is out of range"):
        a.decode([3, 42])


def test_alphabet_unknown_characters_name_the_position_and_the_fix():
    a = Alphabet("abc")
    with pytest.raises(DataError) as e:
        a.encode("cabbage", where="words.json#12")
    msg = str(e.value)
    assert msg.startswith("words.json#12: character 'g' at position 5 of 'cabbage'")
    assert "unknown='replace'" in msg and "add it to the alphabet" in msg
    r = Alphabet("abc?", unknown="replace")
    assert r.decode(r.encode("cabbage")) == "cabba??"
    r = Alphabet("abc ", unknown="replace", replacement="c")
    assert r.decode(r.encode("abz")) == "abc"
    with pytest.raises(DataError, match="pass replacement="):
        Alphabet("abc", unknown="replace")
    with pytest.raises(DataError, match="replacement 'x' is not in the alphabet"):
        Alphabet("abc", unknown="replace", replacement="x")
    with pytest.raises(DataError, match="unknown='ignore'"):
        Alphabet("abc", unknown="ignore")


def test_alphabet_validation_and_serialisation():
    with pytest.raises(DataError, match=r"character 'a' appears twice \(positions 0 and 2\)"):
        Alphabet("aba")
    with pytest.raises(DataError, match="no characters"):
        Alphabet("")
    a = Alphabet("xyz?", unknown="replace")
    assert Alphabet.from_dict(a.to_dict()) == a
    assert Alphabet(a.chars) == Alphabet("xyz?")  # what a checkpoint stores (.chars) rebuilds it
    with pytest.raises(DataError, match="from_dict"):
        Alphabet.from_dict({"letters": "abc"})


# ----------------------------------------------------------------------------------------------------------
# collate and Batch


def _item(n: int, text: str, alphabet: Alphabet) -> dict:
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3) + 1
    return {"x": x, "text_ids": np.asarray(alphabet.encode(text)), "text": text, "index": 0}


def test_collate_pads_and_masks():
    a = Alphabet("abc ")
    b = collate([_item(3, "ab", a), _item(5, "c", a), _item(1, "abc a", a)])
    assert isinstance(b, Batch) and len(b) == 3
    assert b.x.shape == (3, 5, 3) and b.x.dtype == torch.float32
    assert b.x_mask.dtype == torch.bool and b.x_mask.sum(1).tolist() == [3, 5, 1]
    assert b.lengths.tolist() == [3, 5, 1] and b.text_lengths.tolist() == [2, 1, 5]
    assert torch.all(b.x[0, 3:] == 0) and torch.all(b.x[2, 1:] == 0)  # zero padding
    np.testing.assert_array_equal(b.x[1].numpy(), _item(5, "c", a)["x"])
    assert b.text.shape == (3, 5) and b.text.dtype == torch.long
    assert b.text[0].tolist() == [1, 2, 0, 0, 0] and b.text_mask[0].tolist() == [True, True, False, False, False]
    assert b.texts == ["ab", "c", "abc a"]
    moved = b.to("cpu")
    assert torch.equal(moved.x, b.x) and moved.texts == b.texts and torch.equal(moved.text_mask, b.text_mask)
    with pytest.raises(DataError, match="empty"):
        collate([])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_batch_pin_memory_and_cuda():
    a = Alphabet("ab")
    b = collate([_item(3, "ab", a)]).pin_memory()
    assert b.x.is_pinned() and b.text.is_pinned()
    c = b.to("cuda", non_blocking=True)
    assert c.x.is_cuda and c.lengths.is_cuda


# ----------------------------------------------------------------------------------------------------------
# StrokeDataset


def test_dataset_items_are_normalised_offsets_with_text_ids(words, alphabet):
    nz = Normalizer(mean=(0.01, -0.002), std=(0.03, 0.02))
    ds = StrokeDataset(words, alphabet, normalizer=nz, zero_start=False)
    assert len(ds) == len(words)
    it = ds[5]
    assert set(it) == {"x", "text_ids", "text", "index"} and it["index"] == 5
    np.testing.assert_allclose(it["x"], nz.normalize(words[5].offsets), rtol=1e-6)
    assert it["x"].dtype == np.float32 and it["text"] == words[5].text
    assert alphabet.decode(it["text_ids"]) == words[5].text
    z = StrokeDataset(words, alphabet, normalizer=nz)[5]["x"]  # zero_start (default): first offset is (0, 0)
    assert z[0, :2].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(z[1:], it["x"][1:])
    np.testing.assert_array_equal(ds[-1]["x"], ds[len(ds) - 1]["x"])
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert ds.lengths.tolist() == [len(w) for w in words]


def test_dataset_randomness_is_seeded_by_seed_epoch_and_index(words, alphabet):
    ds = StrokeDataset(words, alphabet, augment=AugmentConfig(), downsample=(0.5, 0.2), seed=3)
    a = ds[7]["x"]
    np.testing.assert_array_equal(ds[7]["x"], a)  # the same item twice
    assert not np.array_equal(ds[8]["x"][: len(a)], a[: len(ds[8]["x"])])
    ds.set_epoch(1)
    b = ds[7]["x"]
    assert not (len(a) == len(b) and np.array_equal(a, b))  # a new epoch, new augmentation
    ds.set_epoch(0)
    np.testing.assert_array_equal(ds[7]["x"], a)  # and back: reproducible, resumable
    other = StrokeDataset(words, alphabet, augment=AugmentConfig(), downsample=(0.5, 0.2), seed=3)
    np.testing.assert_array_equal(other[7]["x"], a)  # a fresh data set with the same seed
    # the random downsampling removes 40-60% of each stroke's interior points
    n, m = len(words[7]), len(a)
    assert 0.35 * n < m < 0.7 * n
    # a fixed fraction is deterministic whatever the epoch
    fixed = StrokeDataset(words, alphabet, downsample=0.5)
    x0 = fixed[7]["x"]
    fixed.set_epoch(5)
    np.testing.assert_array_equal(fixed[7]["x"], x0)
    assert abs(fixed.lengths[7] - len(x0)) <= 0.1 * len(x0)


def test_dataset_fits_a_normalizer(words, alphabet):
    ds = StrokeDataset(words, alphabet, normalizer="fit")
    x = np.concatenate([ds[i]["x"][1:, :2] for i in range(len(ds))])
    np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(x.std(0), 1.0, atol=1e-3)
    with pytest.raises(DataError, match="normalizer='auto'"):
        StrokeDataset(words, alphabet, normalizer="auto")


def test_dataset_checks_texts_naming_the_sample(words):
    small = Alphabet("abcdefghijklmnopqrstuvwxyz")
    bad = [Sample(words[0].offsets, text="ok"), Sample(words[1].offsets, text="nO", source="bigbank.json#1")]
    with pytest.raises(DataError, match=r"bigbank.json#1: character 'O' at position 1 of 'nO'"):
        StrokeDataset(bad, small)
    assert len(StrokeDataset(bad, Alphabet("abcdefghijklmnopqrstuvwxyz?", unknown="replace"))) == 2
    with pytest.raises(DataError, match="no samples"):
        StrokeDataset([], small)
    with pytest.raises(DataError, match=r"downsample=1.5"):
        StrokeDataset(bad, small, downsample=1.5)


# ----------------------------------------------------------------------------------------------------------
# splits


def test_word_disjoint_split(words):
    train, valid = word_disjoint_split(words, 0.2, seed=0)
    tw, vw = {s.text for s in train}, {s.text for s in valid}
    assert not tw & vw
    assert len(train) + len(valid) == len(words)
    assert 0.15 * len(words) <= len(valid) <= 0.27 * len(words)
    # deterministic, and independent of the input order
    again = word_disjoint_split(list(reversed(words)), 0.2, seed=0)
    assert {s.source for s in again[1]} == {s.source for s in valid}
    other = word_disjoint_split(words, 0.2, seed=1)
    assert {s.source for s in other[1]} != {s.source for s in valid}
    # each part keeps the input order
    pos = {id(s): i for i, s in enumerate(words)}
    assert [pos[id(s)] for s in train] == sorted(pos[id(s)] for s in train)
    assert word_disjoint_split(words, 0.0)[1] == [] and word_disjoint_split(words, 1.0)[0] == []
    with pytest.raises(DataError, match="valid_fraction"):
        word_disjoint_split(words, 1.5)


def test_word_disjoint_split_of_lines_drops_mixed_lines():
    off = from_strokes([np.array([[0.0, 0.0], [1.0, 1.0]])])
    lines = [Sample(off, text=t) for t in ["a b", "b c", "c d", "d e", "e f", "a", "b", "f"] * 3]
    train, valid = word_disjoint_split(lines, 0.3, seed=2)
    train_words = {w for s in train for w in s.text.split()}
    valid_words = {w for s in valid for w in s.text.split()}
    assert valid and train and not train_words & valid_words
    assert len(train) + len(valid) <= len(lines)


# ----------------------------------------------------------------------------------------------------------
# stitched lines


def test_stitched_lines_are_deterministic_and_lazy(words):
    lines = StitchedLines(words, words_per_line=(2, 4), num_lines=50_000, seed=1)
    assert len(lines) == 50_000
    a = lines[123]
    np.testing.assert_array_equal(a.offsets, lines[123].offsets)
    np.testing.assert_array_equal(a.offsets, StitchedLines(words, (2, 4), 50_000, seed=1)[123].offsets)
    assert a.text != lines[124].text or not np.array_equal(a.offsets, lines[124].offsets)
    idx = lines.word_indices(123)
    assert 2 <= len(idx) <= 4 and a.text == " ".join(words[j].text for j in idx)
    counts = [len(lines.word_indices(i)) for i in range(2000)]
    assert set(counts) == {2, 3, 4}
    assert all(lines.lengths[i] == len(lines[i]) for i in range(0, 50_000, 5000))
    # words run left to right
    pts = to_absolute(a.offsets)
    first = len(words[idx[0]])
    assert pts[:first, 0].max() < pts[first:, 0].min()


def test_stitched_lines_options_and_errors(words):
    four = StitchedLines(words, words_per_line=4, num_lines=100, seed=0)
    assert all(len(four[i].text.split(" ")) == 4 for i in range(10))
    capped = StitchedLines(words, words_per_line=(3, 6), num_lines=300, seed=0, max_chars=20)
    for i in range(300):
        idx = capped.word_indices(i)
        assert len(idx) >= 1
        assert len(" ".join(words[j].text for j in idx)) <= 20 or len(idx) == 1
    with pytest.raises(DataError, match="words_per_line"):
        StitchedLines(words, words_per_line=(3, 2))
    with pytest.raises(DataError, match="no words"):
        StitchedLines([], 2)
    with pytest.raises(IndexError):
        four[100]


# ----------------------------------------------------------------------------------------------------------
# bucketing and loading


def test_bucket_batches_cover_every_index_and_group_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 1000, size=1003)
    s = BucketBatchSampler(lengths, batch_size=16, seed=4, pool=20)
    batches = list(s)
    assert len(batches) == len(s) == 63
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1003))
    assert sum(len(b) < 16 for b in batches) == 1
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[rng.permutation(1003)[:16]]) for _ in range(50)])
    assert spread < 0.2 * random_spread  # similar lengths in a batch: little padding
    assert [b for b in s] == batches  # same epoch, same order
    s.set_epoch(1)
    assert list(s) != batches
    dl = BucketBatchSampler(lengths, batch_size=16, seed=4, drop_last=True)
    assert len(dl) == 62 and all(len(b) == 16 for b in dl) and len(list(dl)) == 62
    plain = list(BucketBatchSampler(lengths, batch_size=100, shuffle=False))
    assert lengths[plain[0]].min() >= lengths[plain[1]].max()  # longest first


def test_bucket_sampler_resumes_mid_epoch():
    lengths = np.arange(200) % 37
    s = BucketBatchSampler(lengths, batch_size=8, seed=9)
    s.set_epoch(3)
    full = list(s)
    it = iter(s)
    consumed = [next(it) for _ in range(7)]
    state = s.state_dict()
    assert state["epoch"] == 3 and state["position"] == 7 and consumed == full[:7]
    fresh = BucketBatchSampler(lengths, batch_size=8, seed=9)
    fresh.load_state_dict(state)
    assert list(fresh) == full[7:]
    assert list(fresh) == full  # the next pass is a whole epoch again
    # a trainer's pattern: set_epoch, then restore the state saved at the start of the epoch
    t = BucketBatchSampler(lengths, batch_size=8, seed=9)
    t.set_epoch(3)
    start_state = t.state_dict()
    t2 = BucketBatchSampler(lengths, batch_size=8, seed=9)
    t2.set_epoch(3)
    t2.load_state_dict(start_state)
    assert list(t2) == full
    with pytest.raises(DataError, match="batch_size=16 but this sampler has batch_size=8"):
        BucketBatchSampler(lengths, batch_size=8, seed=9).load_state_dict({**state, "batch_size": 16})
    with pytest.raises(DataError, match="num_items"):
        BucketBatchSampler(lengths[:100], batch_size=8, seed=9).load_state_dict(state)


def _same_batches(xs: list[Batch], ys: list[Batch]) -> bool:
    return len(xs) == len(ys) and all(
        torch.equal(a.x, b.x) and torch.equal(a.text, b.text) and a.texts == b.texts for a, b in zip(xs, ys)
    )


def test_loader_with_workers_gives_the_same_batches(words, alphabet):
    lines = StitchedLines(words, (2, 3), num_lines=96, seed=2)
    ds = StrokeDataset(lines, alphabet, normalizer=Normalizer((0.0, 0.0), (0.02, 0.02)),
                       augment=AugmentConfig(), downsample=(0.5, 0.1), seed=5)  # fmt: skip
    serial = list(make_loader(ds, batch_size=16, num_workers=0, seed=1))
    assert len(serial) == 6 and all(isinstance(b, Batch) for b in serial)
    assert sum(len(b) for b in serial) == 96 and {len(b) for b in serial} == {16}
    parallel = list(make_loader(ds, batch_size=16, num_workers=2, seed=1))
    assert _same_batches(serial, parallel)
    # workers see the data set's current epoch
    ds.set_epoch(1)
    epoch1 = list(make_loader(ds, batch_size=16, num_workers=2, seed=1))
    assert not _same_batches(serial, epoch1)
    assert _same_batches(epoch1, list(make_loader(ds, batch_size=16, num_workers=0, seed=1)))


def test_datasets_pickle_for_spawned_workers(words, alphabet):
    lines = StitchedLines(words, (2, 3), num_lines=20, seed=2)
    ds = StrokeDataset(lines, alphabet, augment=AugmentConfig(), seed=5)
    ds.set_epoch(2)
    clone = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(clone[3]["x"], ds[3]["x"])

    class Unpicklable(torch.utils.data.Dataset):
        def __init__(self):
            self.fn = lambda: None

        def __len__(self):
            return 4

    with pytest.raises(DataError, match="cannot be sent to worker processes started with 'spawn'.*num_workers=0"):
        make_loader(Unpicklable(), batch_size=2, num_workers=1, mp_context="spawn")
