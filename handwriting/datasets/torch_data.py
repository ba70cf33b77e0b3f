"""The PyTorch data layer: characters to ids, samples to padded batches, splits, stitched lines, bucketing.

* :class:`Alphabet` maps characters to ids ``1..K`` (``0`` is padding); unknown characters raise a
  :class:`~handwriting.errors.DataError` naming the character, its position and the text, or are replaced.
* :class:`StrokeDataset` turns :class:`~handwriting.strokes.Sample` s into items
  ``{"x": (N, 3) float32 normalised offsets, "text_ids": int64, "text": str, "index": int}``, with optional
  downsampling and augmentation (:mod:`handwriting.strokes`) drawn from an RNG seeded by
  ``(seed, epoch, index)`` — so an item is the same in every run, in every worker process and after a
  resume, and :meth:`StrokeDataset.set_epoch` gives every epoch fresh augmentations.
* :func:`collate` pads items into a :class:`Batch`; :class:`BucketBatchSampler` groups sequences of similar
  length (less padding, faster steps) and can resume mid-epoch; :func:`make_loader` builds the
  ``DataLoader`` (multi-process loading that also works from a notebook).
* :func:`word_disjoint_split` keeps every word on one side of a train/validation split;
  :class:`StitchedLines` turns a few thousand words into as many multi-word lines as wanted, lazily
  (the cursive transformer stitches bigbank's 3,500 words into ~497,000 lines; Greydanus & Wimpee 2025).

Typical use::

    words = load_bigbank()
    train_w, valid_w = word_disjoint_split(words, 0.1, seed=0)
    alphabet = Alphabet.from_texts(s.text for s in words)
    lines = StitchedLines(train_w, words_per_line=(2, 5), num_lines=100_000, seed=0)
    ds = StrokeDataset(lines, alphabet, normalizer="fit", augment=AugmentConfig(), downsample=(0.65, 0.1))
    loader = make_loader(ds, batch_size=32, num_workers=2)
    for batch in loader: ...   # Batch(x, x_mask, text, text_mask, texts, lengths, text_lengths)
"""

from __future__ import annotations

import multiprocessing
import pickle
import sys
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..errors import DataError
from ..strokes import AugmentConfig, Normalizer, Sample, augment, check_offsets, downsample, stitch

__all__ = [
    "Alphabet",
    "Batch",
    "StrokeDataset",
    "collate",
    "word_disjoint_split",
    "StitchedLines",
    "BucketBatchSampler",
    "make_loader",
]


# ----------------------------------------------------------------------------------------------------------
# characters


