"""An online handwriting recognizer: pen offsets in, characters out (CTC), used to score legibility.

Model
-----
Input: a sequence in the project convention (``(N, 3)`` rows of ``(dx, dy, end_of_stroke)``, y up, data
units of bigbank: a word about 0.3 units high).  :meth:`Recognizer.prepare` resamples every stroke at an
equal arc-length ``spacing`` (so the pen's speed and the digitiser's sampling rate do not matter — real
handwriting, the synthetic writer and every generator are read alike), zeroes the first offset (the pen's
position relative to an arbitrary origin) and normalises ``(dx, dy)`` with the recognizer's
:class:`~handwriting.strokes.Normalizer`.

The network sees four features per point: the normalised ``dx``, ``dy`` (clipped to ``±input_clip``),
``end_of_stroke`` and ``pen_up`` (1 when this move is a jump with the pen lifted, i.e. the previous point
ended a stroke).  Then

* 1-D convolutions (``conv_channels``, kernel ``conv_kernel``, ``conv_strides``): local shape features;
  the strides shorten the sequence (default ×6: about 4 frames per character of bigbank, at least
  1.5 per character-or-repeat in every bigbank word, which CTC needs);
* a bidirectional LSTM (``layers`` × ``hidden`` per direction) over the shortened sequence;
* a linear layer to ``len(alphabet) + 1`` classes: class ``k`` (1 … V) is character ``alphabet[k-1]``
  and class 0 is the CTC *blank* — the same id as padding in :class:`~handwriting.datasets.torch_data.Alphabet`,
  so the ids of a :class:`~handwriting.datasets.torch_data.Batch` are CTC targets as they are.

Trained with connectionist temporal classification (Graves et al. 2006; ``torch.nn.functional.ctc_loss``).
:meth:`Recognizer.training_step` follows the trainer's contract; its *points* are **characters**: ``loss`` is
the CTC negative log-likelihood per target character, ``nll_sum`` the NLL summed over the batch, ``points``
the number of target characters.

Decoding
--------
:func:`greedy_decode` (best class per frame, repeats collapsed, blanks removed; vectorised over the batch)
and :func:`beam_decode` (CTC prefix beam search without a language model, vectorised over beams and
characters, with per-frame pruning of unlikely characters).  :meth:`Recognizer.recognize` goes from raw
samples to strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..datasets.torch_data import Alphabet, Batch
from ..errors import HandwritingError
from ..strokes import Normalizer, Sample, check_offsets, resample

__all__ = [
    "RECOGNIZER_ALPHABET",
    "RecognizerConfig",
    "Recognizer",
    "greedy_decode",
    "beam_decode",
    "prefix_beam_search",
    "collapse",
    "prepare_offsets",
    "evaluate_loader",
]

#: bigbank's 70 characters plus the space (for stitched multi-word lines).
RECOGNIZER_ALPHABET = " !\"'(),.0123456789?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

BLANK = 0


@dataclass
class RecognizerConfig:
    """Hyper-parameters of :class:`Recognizer` (see the module docstring)."""

    alphabet: str = RECOGNIZER_ALPHABET  # class k = alphabet[k - 1]; class 0 = CTC blank (= padding id)
    spacing: float | None = 0.025  # resampling step in data units (bigbank: ~0.011 between raw points); None: off
    conv_channels: tuple[int, ...] = (64, 128, 128, 128)
    conv_kernel: int = 5
    conv_strides: tuple[int, ...] = (1, 2, 3, 1)  # total downsampling = product (6)
    hidden: int = 128  # LSTM cells per direction
    layers: int = 2
    dropout: float = 0.2
    input_clip: float = 10.0  # |normalised dx, dy| are clipped here (pen-up jumps can be huge)

    def __post_init__(self) -> None:
        self.conv_channels = tuple(int(c) for c in self.conv_channels)
        self.conv_strides = tuple(int(s) for s in self.conv_strides)
        if len(self.conv_channels) != len(self.conv_strides) or not self.conv_channels:
            raise HandwritingError(
                f"RecognizerConfig: conv_channels {self.conv_channels} and conv_strides {self.conv_strides} "
                "must be non-empty and of the same length"
            )
        if self.conv_kernel % 2 != 1:
            raise HandwritingError(f"RecognizerConfig: conv_kernel must be odd, got {self.conv_kernel}")
        if self.spacing is not None and not self.spacing > 0:
            raise HandwritingError(f"RecognizerConfig: spacing must be > 0 or None, got {self.spacing}")
        Alphabet(self.alphabet)  # duplicates / empty: a clear error now

    @property
    def downsampling(self) -> int:
        return int(np.prod(self.conv_strides))


NUM_FEATURES = 4


def _out_lengths(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    # Conv1d with odd kernel k, padding k // 2, stride s: ceil(L / s) outputs
    return torch.div(lengths + stride - 1, stride, rounding_mode="floor")


class Recognizer(nn.Module):
    """Conv1d front end + bidirectional LSTM + linear, trained with CTC (see the module docstring).

    Attributes besides the weights: ``alphabet`` (:class:`Alphabet` of ``config.alphabet``) and
    ``normalizer`` (set by the training recipe; saved in and restored from checkpoints).
    """

    def __init__(self, config: RecognizerConfig | None = None, **overrides):
        super().__init__()
        if config is None:
            config = RecognizerConfig(**overrides)
        elif overrides:
            import dataclasses

            config = dataclasses.replace(config, **overrides)
        self.config = c = config
        self.alphabet = Alphabet(c.alphabet)
        self.normalizer: Normalizer | None = None
        convs = []
        cin = NUM_FEATURES
        for cout, s in zip(c.conv_channels, c.conv_strides):
            convs.append(nn.Conv1d(cin, cout, c.conv_kernel, stride=s, padding=c.conv_kernel // 2))
            cin = cout
        self.convs = nn.ModuleList(convs)
        self.norm = nn.LayerNorm(cin)
        self.lstm = nn.LSTM(
            cin, c.hidden, num_layers=c.layers, bidirectional=True, batch_first=True,
            dropout=c.dropout if c.layers > 1 else 0.0,
        )  # fmt: skip
        self.drop = nn.Dropout(c.dropout)
        self.output = nn.Linear(2 * c.hidden, len(self.alphabet))  # len() counts the padding id = blank

    @property
    def num_classes(self) -> int:
        return len(self.alphabet)

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    # --- network -------------------------------------------------------------------------------------

    def features(self, x: torch.Tensor, x_mask: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3)`` normalised offsets → ``(B, T, 4)`` features (dx, dy, end_of_stroke, pen_up)."""
        lim = self.config.input_clip
        xy = x[..., :2].clamp(-lim, lim)
        xy = torch.cat([torch.zeros_like(xy[:, :1]), xy[:, 1:]], dim=1)  # the first offset is no pen movement
        eos = x[..., 2:3]
        pen_up = torch.cat([torch.zeros_like(eos[:, :1]), eos[:, :-1]], dim=1)
        f = torch.cat([xy, eos, pen_up], dim=-1)
        return f * x_mask[..., None].to(f.dtype)

    def encode(self, x: torch.Tensor, x_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The BiLSTM's outputs ``(B, T', 2H)`` (float32) and their lengths ``(B,)``."""
        lengths = x_mask.sum(1).long()
        h = self.features(x, x_mask).transpose(1, 2)  # (B, F, T)
        for conv, s in zip(self.convs, self.config.conv_strides):
            h = F.gelu(conv(h))
            lengths = _out_lengths(lengths, s)
            valid = torch.arange(h.shape[-1], device=h.device)[None, :] < lengths[:, None]
            h = h * valid[:, None, :].to(h.dtype)
        h = self.norm(h.transpose(1, 2).float())
        # the LSTM runs in float32 even under bf16 autocast (on CPU a bf16 LSTM is much slower)
        with torch.autocast(device_type=h.device.type, enabled=False):
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=h.shape[1])
        return out, lengths

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities ``(B, T', C)`` (float32; class 0 = blank) and frame counts ``(B,)``."""
        out, lengths = self.encode(x, x_mask)
        with torch.autocast(device_type=out.device.type, enabled=False):
            logits = self.output(self.drop(out))
        return logits.float().log_softmax(-1), lengths

    def training_step(self, batch: Batch) -> dict:
        """CTC loss per target character (``points`` = characters); see the module docstring."""
        log_probs, lengths = self(batch.x, batch.x_mask)
        targets = batch.text
        target_lengths = batch.text_mask.sum(1).long()
        nll = F.ctc_loss(
            log_probs.transpose(0, 1), targets, lengths, target_lengths, blank=BLANK, reduction="none",
            zero_infinity=True,
        )  # fmt: skip
        nll_sum = nll.sum()
        chars = int(target_lengths.sum())
        return {
            "loss": nll_sum / max(chars, 1),
            "nll_sum": float(nll_sum.detach()),
            "points": chars,
            "sequences": int(batch.x.shape[0]),
        }

    # --- from raw samples ----------------------------------------------------------------------------

    def prepare(self, offsets: np.ndarray | Sample, where: str = "sample", lenient: bool = True) -> np.ndarray:
        """Raw offsets (data units) → resampled offsets with the first offset zeroed (not yet normalised);
        see :func:`prepare_offsets` for ``lenient``."""
        if isinstance(offsets, Sample):
            offsets = offsets.offsets
        return prepare_offsets(offsets, self.config.spacing, where=where, lenient=lenient)

    def _batches(self, items: Sequence, normalizer: Normalizer | None, batch_size: int):
        norm = normalizer or self.normalizer
        if norm is None:
            raise HandwritingError(
                "Recognizer: no normalizer; load a trained recognizer (checkpoint.load_model) or pass normalizer="
            )
        seqs = []
        for i, it in enumerate(items):
            off = it.offsets if isinstance(it, Sample) else it
            seqs.append(norm.normalize(self.prepare(off, where=f"item {i}")))
        order = np.argsort([-len(s) for s in seqs], kind="stable")
        for start in range(0, len(seqs), batch_size):
            idx = order[start : start + batch_size]
            T = max(len(seqs[i]) for i in idx)
            x = np.zeros((len(idx), T, 3), np.float32)
            mask = np.zeros((len(idx), T), bool)
            for j, i in enumerate(idx):
                x[j, : len(seqs[i])] = seqs[i]
                mask[j, : len(seqs[i])] = True
            yield idx, torch.from_numpy(x).to(self.device), torch.from_numpy(mask).to(self.device)

    @torch.inference_mode()
    def log_probs(
        self, items: Sequence, normalizer: Normalizer | None = None, batch_size: int = 64
    ) -> list[np.ndarray]:
        """Per item, the ``(frames, classes)`` CTC log-probabilities (numpy float32)."""
        was = self.training
        self.eval()
        out: list[np.ndarray | None] = [None] * len(items)
        try:
            for idx, x, mask in self._batches(items, normalizer, batch_size):
                lp, lengths = self(x, mask)
                lp = lp.cpu().numpy()
                for j, i in enumerate(idx):
                    out[i] = lp[j, : int(lengths[j])]
        finally:
            self.train(was)
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def recognize(
        self,
        items: Sequence[Sample | np.ndarray],
        normalizer: Normalizer | None = None,
        beam_width: int = 1,
        batch_size: int = 64,
        chars: str | None = None,
    ) -> list[str]:
        """Read samples (or raw ``(N, 3)`` offsets in data units): greedy with ``beam_width=1``, else a CTC
        prefix beam search of that width.  ``normalizer`` overrides the recognizer's own.  ``chars`` limits
        the output to those characters (e.g. no space when reading single words, or only what a generator
        can write); the others are never emitted."""
        if isinstance(items, (Sample, np.ndarray)) and not (isinstance(items, np.ndarray) and items.ndim == 3):
            items = [items]
        items = list(items)
        if not items:
            return []
        banned = None
        if chars is not None:
            keep = set(chars)
            banned = torch.tensor([c not in keep for c in self.alphabet.chars], device=self.device)
            banned = torch.cat([torch.zeros(1, dtype=torch.bool, device=self.device), banned])  # blank stays
        was = self.training
        self.eval()
        texts: list[str | None] = [None] * len(items)
        try:
            for idx, x, mask in self._batches(items, normalizer, batch_size):
                lp, lengths = self(x, mask)
                if banned is not None:
                    lp = lp.masked_fill(banned, -math.inf)
                ids = greedy_decode(lp, lengths) if beam_width <= 1 else beam_decode(lp, lengths, beam_width)
                for j, i in enumerate(idx):
                    texts[i] = self.alphabet.decode(ids[j])
        finally:
            self.train(was)
        return texts  # type: ignore[return-value]

    @torch.inference_mode()
    def embed(self, items: Sequence, normalizer: Normalizer | None = None, batch_size: int = 64) -> np.ndarray:
        """One vector per item: the BiLSTM outputs averaged over frames, ``(n, 2 * hidden)``."""
        was = self.training
        self.eval()
        out = np.zeros((len(items), 2 * self.config.hidden), np.float32)
        try:
            for idx, x, mask in self._batches(list(items), normalizer, batch_size):
                h, lengths = self.encode(x, mask)
                valid = torch.arange(h.shape[1], device=h.device)[None, :] < lengths[:, None]
                mean = (h * valid[..., None]).sum(1) / lengths.clamp(min=1)[:, None]
                out[idx] = mean.cpu().numpy()
        finally:
            self.train(was)
        return out


