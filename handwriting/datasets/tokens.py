"""Token data for the cursive transformer: samples → token sequences (:class:`TokenDataset`, with the paper's
downsampling, augmentation and stitching) and padded batches of them (:func:`collate_tokens` →
:class:`TokenBatch`, what :meth:`handwriting.models.transformer.CursiveTransformer.training_step` reads).

The tokenizer (:mod:`handwriting.models.tokenizer`) is passed in, not imported: data sets come before models
in the import order.  :mod:`handwriting.models.transformer` re-exports the three public names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import DataError
from ..strokes import AugmentConfig, Sample, augment as _augment, downsample as _downsample, stitch as _stitch

__all__ = ["TokenBatch", "TokenDataset", "collate_tokens"]

#: The padding token of the token layout: ``handwriting.models.tokenizer.PAD`` (0 in both tokenizers and in
#: every saved model), spelled out here so that data sets import nothing from models.
PAD = 0


@dataclass
class TokenBatch:
    """A padded batch of token sequences with their texts.

    tokens ``(B, T)`` long (``BOS ... END`` then ``PAD``), token_mask ``(B, T)`` bool, text ``(B, U)`` long
    character ids (0 = padding), text_mask ``(B, U)`` bool, texts the strings."""

    tokens: torch.Tensor
    token_mask: torch.Tensor
    text: torch.Tensor
    text_mask: torch.Tensor
    texts: list = field(default_factory=list)

    def to(self, device, non_blocking: bool = False) -> "TokenBatch":
        mv = lambda t: t.to(device, non_blocking=non_blocking)  # noqa: E731
        return TokenBatch(mv(self.tokens), mv(self.token_mask), mv(self.text), mv(self.text_mask), self.texts)

    def __len__(self) -> int:
        return self.tokens.shape[0]


def collate_tokens(items: Sequence[dict]) -> TokenBatch:
    """Pad the items of a :class:`TokenDataset` into a :class:`TokenBatch`."""
    B = len(items)
    T = max(len(it["tokens"]) for it in items)
    U = max(max(len(it["text_ids"]) for it in items), 1)
    tokens = torch.full((B, T), PAD, dtype=torch.long)
    text = torch.zeros((B, U), dtype=torch.long)
    for i, it in enumerate(items):
        tokens[i, : len(it["tokens"])] = torch.as_tensor(it["tokens"])
        text[i, : len(it["text_ids"])] = torch.as_tensor(it["text_ids"])
    lengths = torch.tensor([len(it["tokens"]) for it in items])
    tlen = torch.tensor([len(it["text_ids"]) for it in items])
    return TokenBatch(
        tokens,
        torch.arange(T)[None] < lengths[:, None],
        text,
        torch.arange(U)[None] < tlen[:, None],
        [it["text"] for it in items],
    )


def _alphabet_encode(alphabet, text: str) -> np.ndarray:
    ids = alphabet.encode(text)
    if hasattr(ids, "detach"):
        ids = ids.detach().cpu().numpy()
    return np.asarray(ids, dtype=np.int64).reshape(-1)


class TokenDataset(torch.utils.data.Dataset):
    """Samples → token sequences for the cursive transformer, with the paper's augmentation.

    Item ``i`` is ``{"tokens": int64 array [BOS ... END], "text_ids": int64 array, "text": str}``; batch
    items with :func:`collate_tokens`.  Per access (random unless ``augment`` and ``downsample`` are None):

    * ``words_per_line > 1`` stitches sample ``i`` with ``words_per_line - 1`` other random samples into one
      line (:func:`handwriting.strokes.stitch`; words are dropped from the end while the text would exceed
      ``text_len``) and puts ``WORD WORD`` between the words' tokens;
    * ``downsample=(mean, width)`` removes a fraction ``mean ± width/2`` of each stroke's interior points
      (the paper: 0.65 ± 0.05), a float removes exactly that fraction (evenly spaced);
    * ``augment`` (an :class:`~handwriting.strokes.AugmentConfig`) applies a random shear/scale/rotation to the
      line; with ``pen`` (a function that re-records ink as the data's recorder did, such as
      :func:`~handwriting.datasets.jsonink.bigbank_pen`) each word is augmented and re-recorded by ``pen``
      before it is downsampled, so that augmented ink keeps the recorder's lattice, which the tokens would
      otherwise show;
    * ``zero_start`` sets the first offset to (0, 0): the pen's starting position carries no information
      and would otherwise cost a long first jump;
    * sequences longer than ``block_size + 1`` tokens are cut (the model then sees a prefix without END).

    ``alphabet`` is a :class:`handwriting.datasets.torch_data.Alphabet` (or anything with ``encode(text)``
    returning ids, 0 being padding).  The random state is ``(seed, epoch, i)``: call :meth:`set_epoch` to
    draw new augmentations each epoch; items are reproducible otherwise."""

    def __init__(
        self,
        samples: Sequence[Sample],
        tokenizer,
        alphabet,
        block_size: int = 1050,
        text_len: int = 50,
        downsample: float | tuple[float, float] | None = None,
        augment: AugmentConfig | None = None,
        pen: Callable[[np.ndarray], np.ndarray] | None = None,
        words_per_line: int = 1,
        zero_start: bool = True,
        seed: int = 0,
    ):
        if not samples:
            raise DataError("TokenDataset: no samples given; load a data set first")
        self.samples = list(samples)
        self.tokenizer = tokenizer
        self.alphabet = alphabet
        self.block_size = int(block_size)
        self.text_len = int(text_len)
        self.downsample = downsample
        self.augment = augment
        self.pen = pen
        self.words_per_line = int(words_per_line)
        self.zero_start = zero_start
        self.seed = int(seed)
        self.epoch = 0
        self._text_ids = [_alphabet_encode(alphabet, s.text) for s in self.samples]
        for i, ids in enumerate(self._text_ids):
            if len(ids) > self.text_len:
                src = self.samples[i].source or f"sample {i}"
                raise DataError(
                    f"{src}: text {self.samples[i].text!r} has {len(ids)} characters, more than text_len="
                    f"{self.text_len}; raise text_len (and the model's) or drop the sample"
                )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, i])

    def _prepare(self, off: np.ndarray, rng) -> np.ndarray:
        d = self.downsample
        if d is None:
            return off
        if isinstance(d, (tuple, list)):
            frac = float(np.clip(d[0] + d[1] * (rng.random() - 0.5), 0.0, 0.95))
            return _downsample(off, frac, rng)
        return _downsample(off, float(d))

    def _word(self, off: np.ndarray, rng) -> np.ndarray:
        if self.augment is None or self.pen is None:
            return off
        return self.pen(_augment(off, rng, self.augment))

    def __getitem__(self, i: int) -> dict:
        rng = self._rng(i)
        idx = [i]
        if self.words_per_line > 1 and len(self.samples) > 1:
            others = rng.choice(len(self.samples) - 1, size=min(self.words_per_line - 1, len(self.samples) - 1),
                                replace=False)
            idx += [int(j) + (j >= i) for j in others]
            while len(idx) > 1 and sum(len(self._text_ids[j]) for j in idx) + len(idx) - 1 > self.text_len:
                idx.pop()
        words = [self.samples[j].replace(offsets=self._prepare(self._word(self.samples[j].offsets, rng), rng))
                 for j in idx]
        if len(words) == 1:
            off, text, starts = words[0].offsets, words[0].text, None
            text_ids = self._text_ids[i]
        else:
            line = _stitch(words, rng)
            off, text = line.offsets, line.text
            starts = np.cumsum([len(w.offsets) for w in words])[:-1]
            text_ids = _alphabet_encode(self.alphabet, text)
        if self.augment is not None and self.pen is None:
            off = _augment(off, rng, self.augment)
        if self.zero_start:
            off = off.copy()
            off[0, :2] = 0.0
        tokens = self.tokenizer.encode(off, word_starts=starts)
        if len(tokens) > self.block_size + 1:
            tokens = tokens[: self.block_size + 1]
        return {"tokens": tokens, "text_ids": text_ids, "text": text}