class Alphabet:
    """Characters ↔ ids. Id ``0`` is padding; character ``chars[k]`` has id ``k + 1``.

    ``len(alphabet)`` is the number of ids *including* padding (the size of an embedding table).
    ``unknown="error"`` (default) makes :meth:`encode` raise on characters outside the alphabet;
    ``unknown="replace"`` maps them to ``replacement`` (default ``"?"`` or ``" "`` if the alphabet has one).
    """

    PAD = 0

    def __init__(self, chars: str | Iterable[str], unknown: str = "error", replacement: str | None = None):
        chars = "".join(chars)
        seen: dict[str, int] = {}
        for i, c in enumerate(chars):
            if c in seen:
                raise DataError(
                    f"Alphabet: character {c!r} appears twice (positions {seen[c]} and {i}) in {chars!r}; "
                    "each character must appear once (Alphabet.from_texts builds a clean one)"
                )
            seen[c] = i
        if not chars:
            raise DataError("Alphabet: no characters given; pass the characters of your texts")
        if unknown not in ("error", "replace"):
            raise DataError(f"Alphabet: unknown={unknown!r}; use 'error' or 'replace'")
        if unknown == "replace":
            if replacement is None:
                replacement = next((c for c in "? " if c in seen), None)
                if replacement is None:
                    raise DataError(
                        "Alphabet: unknown='replace' needs a replacement character from the alphabet; the "
                        "alphabet has neither '?' nor ' ', so pass replacement=<one of its characters>"
                    )
            elif replacement not in seen:
                raise DataError(f"Alphabet: replacement {replacement!r} is not in the alphabet {chars!r}; add it")
        self.chars = chars
        self.unknown = unknown
        self.replacement = replacement
        self._index = {c: i + 1 for i, c in enumerate(chars)}

    @classmethod
    def from_texts(cls, texts: Iterable[str], extra: str = "", **kwargs) -> "Alphabet":
        """The sorted set of characters of ``texts`` (plus ``extra``)."""
        chars: set[str] = set(extra)
        for t in texts:
            chars.update(t)
        return cls("".join(sorted(chars)), **kwargs)

    def __len__(self) -> int:
        return len(self.chars) + 1

    def __contains__(self, c: str) -> bool:
        return c in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Alphabet) and (self.chars, self.unknown, self.replacement) == (
            other.chars,
            other.unknown,
            other.replacement,
        )

    def __repr__(self) -> str:
        return f"Alphabet({self.chars!r}, unknown={self.unknown!r})"

    def encode(self, text: str, where: str = "text") -> list[int]:
        """Ids of the characters of ``text``; ``where`` names the text in error messages (a file, a sample)."""
        index = self._index
        try:
            return [index[c] for c in text]
        except KeyError:
            pass
        if self.unknown == "replace":
            rep = index[self.replacement]
            return [index.get(c, rep) for c in text]
        i = next(i for i, c in enumerate(text) if c not in index)
        raise DataError(
            f"{where}: character {text[i]!r} at position {i} of {text!r} is not in the alphabet "
            f"({len(self.chars)} characters: {self.chars!r}); add it to the alphabet "
            f"(Alphabet.from_texts over all your texts) or pass unknown='replace'"
        )

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (padding ids are skipped)."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out = []
        for k, i in enumerate(np.asarray(list(ids), dtype=np.int64).ravel().tolist()):
            if i == self.PAD:
                continue
            if not 0 < i <= len(self.chars):
                raise DataError(f"Alphabet.decode: id {i} at position {k} is out of range 0..{len(self.chars)}")
            out.append(self.chars[i - 1])
        return "".join(out)

    def to_dict(self) -> dict:
        return {"chars": self.chars, "unknown": self.unknown, "replacement": self.replacement}

    @classmethod
    def from_dict(cls, d: dict) -> "Alphabet":
        if not isinstance(d, dict) or not isinstance(d.get("chars"), str):
            raise DataError(f"Alphabet.from_dict: expected {{'chars': str, 'unknown': ..., 'replacement': ...}}, got {d!r}")
        return cls(d["chars"], unknown=d.get("unknown", "error"), replacement=d.get("replacement"))


# ----------------------------------------------------------------------------------------------------------
# batches


@dataclass
class Batch:
    """A padded batch.

    ``x`` ``(B, T, 3)`` float32 normalised offsets ``(dx, dy, end_of_stroke)``, zero after each sequence's
    end; ``x_mask`` ``(B, T)`` bool (True on real points); ``text`` ``(B, U)`` long character ids (0 =
    padding); ``text_mask`` ``(B, U)`` bool; ``texts`` the strings; ``lengths`` and ``text_lengths`` ``(B,)``
    long.
    """

    x: torch.Tensor
    x_mask: torch.Tensor
    text: torch.Tensor
    text_mask: torch.Tensor
    texts: list = field(default_factory=list)
    lengths: torch.Tensor | None = None
    text_lengths: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def _map(self, fn) -> "Batch":
        t = lambda v: None if v is None else fn(v)  # noqa: E731
        return Batch(
            fn(self.x), fn(self.x_mask), fn(self.text), fn(self.text_mask), list(self.texts),
            t(self.lengths), t(self.text_lengths),
        )  # fmt: skip

    def to(self, device: Any, non_blocking: bool = False) -> "Batch":
        """The batch on ``device`` (``non_blocking`` pays off from pinned memory to CUDA)."""
        return self._map(lambda v: v.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> "Batch":
        """Page-locked copies (``DataLoader(pin_memory=True)`` calls this)."""
        return self._map(lambda v: v.pin_memory())


def collate(items: Sequence[dict]) -> Batch:
    """Pad :class:`StrokeDataset` items (dicts with ``x``, ``text_ids``, ``text``) into a :class:`Batch`."""
    if not items:
        raise DataError("collate: empty list of items; the batch sampler produced an empty batch")
    lengths = np.array([len(it["x"]) for it in items], dtype=np.int64)
    tlen = np.array([len(it["text_ids"]) for it in items], dtype=np.int64)
    B, T, U = len(items), int(lengths.max()), max(int(tlen.max()), 1)
    x = np.zeros((B, T, 3), dtype=np.float32)
    text = np.zeros((B, U), dtype=np.int64)
    for i, it in enumerate(items):
        x[i, : lengths[i]] = it["x"]
        text[i, : tlen[i]] = it["text_ids"]
    lengths_t, tlen_t = torch.from_numpy(lengths), torch.from_numpy(tlen)
    return Batch(
        x=torch.from_numpy(x),
        x_mask=torch.arange(T)[None, :] < lengths_t[:, None],
        text=torch.from_numpy(text),
        text_mask=torch.arange(U)[None, :] < tlen_t[:, None],
        texts=[it["text"] for it in items],
        lengths=lengths_t,
        text_lengths=tlen_t,
    )


# ----------------------------------------------------------------------------------------------------------
# data sets


def _item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]))