# ----------------------------------------------------------------------------------------------------------
# decoding


def collapse(path: Iterable[int], blank: int = BLANK) -> list[int]:
    """A CTC path → its label sequence: merge repeated classes, then drop blanks."""
    out, prev = [], None
    for k in path:
        k = int(k)
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return out


def _as_tensor(log_probs) -> torch.Tensor:
    if isinstance(log_probs, np.ndarray):
        log_probs = torch.from_numpy(log_probs)
    if log_probs.dim() == 2:
        log_probs = log_probs[None]
    return log_probs


def _lengths(log_probs: torch.Tensor, lengths) -> torch.Tensor:
    if lengths is None:
        return torch.full((log_probs.shape[0],), log_probs.shape[1], dtype=torch.long)
    return torch.as_tensor(lengths).long().cpu()


def greedy_decode(log_probs, lengths=None, blank: int = BLANK) -> list[list[int]]:
    """Best path decoding of ``(B, T, C)`` (or ``(T, C)``) scores: per sequence, the argmax class of every
    frame with repeats merged and blanks removed.  Vectorised over the batch; returns lists of class ids."""
    lp = _as_tensor(log_probs)
    lengths = _lengths(lp, lengths)
    best = lp.argmax(-1).cpu()  # (B, T)
    prev = torch.cat([torch.full_like(best[:, :1], -1), best[:, :-1]], dim=1)
    valid = torch.arange(best.shape[1])[None, :] < lengths[:, None]
    keep = (best != prev) & (best != blank) & valid
    return [best[i][keep[i]].tolist() for i in range(best.shape[0])]


