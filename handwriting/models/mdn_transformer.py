"""A transformer with a mixture density head: continuous pen offsets in, a Gaussian mixture out.

The sketch-transformer design (a decoder-only transformer on stroke-3 input with a categorical pen head and
an MDN head for the offsets; see the course's reference notes, §3) applied to handwriting, optionally
conditioned on text through the same cross-attention blocks as the cursive transformer
(:mod:`handwriting.models.transformer`).  Where the cursive transformer quantises every offset into tokens,
this model reads the offsets as numbers and predicts a distribution over the next one:

* input at position ``t`` is the previous point: a linear embedding of its normalised ``(dx, dy)`` plus a
  pen embedding — *draw* (the pen stays down after the point), *lift* (the stroke ends there), *end* (the
  sequence is over) and *start* (position 0, no previous point) — plus a learned position embedding;
* the decoder blocks are :class:`~handwriting.models.transformer.Block` (causal self-attention, optional
  cross-attention to character + character-position embeddings, GELU MLP);
* two heads: :class:`~handwriting.models.mdn.MDNHead` for ``(dx, dy)`` (its Bernoulli output is unused) and
  a 3-way categorical pen head (draw / lift / end).  An ``end`` target after the last point teaches the model
  when to stop.

Sampling applies Graves' bias (2013, §5.4) to the mixture (``σ·exp(−b)``, ``π`` logits × ``(1 + b)``) and a
temperature ``1 / (1 + b)`` to the pen head, with a KV cache and the cross-attention folded per text
(:class:`~handwriting.models.transformer_fast.DecodePlan`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import HandwritingError
from .base import Priming, WrittenRows, concat_texts
from .mdn import MDNHead, MixtureParams, mixture_log_density, sample_mixture
from .transformer import DecoderBase, TextContext, init_gpt_weights, sampling
from .transformer_fast import DecodePlan, KVCache, fold_layer_norm

__all__ = ["MDNTransformerConfig", "MDNTransformer", "PEN_DRAW", "PEN_LIFT", "PEN_END", "PEN_START"]

PEN_DRAW, PEN_LIFT, PEN_END, PEN_START = 0, 1, 2, 3


@dataclass
class MDNTransformerConfig:
    n_layer: int = 4
    d_model: int = 64
    n_head: int = 4
    block_size: int = 1200  # positions = points + 1 (the start position)
    num_mixtures: int = 20
    alphabet_size: int = 0  # character ids incl. 0 = padding; 0 = unconditional (no cross-attention)
    text_len: int = 50
    dropout: float = 0.0
    bias: bool = True
    mlp_ratio: int = 4

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MDNTransformerConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"MDNTransformerConfig: unknown fields {sorted(unknown)}")
        return cls(**d)


class MDNTransformer(DecoderBase):
    """Decoder-only transformer over normalised offsets with an MDN head and a pen head."""

    def __init__(self, config: MDNTransformerConfig):
        super().__init__()
        self.config = c = config
        self.xy_emb = nn.Linear(2, c.d_model)
        self.pen_emb = nn.Embedding(4, c.d_model)  # draw, lift, end, start
        self._build_trunk(c.d_model, c.n_head, c.n_layer, c.block_size, c.dropout, c.bias, c.mlp_ratio,
                          c.alphabet_size, c.text_len)
        self.mdn = MDNHead(c.d_model, c.num_mixtures)
        self.pen_head = nn.Linear(c.d_model, 3)
        init_gpt_weights(self, c.n_layer)

    @property
    def conditional(self) -> bool:
        return self.text is not None

    # -- inputs -------------------------------------------------------------------------------------------
    def embed(self, xy: torch.Tensor, pen: torch.Tensor) -> torch.Tensor:
        """Previous points' normalised ``(dx, dy)`` ``(B, T, 2)`` and pen classes ``(B, T)`` → ``(B, T, C)``."""
        return self.xy_emb(xy) + self.pen_emb(pen)

    @staticmethod
    def inputs_from_offsets(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised offsets ``(B, T, 3)`` → the model's inputs for positions ``0..T``: ``xy`` ``(B, T+1, 2)``
        (zeros at the start position) and pen classes ``(B, T+1)`` (start, then draw/lift of each point)."""
        B, T, _ = x.shape
        xy = torch.cat([x.new_zeros(B, 1, 2), x[..., :2]], 1)
        pen = torch.cat([torch.full((B, 1), PEN_START, dtype=torch.long, device=x.device),
                         (x[..., 2] > 0.5).long()], 1)
        return xy, pen

    def _heads(self, h: torch.Tensor) -> tuple[MixtureParams, torch.Tensor]:
        return self.mdn(h), self.pen_head(h)

    def forward(self, x: torch.Tensor, text=None, text_mask=None, zero_context: bool = False):
        """Mixture parameters and pen logits for positions ``0..T`` given the offsets ``x`` ``(B, T, 3)``:
        position ``t`` predicts point ``t`` (position ``T`` predicts the end)."""
        xy, pen = self.inputs_from_offsets(x.float())
        h = self._trunk(self.embed(xy, pen), self.prepare_context(text, text_mask, zero_context))
        return self._heads(h)

    def training_step(self, batch) -> dict:
        """NLL on a :class:`handwriting.datasets.torch_data.Batch`: per point, ``−log p(dx, dy)`` under the
        mixture plus ``−log P(pen)`` (draw or lift), plus one ``−log P(end)`` per sequence after its last
        point.  ``loss`` is that sum divided by the number of points (comparable in spirit to Graves' loss
        per point, whose pen term is a Bernoulli instead)."""
        x, m = batch.x.float(), batch.x_mask.bool()
        # sequences longer than the context are cut to it (and get no END target: they do not end there)
        cropped = m.sum(1) > self.block_size - 1
        x, m = x[:, : self.block_size - 1], m[:, : self.block_size - 1]
        B, T, _ = x.shape
        params, pen_logits = self(x, batch.text if self.conditional else None,
                                  batch.text_mask if self.conditional else None)
        lengths = m.sum(1)
        pos = torch.arange(T + 1, device=x.device)
        pen_t = torch.cat([(x[..., 2] > 0.5).long(), torch.zeros(B, 1, dtype=torch.long, device=x.device)], 1)
        pen_t = torch.where(pos[None] == lengths[:, None], torch.full_like(pen_t, PEN_END), pen_t)
        pen_mask = (pos[None] < lengths[:, None]) | ((pos[None] == lengths[:, None]) & ~cropped[:, None])
        xy_nll = -mixture_log_density(params[:, :T], x[..., :2])
        xy_nll = torch.where(m, xy_nll, torch.zeros((), device=x.device)).sum()
        pen_nll = F.cross_entropy(pen_logits.float()[pen_mask], pen_t[pen_mask], reduction="sum")
        nll_sum = xy_nll + pen_nll
        n = int(lengths.sum())
        return {"loss": nll_sum / max(n, 1), "nll_sum": float(nll_sum.detach()), "points": n, "sequences": B,
                "pen_nll": float(pen_nll.detach()), "xy_nll": float(xy_nll.detach())}

    # -- sampling -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode_plan(self, context: TextContext | None) -> DecodePlan:
        """Folded weights for :meth:`decode_step` (both heads in one matrix product)."""
        plan = DecodePlan(self.blocks, context, self.ln_f)
        w = torch.cat([self.mdn.linear.weight, self.pen_head.weight], 0)
        b = torch.cat([self.mdn.linear.bias, self.pen_head.bias], 0)
        plan.head = fold_layer_norm(self.ln_f, w, b)
        return plan

    def decode_step(self, xy: torch.Tensor, pen: torch.Tensor, plan: DecodePlan, caches: list[KVCache]):
        """One new input per row (``xy`` ``(B, 2)``, ``pen`` ``(B,)``) after the cached positions →
        ``(MixtureParams (B,), pen_logits (B, 3))``; equal (to float rounding) to :meth:`forward`."""
        x = F.linear(xy, self.xy_emb.weight, self.xy_emb.bias) + F.embedding(pen, self.pen_emb.weight)
        wt, b = plan.head
        raw = torch.addmm(b, self._decode_trunk(x, plan, caches), wt)
        k = self.mdn.out_features
        return self.mdn.split(raw[:, :k]), raw[:, k:]

    def step(self, xy: torch.Tensor, pen: torch.Tensor, context: TextContext | None, caches: list[KVCache]):
        """Several new inputs per row (``xy`` ``(B, t, 2)``, ``pen`` ``(B, t)``) through the general path."""
        h = self._trunk(self.embed(xy, pen), context, caches, caches[0].length)
        return self._heads(h)

    @sampling
    def sample(
        self,
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        bias: float | torch.Tensor = 0.0,
        max_steps: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        prime=None,
        internals: bool = False,
        n: int | None = None,
        pen_temperature: float | None = None,
        points_per_char: int = 40,
        steps: int | None = None,
        zero_context: bool = False,
    ):
        """Draw sequences (all rows at once) → :class:`handwriting.models.graves.SampleResult` (normalised
        offsets, lengths, ``stopped`` = the pen head chose *end*).

        ``text`` ``(B, U)`` ids for a text-conditioned model (else ``n`` rows, or ``steps`` as the length
        guard for an unconditional one).  ``bias`` (a float or one per row) sharpens the mixture as in Graves
        §5.4 and the pen head with temperature ``pen_temperature`` (default ``1 / (1 + bias)``).  Each row
        stops at *end* or after ``points_per_char`` × its characters (or ``max_steps``/``steps``; never more
        than ``block_size − 1`` points in all).  ``prime`` (a :class:`~handwriting.models.graves.Prime`:
        normalised offsets and their text) is fed first; the text then becomes prime text + ``text``.
        ``internals=True`` records the unbiased mixture parameters (``params``, with ``eos_logit`` set to
        ``log P(lift) − log P(draw)`` from the pen head) and the pen probabilities (``internals["pen"]``:
        draw, lift, end) of every step."""
        from .graves import SampleResult

        device = next(self.parameters()).device
        generator = generator if generator is not None else (
            torch.Generator(device=device).manual_seed(int(seed)) if seed is not None else None)
        ctx_text, ctx_mask = None, None
        if self.conditional:
            if text is None:
                raise ValueError("this MDN transformer is text-conditioned: pass text (B, U) character ids")
            text = torch.as_tensor(text, device=device)
            text = text[None] if text.dim() == 1 else text
            mask = (text != 0) if text_mask is None else torch.as_tensor(text_mask, device=device).bool()
            B = text.shape[0]
            ctx_text, ctx_mask = text, mask
            if prime is not None:
                pt = prime.text.to(device)
                pm = (pt != 0) if prime.text_mask is None else prime.text_mask.to(device).bool()
                ctx_text, ctx_mask = concat_texts(pt, pm, text, mask)
            guard = (points_per_char * mask.sum(1)).clamp(min=1)
        else:
            B = int(n if n is not None else (prime.x.shape[0] if prime is not None else 1))
            guard = torch.full((B,), int(steps or max_steps or self.block_size - 1), device=device)
        prefix = None
        if prime is not None:
            prefix = prime.x.to(device).float()
            if prefix.dim() == 2:
                prefix = prefix[None]
            prefix = prefix.expand(B, -1, -1)
        P = 0 if prefix is None else prefix.shape[1]
        room = self.block_size - 1 - P
        if room < 1:
            raise ValueError(f"the prime ({P} points) leaves no room in block_size={self.block_size}")
        if max_steps is not None:
            guard = guard.clamp(max=int(max_steps))
        if steps is not None:
            guard = guard.clamp(max=int(steps))
        guard = guard.clamp(max=room)
        T = int(guard.max())
        b = torch.as_tensor(bias, dtype=torch.float32, device=device)
        b_rows = b.expand(B) if b.dim() == 0 else b.reshape(B)
        temp = (1.0 / (1.0 + b_rows)) if pen_temperature is None else torch.full((B,), float(pen_temperature),
                                                                                  device=device)
        context = self.prepare_context(ctx_text, ctx_mask, zero_context) if self.conditional else None
        caches = self.new_caches(B, P + T + 1, device)
        plan = self.decode_plan(context)
        # position 0 (start) and the prime, through the general path; then one point at a time
        xy0, pen0 = self.inputs_from_offsets(prefix if prefix is not None else torch.zeros(B, 0, 3, device=device))
        params, pen_logits = self.step(xy0, pen0, context, caches)
        params, pen_logits = params[:, -1], pen_logits[:, -1].float()
        out = torch.zeros(B, T, 3, device=device)
        lengths = torch.full((B,), T, dtype=torch.long, device=device)
        stopped = torch.zeros(B, dtype=torch.bool, device=device)
        done = torch.zeros(B, dtype=torch.bool, device=device)
        rec_params, rec_pen = [], []
        t_end = T
        for t in range(T):
            if internals:  # eos_logit := log P(lift) - log P(draw), so Graves-style plots of e work
                rec_params.append(MixtureParams(params.pi_logits, params.mu, params.log_sigma, params.rho,
                                                pen_logits[:, PEN_LIFT] - pen_logits[:, PEN_DRAW]))
                rec_pen.append(pen_logits.softmax(-1))
            pt = sample_mixture(params, b_rows, generator)[:, :2]
            probs = (pen_logits / temp[:, None]).softmax(-1)
            cdf = probs.cumsum(-1)
            u = torch.rand((B, 1), generator=generator, device=device) * cdf[:, -1:]
            cls = torch.searchsorted(cdf, u, right=True).clamp_(max=2)[:, 0]
            ended = ~done & ((cls == PEN_END) | (t + 1 > guard))
            lengths = torch.where(ended, torch.full_like(lengths, t), lengths)
            stopped |= ended & (cls == PEN_END)
            done |= ended
            if bool(done.all()):
                t_end = t
                break
            pen = cls.clamp(max=PEN_LIFT)
            out[:, t, :2] = pt
            out[:, t, 2] = pen.float()
            params, pen_logits = self.decode_step(pt, pen, plan, caches)
            pen_logits = pen_logits.float()
        lengths = lengths.clamp(max=t_end).clamp(min=1)
        L = int(lengths.max())
        strokes = out[:, :L] * (torch.arange(L, device=device)[None] < lengths[:, None]).unsqueeze(-1)
        res = SampleResult(strokes, lengths, stopped, b_rows, text=ctx_text, text_mask=ctx_mask)
        if internals and rec_params:
            res.params = MixtureParams.stack(rec_params, 1)[:, :L]
            res.internals = {"pen": torch.stack(rec_pen, 1)[:, :L]}
        return res

    def write_rows(self, text_ids, text_mask, bias, generator, prime: Priming | None = None, internals: bool = False,
                   max_steps: int | None = None) -> WrittenRows:
        """The writing interface (:class:`~handwriting.models.base.TextWriter`) over :meth:`sample`:
        :func:`~handwriting.models.graves.sample_rows`.  A model trained without text writes none."""
        if not self.conditional:
            raise HandwritingError("this MDN transformer was trained without text (alphabet_size=0): it writes no "
                                   "text; draw from it with model.sample(n=...) instead, or use a text-conditioned model")
        from .graves import sample_rows

        return sample_rows(self, text_ids, text_mask, bias, generator, prime, internals, max_steps)