class StrokeDataset(torch.utils.data.Dataset):
    """Samples → model inputs. Item ``i`` is ``{"x", "text_ids", "text", "index"}`` (batch with :func:`collate`).

    Per item, in this order: ``downsample`` (a float: remove exactly that fraction of each stroke's interior
    points, evenly; a pair ``(mean, width)``: a random fraction in ``mean ± width/2`` at random points — the
    cursive transformer uses 0.65 ± 0.05), ``augment`` (an :class:`~handwriting.strokes.AugmentConfig`:
    random shear, scale, rotation), ``normalizer`` (a :class:`~handwriting.strokes.Normalizer`, or ``"fit"``
    to fit one on the processed data, or None for raw offsets), then ``zero_start`` (the first offset, the
    pen's position relative to an arbitrary origin, becomes exactly (0, 0) in the output).

    Randomness comes from an RNG seeded by ``(seed, epoch, index)``: items are reproducible and identical in
    worker processes; :meth:`set_epoch` changes the augmentations from one epoch to the next.

    ``samples`` may be any sequence of samples, including a lazy one such as :class:`StitchedLines`
    (texts are then checked when an item is made rather than up front).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        alphabet: Alphabet,
        normalizer: Normalizer | str | None = None,
        augment: AugmentConfig | None = None,
        downsample: float | tuple[float, float] | None = None,
        seed: int = 0,
        zero_start: bool = True,
    ):
        if len(samples) == 0:
            raise DataError("StrokeDataset: no samples given; load or synthesize a data set first")
        if downsample is not None:
            lo, hi = _downsample_range(downsample)
            if not (0 <= lo <= hi < 1):
                raise DataError(f"StrokeDataset: downsample={downsample!r} must give fractions in [0, 1)")
        self.samples = samples if not isinstance(samples, Iterator) else list(samples)
        self.alphabet = alphabet
        self.augment = augment
        self.downsample = downsample
        self.seed = int(seed)
        self.zero_start = zero_start
        self.epoch = 0
        self._text_ids: list | None = None
        if isinstance(samples, (list, tuple)):  # eager: check every text now, naming the bad sample
            self._text_ids = [
                np.asarray(alphabet.encode(s.text, where=_where(s, i)), dtype=np.int64) for i, s in enumerate(samples)
            ]
        self.normalizer: Normalizer | None = None
        if isinstance(normalizer, str):
            if normalizer != "fit":
                raise DataError(f"StrokeDataset: normalizer={normalizer!r}; pass a Normalizer, 'fit' or None")
            normalizer = self.fit_normalizer()
        self.normalizer = normalizer

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @property
    def lengths(self) -> np.ndarray:
        """Approximate number of points of every item (for :class:`BucketBatchSampler`)."""
        base = getattr(self.samples, "lengths", None)
        base = np.asarray(base if base is not None else [len(s.offsets) for s in self.samples], dtype=np.float64)
        if self.downsample is not None:
            lo, hi = _downsample_range(self.downsample)
            base = base * (1 - (lo + hi) / 2)
        return np.maximum(np.round(base), 1).astype(np.int64)

    def offsets(self, index: int, normalize: bool = True, sample: Sample | None = None) -> np.ndarray:
        """The processed ``(N, 3)`` float32 offsets of item ``index`` for the current epoch."""
        s = self.samples[index] if sample is None else sample
        where = _where(s, index)
        off = check_offsets(s.offsets, where=where)
        needs_rng = self.augment is not None or isinstance(self.downsample, tuple)
        rng = _item_rng(self.seed, self.epoch, index) if needs_rng else None
        if self.downsample is not None:
            if isinstance(self.downsample, tuple):
                lo, hi = _downsample_range(self.downsample)
                off = downsample(off, float(rng.uniform(lo, hi)), rng)
            else:
                off = downsample(off, float(self.downsample))
        if self.augment is not None:
            off = augment(off, rng, self.augment)
        off = np.array(off, dtype=np.float32, copy=True)
        if normalize and self.normalizer is not None:
            off = self.normalizer.normalize(off)
        if self.zero_start:
            off[0, :2] = 0.0
        return off

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"StrokeDataset: index {index} out of range for {len(self)} items")
        index %= len(self)
        s = self.samples[index]
        if self._text_ids is not None:
            ids = self._text_ids[index]
        else:
            ids = np.asarray(self.alphabet.encode(s.text, where=_where(s, index)), dtype=np.int64)
        return {"x": self.offsets(index, sample=s), "text_ids": ids, "text": s.text, "index": index}

    def fit_normalizer(self, limit: int | None = 5000) -> Normalizer:
        """A :class:`Normalizer` fitted on the processed (downsampled, augmented, zero-started) offsets of the
        first ``limit`` items (all items with ``limit=None``); the first row is left out when zero_start."""
        n = len(self) if limit is None else min(limit, len(self))
        start = 1 if self.zero_start else 0
        seqs = [self.offsets(i, normalize=False)[start:] for i in range(n)]
        seqs = [s for s in seqs if len(s)] or [np.zeros((1, 3), np.float32)]
        return Normalizer.fit(seqs)


def _downsample_range(d: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(d, tuple):
        if len(d) != 2:
            raise DataError(f"downsample={d!r}: give a fraction or a pair (mean, width)")
        m, w = float(d[0]), float(d[1])
        return m - w / 2, m + w / 2
    return float(d), float(d)


def _where(s: Sample, i: int) -> str:
    return f"{s.source}" if s.source else f"sample {i}"


# ----------------------------------------------------------------------------------------------------------
# splits and stitched lines


def word_disjoint_split(
    samples: Sequence[Sample], valid_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Sample], list[Sample]]:
    """Split into ``(train, valid)`` so that no word appears in both (the cursive transformer's test words
    are disjoint from its training words). About ``valid_fraction`` of the samples go to ``valid``.

    Words are the space-separated parts of each text. For single-word data (bigbank) all samples of one word
    go to the same side. For multi-word lines, a line goes to ``valid`` when all its words are validation
    words and to ``train`` when none is; lines mixing both are dropped — so split words first and stitch
    lines afterwards (:class:`StitchedLines`). Samples without text are assigned at random. Deterministic in
    ``seed`` and independent of the order of ``samples``; each part keeps the input order.
    """
    if not 0 <= valid_fraction <= 1:
        raise DataError(f"word_disjoint_split: valid_fraction must be in [0, 1], got {valid_fraction}")
    words = [tuple(s.text.split()) for s in samples]
    vocab = sorted({w for ws in words for w in ws})
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 0x5917]))
    order = [vocab[i] for i in rng.permutation(len(vocab))]
    # how many samples each word would bring to valid (counting a sample once all its words are in)
    per_word: dict[str, list[int]] = {}
    for i, ws in enumerate(words):
        for w in set(ws):
            per_word.setdefault(w, []).append(i)
    target = valid_fraction * sum(1 for ws in words if ws)
    valid_words: set[str] = set()
    n_valid = 0
    for w in order:
        if n_valid >= target:
            break
        valid_words.add(w)
        n_valid += sum(1 for i in per_word[w] if all(x in valid_words for x in words[i]))
    train, valid = [], []
    textless = rng.random(len(samples)) < valid_fraction
    for i, (s, ws) in enumerate(zip(samples, words)):
        if not ws:
            (valid if textless[i] else train).append(s)
            continue
        inside = [w in valid_words for w in ws]
        if all(inside):
            valid.append(s)
        elif not any(inside):
            train.append(s)
    return train, valid


class StitchedLines(torch.utils.data.Dataset):
    """``num_lines`` lines, each :func:`handwriting.strokes.stitch` of randomly drawn words (a lazy data set).

    ``words_per_line`` is a number or an inclusive range ``(low, high)``. Line ``i`` depends only on
    ``(seed, i)``: the word choice is drawn up front for all lines (cheap, and it gives :attr:`lengths`
    without stitching anything); the stitching's own jitter uses an RNG seeded by ``(seed, i)``.
    ``max_chars`` drops words from the end of a line while its text would be longer (at least one word is
    kept). Item ``i`` is a :class:`~handwriting.strokes.Sample`; wrap in :class:`StrokeDataset` for training.
    """

    def __init__(
        self,
        words: Sequence[Sample],
        words_per_line: int | tuple[int, int] = (2, 5),
        num_lines: int = 10_000,
        seed: int = 0,
        max_chars: int | None = None,
        space: float = 0.35,
    ):
        if len(words) == 0:
            raise DataError("StitchedLines: no words given; load or synthesize some words first")
        lo, hi = (words_per_line, words_per_line) if isinstance(words_per_line, int) else tuple(words_per_line)
        if not 1 <= lo <= hi:
            raise DataError(f"StitchedLines: words_per_line={words_per_line!r}; use n >= 1 or (low, high) with 1 <= low <= high")
        self.words = list(words)
        self.num_lines = int(num_lines)
        self.seed = int(seed)
        self.space = space
        rng = np.random.default_rng(np.random.SeedSequence([self.seed & 0xFFFFFFFF, 0x571C]))
        counts = rng.integers(lo, hi + 1, size=self.num_lines)
        choice = rng.integers(0, len(self.words), size=(self.num_lines, hi), dtype=np.int64)
        if max_chars is not None:
            tl = np.array([len(w.text) for w in self.words])
            cum = np.cumsum(tl[choice] + 1, axis=1) - 1  # text length with single spaces after k+1 words
            fits = (cum <= max_chars).sum(axis=1)
            counts = np.maximum(np.minimum(counts, fits), 1)
        self._counts = counts.astype(np.int64)
        self._choice = choice.astype(np.int32 if len(self.words) < 2**31 else np.int64)
        word_len = np.array([len(w.offsets) for w in self.words], dtype=np.int64)
        mask = np.arange(hi)[None, :] < self._counts[:, None]
        self.lengths = (word_len[self._choice] * mask).sum(axis=1)

    def __len__(self) -> int:
        return self.num_lines

    def word_indices(self, index: int) -> list[int]:
        """The indices (into ``words``) of the words of line ``index``."""
        return self._choice[index, : self._counts[index]].tolist()

    def __getitem__(self, index: int) -> Sample:
        index = int(index)
        if not -self.num_lines <= index < self.num_lines:
            raise IndexError(f"StitchedLines: index {index} out of range for {self.num_lines} lines")
        index %= self.num_lines
        rng = np.random.default_rng(np.random.SeedSequence([self.seed & 0xFFFFFFFF, 0x571C, index]))
        return stitch([self.words[j] for j in self.word_indices(index)], rng=rng, space=self.space)


# ----------------------------------------------------------------------------------------------------------
# batching and loading


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of indices with similar ``lengths`` (less padding), in a random but reproducible order.

    Each epoch: the indices are shuffled (seed, epoch), cut into pools of ``pool`` batches, each pool is
    sorted by length and cut into batches, and the batches are shuffled. Without ``shuffle`` the batches are
    consecutive runs of the indices sorted by length (longest first, so an out-of-memory shows at once).

    Resuming: :meth:`state_dict` holds the epoch and ``position``, the number of batches handed out in the
    current pass; after :meth:`load_state_dict` the next pass starts at that batch. (A DataLoader asks
    for batches ahead of the training loop, so when resuming from a loop's own count of consumed batches,
    pass that count as ``position``.) :meth:`set_epoch` starts a new epoch at position 0.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        pool: int = 50,
    ):
        if batch_size < 1:
            raise DataError(f"BucketBatchSampler: batch_size must be >= 1, got {batch_size}")
        self.lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
        if len(self.lengths) == 0:
            raise DataError("BucketBatchSampler: no lengths given; the data set is empty")
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.pool = max(int(pool), 1)
        self.epoch = 0
        self.position = 0
        self._resume = 0

    def __len__(self) -> int:
        n, b = len(self.lengths), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.position = self._resume = 0

    def batches(self) -> list[list[int]]:
        """All batches of the current epoch, in order."""
        n, b = len(self.lengths), self.batch_size
        if not self.shuffle:
            order = np.argsort(-self.lengths, kind="stable")
            out = [order[i : i + b] for i in range(0, n, b)]
        else:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed & 0xFFFFFFFF, self.epoch, 0xB0C7]))
            perm = rng.permutation(n)
            size = b * self.pool
            out = []  # only the very last pool can end with a short batch
            for s in range(0, n, size):
                chunk = perm[s : s + size]
                chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
                out.extend(chunk[i : i + b] for i in range(0, len(chunk), b))
            out = [out[i] for i in rng.permutation(len(out))]
        if self.drop_last:
            out = [x for x in out if len(x) == b]
        return [x.tolist() for x in out]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.batches()
        start, self._resume = self._resume, 0
        self.position = start
        for batch in batches[start:]:
            self.position += 1
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed, "num_items": len(self.lengths),
                "batch_size": self.batch_size}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        try:
            epoch, position = int(state["epoch"]), int(state["position"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"BucketBatchSampler.load_state_dict: expected {{'epoch', 'position', ...}}, got {state!r}")
        for key, mine in (("num_items", len(self.lengths)), ("batch_size", self.batch_size), ("seed", self.seed)):
            if key in state and int(state[key]) != mine:
                raise DataError(
                    f"BucketBatchSampler.load_state_dict: the saved state has {key}={state[key]} but this sampler "
                    f"has {key}={mine}; resume with the same data set, batch size and seed"
                )
        if not 0 <= position <= len(self):
            raise DataError(f"BucketBatchSampler.load_state_dict: position {position} outside 0..{len(self)}")
        self.epoch = epoch
        self.position = self._resume = position


def default_mp_context() -> str:
    """The multiprocessing start method :func:`make_loader` uses: ``"fork"`` on Linux (fast, and it works
    for data sets defined in a notebook), ``"spawn"`` elsewhere (macOS and Windows, where fork is unsafe or
    missing; the data set must then be picklable: define custom classes in a module, not in a notebook)."""
    return "fork" if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods() else "spawn"


def make_loader(
    dataset: torch.utils.data.Dataset,
    batch_size: int,
    num_workers: int = 0,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
    bucket: bool = True,
    pin_memory: bool = False,
    prefetch_factor: int | None = None,
    mp_context: str | None = None,
) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` of :class:`Batch` es over ``dataset`` (items as :class:`StrokeDataset` makes them).

    Batches come from a :class:`BucketBatchSampler` over ``dataset.lengths`` (``bucket=False`` or a data set
    without lengths: plain shuffled batches), so the order is reproducible, resumable and the same whatever
    ``num_workers`` is; items are made in ``num_workers`` processes (0: in this process). Workers start with
    ``mp_context`` (default :func:`default_mp_context`) for each epoch (not persistent), so they always see
    the data set's current epoch. Set ``pin_memory=True`` when training on CUDA.
    """
    n = len(dataset)
    lengths = getattr(dataset, "lengths", None) if bucket else None
    if lengths is None:
        lengths = np.ones(n, dtype=np.int64)
    sampler = BucketBatchSampler(lengths, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)
    kw: dict[str, Any] = dict(batch_sampler=sampler, collate_fn=collate, num_workers=num_workers, pin_memory=pin_memory)
    if num_workers > 0:
        ctx = mp_context or default_mp_context()
        if ctx != "fork":
            try:
                pickle.dumps(dataset)
            except Exception as e:  # noqa: BLE001 - any pickling failure means the workers cannot get it
                raise DataError(
                    f"make_loader: the data set cannot be sent to worker processes started with {ctx!r} ({e}); "
                    "define its class in a module (not in a notebook cell) or use num_workers=0"
                ) from e
        kw["multiprocessing_context"] = multiprocessing.get_context(ctx)
        if prefetch_factor is not None:
            kw["prefetch_factor"] = prefetch_factor
    return torch.utils.data.DataLoader(dataset, **kw)
