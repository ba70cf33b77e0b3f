"""The writing interface: what a text-conditioned generator implements so that
:func:`handwriting.generate.write` (and with it the page writer, the panel and the evaluation) can drive it.

A generator has one method, :meth:`TextWriter.write_rows`: a batch of texts (character ids) in, one written
sequence per row out, as ``(N, 3)`` offsets in data units.  The synthesis network
(:class:`~handwriting.models.graves.SynthesisNetwork`), the cursive transformer
(:class:`~handwriting.models.transformer.CursiveTransformer`) and the MDN transformer
(:class:`~handwriting.models.mdn_transformer.MDNTransformer`) implement it as thin adapters over their own
``sample`` / ``generate``; any other model with the method is driven the same way.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, Sequence, runtime_checkable

import torch

__all__ = ["TextWriter", "Priming", "WrittenRows", "concat_texts"]


class Priming(NamedTuple):
    """A real sample whose style the writing continues (Graves §5.5), for every row alike: ``offsets``
    ``(P, 3)`` float32 in data units (the first point's ``dx, dy`` already 0, as in the training data) and
    ``text_ids`` ``(Up,)`` long, the ids of its text and a space: the model reads them followed by each row's
    text."""

    offsets: Any  # numpy (P, 3)
    text_ids: torch.Tensor
    #: further lines of the same hand, ``(offsets, text_ids)`` pairs (each line's own text, no trailing space),
    #: which a model may read for what a few words show too little of (the synthesis network: its rate of lifts)
    more: tuple = ()


class WrittenRows(NamedTuple):
    """What :meth:`TextWriter.write_rows` returns, one entry per row: ``offsets`` (numpy ``(N, 3)`` float32
    in data units, ``N >= 1``, the last point ending a stroke), ``stopped`` (the model ended the row itself
    rather than its length guard) and, with ``internals=True``, ``internals`` (a dict per row of numpy
    arrays over the row's points for plotting: the Graves window ``phi``, ``kappa``… and mixture ``params``,
    ``pi``, ``eos``; the cursive transformer's ``tokens`` and cross-``attention``; the MDN transformer's
    ``pen`` probabilities), else ``None``."""

    offsets: list
    stopped: list
    internals: list | None = None


@runtime_checkable
class TextWriter(Protocol):
    """A model that writes text (see the module docstring)."""

    def write_rows(
        self,
        text_ids: torch.Tensor,
        text_mask: torch.Tensor,
        bias: Sequence[float],
        generator: torch.Generator | None,
        prime: Priming | None = None,
        internals: bool = False,
        max_steps: int | None = None,
    ) -> WrittenRows:
        """Write every row of ``text_ids`` ``(B, U)`` (ids, 0 = padding; ``text_mask`` ``(B, U)`` bool marks
        the characters), all in one batch on the model's device, drawing from ``generator``.  ``bias`` holds
        one sampling bias per row (0: the model as trained; higher: neater — Graves §5.4 for the mixture
        models, min-p truncation ``0.2 b / (1 + b)`` for the token model).  ``prime`` continues a sample's style;
        ``max_steps`` caps the steps per row (points, or tokens for the token model)."""
        ...


def concat_texts(a: torch.Tensor, a_mask: torch.Tensor, b: torch.Tensor, b_mask: torch.Tensor):
    """Per row, the valid characters of ``a`` followed by those of ``b``, left-aligned and zero-padded.

    Returns ``(text, mask)`` of width ``max_b(len a_b + len b_b)``.
    """
    a_mask, b_mask = a_mask.bool(), b_mask.bool()
    la = a_mask.sum(1)
    total = la + b_mask.sum(1)
    B = a.shape[0]
    width = max(int(total.max()), 1) if B else 1
    out = torch.zeros(B, width, dtype=a.dtype, device=a.device)
    for src, m, offset in ((a, a_mask, torch.zeros_like(la)), (b, b_mask, la)):
        rank = torch.cumsum(m.long(), 1) - 1 + offset.unsqueeze(1)
        rows, cols = m.nonzero(as_tuple=True)
        out[rows, rank[rows, cols]] = src[rows, cols]
    return out, torch.arange(width, device=a.device).unsqueeze(0) < total.unsqueeze(1)
