"""What the synthesis network's sampling (Graves 2013 §5.3–5.5) takes and gives, and its tensor helpers apart
from the network itself: a :class:`Prime` and a :class:`SampleResult`, Graves' stopping rule, the cut of the
strokes that finish a prime, and the shift read off a rehearsal's lifts
(:meth:`~handwriting.models.graves.SynthesisNetwork.rehearse_lifts`).  :mod:`handwriting.models.graves`
re-exports them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

from .mdn import MixtureParams

__all__ = ["Prime", "SampleResult", "window_stop", "drop_leading", "shift_for_lifts"]


@dataclass
class Prime:
    """A real sequence to prime the synthesis network with (Graves §5.5): normalised offsets ``x``
    ``(B, Tp, 3)`` and their text ``text`` ``(B, Up)`` (ids, 0 = padding), with optional masks."""

    x: torch.Tensor
    text: torch.Tensor
    x_mask: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None


@dataclass
class SampleResult:
    """Sampled sequences: ``strokes`` ``(B, T, 3)`` normalised offsets, zero after each row's ``lengths``;
    ``stopped`` says whether the window rule ended the row (else the length guard did).  With
    ``internals=True``: ``params`` (the *unbiased* mixture parameters of every step, ``(B, T)``; apply
    ``bias`` with :meth:`biased_params`), ``phi`` ``(B, T, U)``, ``kappa``/``alpha``/``beta`` ``(B, T, K)``,
    ``w`` ``(B, T, A)``; for primed sampling ``text`` is the concatenated text the window ran over."""

    strokes: torch.Tensor
    lengths: torch.Tensor
    stopped: torch.Tensor
    bias: torch.Tensor
    text: torch.Tensor | None = None
    text_mask: torch.Tensor | None = None
    params: MixtureParams | None = None
    internals: dict[str, torch.Tensor] = field(default_factory=dict)

    def sequences(self) -> list:
        """Per-row numpy ``(N, 3)`` float32 offsets (normalised), the last row's end-of-stroke set to 1."""
        out = []
        for b in range(self.strokes.shape[0]):
            n = max(int(self.lengths[b]), 1)
            a = self.strokes[b, :n].detach().float().cpu().numpy().copy()
            a[-1, 2] = 1.0
            out.append(a)
        return out

    def biased_params(self) -> MixtureParams | None:
        """The step parameters with the sampling bias applied (what the points were actually drawn from)."""
        if self.params is None:
            return None
        b = self.bias.view(-1, *([1] * (self.params.pi_logits.dim() - 1)))
        return MixtureParams(
            pi_logits=self.params.pi_logits * (1 + b),
            mu=self.params.mu,
            log_sigma=self.params.log_sigma - b.unsqueeze(-1),
            rho=self.params.rho,
            eos_logit=self.params.eos_logit,
        )


def window_stop(phi: torch.Tensor, phi_end: torch.Tensor) -> torch.Tensor:
    """Graves' stopping rule: the window has passed the last character when ``φ(t, U+1) > φ(t, u)`` for
    every real character ``u`` (``phi`` (B, U) already zero on padding; ``phi_end`` (B,) = φ(t, U_b + 1))."""
    return phi_end > phi.amax(-1)


def drop_leading(out: torch.Tensor, lengths: torch.Tensor, lead: torch.Tensor, rec: dict | None = None):
    """Sampled rows ``out`` (B, T, 3) without their first ``lead[b]`` points, which end a stroke: their offsets
    move into the first point kept, so the rest stays where it was drawn.  A row that would be left empty is
    kept whole.  ``rec`` (per-step records, (T, B, ...)) is cut alike.  Returns ``(out, lengths, rec)``."""
    lead = torch.where(lead < lengths, lead, torch.zeros_like(lead))
    T = out.shape[1]
    before = torch.arange(T, device=out.device).unsqueeze(0) < lead.unsqueeze(1)
    moved = (out[..., :2] * before.unsqueeze(-1)).sum(1)
    out = _shift_left(out, lead)
    out[:, 0, :2] += moved
    if rec is not None:
        rec = {k: _shift_left(v.transpose(0, 1), lead).transpose(0, 1) for k, v in rec.items()}
    return out, lengths - lead, rec


def _shift_left(a: torch.Tensor, by: torch.Tensor) -> torch.Tensor:
    """``a`` (B, T, ...) with row ``b`` moved ``by[b]`` steps to the left, zeros after."""
    B, T = a.shape[:2]
    idx = torch.arange(T, device=a.device).unsqueeze(0) + by.unsqueeze(1)
    shape = (B, T) + (1,) * (a.dim() - 2)
    keep = (idx < T).view(shape)
    return a.gather(1, idx.clamp(max=T - 1).view(shape).expand_as(a)) * keep


def _window_internals(phi, abk, w, K: int) -> dict[str, torch.Tensor]:
    """φ (B, T, U), α‖β‖κ (B, T, 3K) and w (B, T, A) → the ``internals`` dict."""
    return {"phi": phi, "alpha": abk[..., :K], "beta": abk[..., K : 2 * K], "kappa": abk[..., 2 * K :], "w": w}


def shift_for_lifts(shifts: Sequence[float], written: Sequence[float], hand: float) -> float:
    """The shift at which the network lifts the pen ``hand`` times, from ``written[i]``, its lifts when it wrote
    the same texts at ``shifts[i]``: the least-squares line through log lifts against the shift (half a lift
    added to every count, so that none is zero), solved for the hand's count and kept within the shifts tried;
    0 where the lifts do not rise with the shift."""
    x = torch.tensor([float(v) for v in shifts], dtype=torch.float64)
    y = torch.log(torch.tensor([float(v) for v in written], dtype=torch.float64) + 0.5)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"shift_for_lifts: needs as many lift counts as shifts, at least two ({len(y)}, {len(x)})")
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc * xc).sum())
    if slope <= 0:
        return 0.0
    at = float(x.mean()) + (math.log(float(hand) + 0.5) - float(y.mean())) / slope
    return min(max(at, float(x.min())), float(x.max()))


def _padded_prime(offsets: Sequence, texts: Sequence[torch.Tensor], device) -> Prime:
    """Lines of ink (normalised numpy offsets) and their text ids as one zero-padded, masked :class:`Prime`."""
    T, U = max(len(o) for o in offsets), max(len(t) for t in texts)
    x = torch.zeros(len(offsets), T, 3)
    text = torch.zeros(len(texts), U, dtype=torch.long)
    for r, (o, t) in enumerate(zip(offsets, texts)):
        x[r, : len(o)] = torch.from_numpy(o)
        text[r, : len(t)] = t.cpu()
    x_mask = torch.arange(T).unsqueeze(0) < torch.tensor([len(o) for o in offsets]).unsqueeze(1)
    return Prime(x.to(device), text.to(device), x_mask.to(device), (text != 0).to(device))