def prefix_beam_search(
    log_probs: np.ndarray, beam_width: int = 8, blank: int = BLANK, prune: float = -12.0, top_n: int = 1
) -> list[tuple[list[int], float]]:
    """CTC prefix beam search over one ``(T, C)`` array of log-probabilities (no language model).

    Each prefix keeps two log-probabilities: of the paths that end in a blank (``pb``) and of those that end
    in its last character (``pnb``).  At every frame a prefix may stay (blank, or a repeat of its last
    character) or grow by a character; a repeated character only grows the prefix after a blank.  Growths
    that produce a prefix already in the beam are merged into it.  All of that is computed for every beam and
    character at once; characters scoring below ``prune`` (log-probability) at a frame are not tried (frames
    where all are below it only update the beams' blank/repeat scores).  Returns the ``top_n`` best
    ``(labels, log-probability)``, best first.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    if lp.ndim != 2:
        raise ValueError(f"prefix_beam_search: expected a (T, C) array, got shape {lp.shape}")
    T, C = lp.shape
    W = max(int(beam_width), 1)
    ninf = -np.inf
    prefixes: list[tuple[int, ...]] = [()]
    pb = np.array([0.0])
    pnb = np.array([ninf])
    nonblank = np.array([k for k in range(C) if k != blank])
    for t in range(T):
        y = lp[t]
        last = np.array([p[-1] if p else -1 for p in prefixes])
        # stay: a blank after anything, or the last character repeated
        tot = np.logaddexp(pb, pnb)
        stay_pb = tot + y[blank]
        stay_pnb = np.where(last >= 0, pnb + y[np.maximum(last, 0)], ninf)
        cand = nonblank[y[nonblank] >= prune]
        if len(cand) == 0:
            pb, pnb = stay_pb, stay_pnb
            continue
        yc = y[cand]
        ext = tot[:, None] + yc[None, :]  # (n, K): prefix i grown by cand[k]
        same = last[:, None] == cand[None, :]
        ext = np.where(same, pb[:, None] + yc[None, :], ext)
        # merge growths that recreate a prefix of the beam
        pos = {int(c): k for k, c in enumerate(cand)}
        where = {p: i for i, p in enumerate(prefixes)}
        for j, p in enumerate(prefixes):
            if p:
                i, k = where.get(p[:-1]), pos.get(p[-1])
                if i is not None and k is not None:
                    stay_pnb[j] = np.logaddexp(stay_pnb[j], ext[i, k])
                    ext[i, k] = ninf
        n = len(prefixes)
        scores = np.concatenate([np.logaddexp(stay_pb, stay_pnb), ext.ravel()])
        m = min(W, int(np.isfinite(scores).sum()) or 1)
        top = np.argpartition(-scores, m - 1)[:m] if m < len(scores) else np.arange(len(scores))
        top = top[np.argsort(-scores[top], kind="stable")]
        new_prefixes, new_pb, new_pnb = [], [], []
        for s in top:
            if s < n:
                new_prefixes.append(prefixes[s])
                new_pb.append(stay_pb[s])
                new_pnb.append(stay_pnb[s])
            else:
                i, k = divmod(int(s - n), len(cand))
                new_prefixes.append(prefixes[i] + (int(cand[k]),))
                new_pb.append(ninf)
                new_pnb.append(ext[i, k])
        prefixes, pb, pnb = new_prefixes, np.array(new_pb), np.array(new_pnb)
    final = np.logaddexp(pb, pnb)
    order = np.argsort(-final, kind="stable")[: max(int(top_n), 1)]
    return [(list(prefixes[i]), float(final[i])) for i in order]


def beam_decode(log_probs, lengths=None, beam_width: int = 8, blank: int = BLANK, prune: float = -12.0) -> list[list[int]]:
    """:func:`prefix_beam_search` for every sequence of a ``(B, T, C)`` batch (``lengths`` frames each)."""
    lp = _as_tensor(log_probs)
    lengths = _lengths(lp, lengths)
    arr = lp.detach().float().cpu().numpy()
    return [
        prefix_beam_search(arr[i, : int(lengths[i])], beam_width, blank=blank, prune=prune)[0][0]
        for i in range(arr.shape[0])
    ]



# ----------------------------------------------------------------------------------------------------------
# preparing a sample for the recognizer (its training recipe is in handwriting.train.recipes)


def prepare_offsets(offsets: np.ndarray, spacing: float | None, where: str = "sample", lenient: bool = False) -> np.ndarray:
    """What :meth:`Recognizer.prepare` does, without a model: resample at ``spacing``, zero the first offset.

    ``lenient`` accepts what a generator may emit — an empty sequence (read as one lifted point), a last
    point that does not end its stroke, non-finite values (set to 0) — instead of raising."""
    if lenient:
        off = np.asarray(offsets, dtype=np.float32).reshape(-1, 3) if np.size(offsets) else np.zeros((0, 3), np.float32)
        off = np.nan_to_num(off, nan=0.0, posinf=0.0, neginf=0.0)
        if len(off) == 0:
            off = np.array([[0.0, 0.0, 1.0]], np.float32)
        off[:, 2] = (off[:, 2] > 0.5).astype(np.float32)
        off[-1, 2] = 1.0
    off = check_offsets(offsets if not lenient else off, where=where)
    if spacing is not None:
        off = resample(off, spacing)
    off = np.array(off, dtype=np.float32, copy=True)
    off[0, :2] = 0.0
    return off


@torch.inference_mode()
def evaluate_loader(model: Recognizer, loader, beam_width: int = 1, max_batches: int | None = None) -> tuple[list[str], list[str]]:
    """Read every batch of ``loader`` (already prepared and normalised); return ``(predictions, references)``."""
    was = model.training
    model.eval()
    preds, refs = [], []
    try:
        for b, batch in enumerate(loader):
            if max_batches is not None and b >= max_batches:
                break
            batch = batch.to(model.device)
            lp, lengths = model(batch.x, batch.x_mask)
            ids = greedy_decode(lp, lengths) if beam_width <= 1 else beam_decode(lp, lengths, beam_width)
            preds += [model.alphabet.decode(i) for i in ids]
            refs += list(batch.texts)
    finally:
        model.train(was)
    return preds, refs
