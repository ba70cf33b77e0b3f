"""The cursive transformer: a GPT decoder over pen tokens that reads the text through cross-attention.

After Greydanus & Wimpee (2025, arXiv:2504.00051): pen offsets are tokenized
(:mod:`handwriting.models.tokenizer`), a small GPT-style decoder (pre-LayerNorm blocks, GELU MLP, causal
self-attention) predicts the next token, and every block also attends to the text — character embeddings plus
character *position* embeddings (the paper found the missing position embeddings to be the bug that held
early versions back).  Defaults follow the paper: 4–5 layers, width 64, 4 heads, 1,050–1,500 tokens of
context, up to 50 characters.

Speed.  Training uses :func:`torch.nn.functional.scaled_dot_product_attention` (a fused, memory-efficient
causal kernel instead of explicit ``T × T`` score matrices) for self-attention and a few batched matrix
products for the small cross-attention; on GPUs bf16 autocast helps further, but on CPUs a width-64 model is
memory-bound and float32 is *faster* than bf16 autocast (measured on an AVX-512-bf16 EPYC: the bf16 kernels
for these skinny matrix products and for the 16-wide attention heads are slower).  Sampling keeps a
key/value cache for self-attention, computes the text's cross-attention keys/values once per text, and runs
each new token through :class:`DecodePlan` (the same computation regrouped into few calls), single-threaded
on CPUs (:data:`DECODE_THREADS`).  ``handwriting bench transformer`` measures all of it.

The building blocks (:class:`SelfAttention`, :class:`CrossAttention`, :class:`Block`, :class:`KVCache`) are
shared with :mod:`handwriting.models.mdn_transformer`.  This module reads top to bottom as the model; the
fast path sits beside it in :mod:`handwriting.models.transformer_fast` (:class:`KVCache`, :class:`DecodePlan`,
:func:`fold_layer_norm`, the fused head loss :class:`LinearCrossEntropy`) and the token data with the data
sets in :mod:`handwriting.datasets.tokens` (:class:`TokenDataset`, :func:`collate_tokens`,
:class:`TokenBatch`); both are re-exported here.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..datasets.tokens import TokenBatch, TokenDataset, collate_tokens
from ..errors import DataError
from .base import Priming, WrittenRows, concat_texts
from .tokenizer import BOS, END, PAD, tokenizer_from_dict
from .transformer_fast import DecodePlan, KVCache, LinearCrossEntropy, fold_layer_norm

__all__ = [
    "CursiveTransformerConfig",
    "CursiveTransformer",
    "DecoderBase",
    "TextEmbedding",
    "SelfAttention",
    "CrossAttention",
    "Block",
    "KVCache",
    "DecodePlan",
    "LinearCrossEntropy",
    "GumbelNoise",
    "fold_layer_norm",
    "decode_threads",
    "TextContext",
    "TokenBatch",
    "TokenDataset",
    "collate_tokens",
    "bias_min_p",
    "attention_says_end",
    "END_ATTENTION",
    "MIN_P_CAP",
]

# On CPUs, the fused attention kernel runs faster in float32 than in bfloat16 for the small head sizes used
# here (16): under autocast, q/k/v are cast back to float32 around the attention call.  (Measured on a
# 2-core AVX-512-bf16 EPYC, PyTorch 2.13: fwd+bwd of B=32, H=4, T=1050, D=16 takes 0.37 s in fp32 vs 0.8 s in
# bf16.)  On CUDA the bf16 kernels are used as they are.
CPU_ATTENTION_FP32 = True


#: Threads used while sampling on a CPU.  Decoding runs hundreds of tiny operations per token; spreading
#: them over threads only adds synchronisation, and on a busy machine a descheduled helper thread stalls
#: every operation (measured on a shared 2-core box: 3.6 ms vs 84 ms per token with 1 vs 2 threads).
DECODE_THREADS = 1

#: the most of the distribution the bias trims (min-p, as ``bias → ∞``); see :func:`bias_min_p`
MIN_P_CAP = 0.2


def bias_min_p(bias: float) -> float:
    """The writing bias as min-p truncation: at every token, drop the tokens less likely than ``min_p`` times the
    most likely one and sample the rest as the model says (temperature 1).  ``min_p = 0.2 b / (1 + b)``: 0 at
    b = 0 (plain sampling), 0.1 at b = 1, never more than 0.2.  Not a temperature: bigbank's pen moves lie on a
    coarse lattice, so the likeliest tokens are lattice moves (one-unit steps, straight down), and sharpening the
    distribution draws ever more of them — shorter, upright strokes, lines that overrun the context — while
    trimming the unlikely tail keeps the shape of what remains."""
    b = float(bias)
    return MIN_P_CAP * b / (1.0 + b)


#: a row ends at a pen lift once its cross-attention puts more than this share on the end marker
#: (:func:`attention_says_end`; chosen on the selection draws, seeds 1-3, of ``handwriting evaluate
#: legibility``: lower shares cut the shipped network's last letter, which it may begin after a pen lift
#: with its attention already on the marker)
END_ATTENTION = 0.8


def attention_says_end(attention: list, end_pos: torch.Tensor, share: float) -> torch.Tensor:
    """Rows ``(B,)`` bool whose cross-attention — ``attention``: one ``(B, heads, characters)`` tensor per block,
    for the newest position — averaged over the heads and over every block but the first puts more than ``share``
    on the character at ``end_pos`` ``(B,)`` (the end marker).  The first block is left out: it sees only the
    newest token, not the place in the text, so its attention is spread over the whole text.

    This is the cursive transformer's version of Graves' stopping rule (§5.3: stop once the window has moved past
    the last character): a model that has learnt the end marker looks at it when the text is written, but may
    still go on drawing strokes after it."""
    layers = attention[1:] if len(attention) > 1 else attention
    a = torch.stack(layers).float().mean((0, 2))  # (B, characters)
    return a.gather(1, end_pos[:, None].long())[:, 0] > share


@contextlib.contextmanager
def decode_threads(device):
    """Run the body with :data:`DECODE_THREADS` torch threads when ``device`` is a CPU (restored after)."""
    old = torch.get_num_threads()
    if torch.device(device).type != "cpu" or not DECODE_THREADS or old == DECODE_THREADS:
        yield
        return
    torch.set_num_threads(DECODE_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def sampling(method):
    """For a decoder's sampling method: the body runs in inference mode and eval mode (the module's training
    flag is restored after) with :func:`decode_threads`."""

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(), decode_threads(next(self.parameters()).device):
                return method(self, *args, **kwargs)
        finally:
            self.train(was_training)

    return run


def _attn_inputs(q, k, v):
    if CPU_ATTENTION_FP32 and q.device.type == "cpu" and q.dtype == torch.bfloat16:
        return q.float(), k.float(), v.float(), torch.bfloat16
    return q, k, v, None


# ----------------------------------------------------------------------------------------------------------
# building blocks


class SelfAttention(nn.Module):
    """Causal multi-head self-attention through ``F.scaled_dot_product_attention`` (fused q/k/v projection)."""

    def __init__(self, d_model: int, n_head: int, bias: bool = True):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model={d_model} must be divisible by n_head={n_head}")
        self.n_head, self.head_dim = n_head, d_model // n_head
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.append(k.to(cache.kv.dtype), v.to(cache.kv.dtype))
            q = q.to(k.dtype)
        q, k, v, back = _attn_inputs(q, k, v)
        # no dropout on these attention probabilities: a dropout_p sends PyTorch's CPU attention from the fused
        # causal kernel to the one that materialises every T x T score; the block's residual dropout regularises
        if past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1)
        elif T == 1:
            y = F.scaled_dot_product_attention(q, k, v)
        else:  # several new tokens after a cached prefix: bottom-right aligned causal mask
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        if back is not None:
            y = y.to(back)
        return self.proj(y.transpose(1, 2).reshape(B, T, C).to(x.dtype))

class CrossAttention(nn.Module):
    """Multi-head attention from the sequence to a context (the text); padded context positions are masked."""

    def __init__(self, d_model: int, d_context: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.n_head, self.head_dim = n_head, d_model // n_head
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.kv = nn.Linear(d_context, 2 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout

    def context_kv(self, ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values ``(B, H, U, D)`` of the context ``(B, U, d_context)`` (computed once per text)."""
        B, U, _ = ctx.shape
        k, v = self.kv(ctx).view(B, U, 2, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return k, v

    def forward(self, x, kv, mask: torch.Tensor | None = None, weights: list | None = None) -> torch.Tensor:
        """``mask``: bool ``(B, 1, 1, U)``, True where a character may be attended to.  With ``weights`` (a
        list) the attention probabilities ``(B, H, T, U)`` are appended to it."""
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)
        k, v = kv
        if weights is not None or x.device.type == "cpu":
            # explicit scores: with ~50 characters they are small, and on CPUs this beats the fused kernel
            # (which is built for long key sequences); float32 for the same reason as CPU_ATTENTION_FP32
            H, D, U = self.n_head, self.head_dim, k.shape[2]
            add = torch.zeros((), device=x.device)
            if mask is not None:
                add = torch.zeros(mask.shape, device=x.device).masked_fill_(~mask, float("-inf"))
                add = add.expand(B, H, 1, U).reshape(B * H, 1, U)
            s = torch.baddbmm(add, q.float().reshape(B * H, T, D), k.float().reshape(B * H, U, D).transpose(1, 2),
                              alpha=1.0 / math.sqrt(D))
            a = s.softmax(-1)
            if weights is not None:
                weights.append(a.view(B, H, T, U))
            if self.training and self.dropout > 0:
                a = F.dropout(a, self.dropout)
            y = torch.bmm(a, v.float().reshape(B * H, U, D)).view(B, H, T, D)
        else:
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype), attn_mask=mask, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(B, T, C).to(x.dtype))

class Block(nn.Module):
    """Pre-LayerNorm transformer block: causal self-attention, optional cross-attention, GELU MLP."""

    def __init__(
        self,
        d_model: int,
        n_head: int,
        dropout: float = 0.0,
        bias: bool = True,
        mlp_ratio: int = 4,
        cross: bool = True,
        d_context: int | None = None,
    ):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model, bias=bias)
        self.attn = SelfAttention(d_model, n_head, bias)
        self.cross = None
        if cross:
            self.ln2 = nn.LayerNorm(d_model, bias=bias)
            self.cross = CrossAttention(d_model, d_context or d_model, n_head, dropout, bias)
        self.ln3 = nn.LayerNorm(d_model, bias=bias)
        self.fc = nn.Linear(d_model, mlp_ratio * d_model, bias=bias)
        self.fc_out = nn.Linear(mlp_ratio * d_model, d_model, bias=bias)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def context_kv(self, ctx: torch.Tensor):
        return None if self.cross is None else self.cross.context_kv(ctx)

    def forward(self, x, ctx_kv=None, ctx_mask=None, cache: KVCache | None = None, weights: list | None = None):
        x = x + self.drop(self.attn(self.ln1(x), cache))
        if self.cross is not None and ctx_kv is not None:
            x = x + self.drop(self.cross(self.ln2(x), ctx_kv, ctx_mask, weights))
        return x + self.drop(self.fc_out(F.gelu(self.fc(self.ln3(x)), approximate="tanh")))


def init_gpt_weights(module: nn.Module, n_layer: int) -> None:
    """GPT-2 style initialisation: N(0, 0.02) weights, zero biases, residual projections scaled by
    1/sqrt(2·n_layer)."""
    for name, p in module.named_parameters():
        if p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("proj.weight", "fc_out.weight")) else 0.02
            nn.init.normal_(p, 0.0, std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
    for m in module.modules():
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            with torch.no_grad():
                m.weight[m.padding_idx].zero_()


def context_mask(text_mask: torch.Tensor) -> torch.Tensor:
    """``(B, U)`` bool → ``(B, 1, 1, U)`` attention mask; a row with no valid character attends to all
    (its outputs are then meaningless but finite, never NaN)."""
    m = text_mask.bool()
    empty = ~m.any(dim=1, keepdim=True)
    return (m | empty)[:, None, None, :]


@dataclass
class TextContext:
    """The text, embedded and projected to every block's cross-attention keys/values (computed once)."""

    kv: list  # per block: (k, v) each (B, H, U, D), or None
    mask: torch.Tensor  # (B, 1, 1, U) bool

    @property
    def batch_size(self) -> int:
        return self.mask.shape[0]


# ----------------------------------------------------------------------------------------------------------
# the model


@dataclass
class CursiveTransformerConfig:
    vocab_size: int = 526  # PolarTokenizer().vocab_size
    block_size: int = 1050  # tokens of context (input positions)
    n_layer: int = 4
    d_model: int = 64
    n_head: int = 4
    text_len: int = 50  # characters
    alphabet_size: int = 71  # character ids incl. 0 = padding (bigbank: 70 characters + padding)
    tie_weights: bool = True
    dropout: float = 0.0
    bias: bool = True
    mlp_ratio: int = 4
    tokenizer: dict | None = None  # tokenizer.to_dict(), kept with the model so checkpoints can decode
    # an extra, learned "end of text" character after every text's last one: something cross-attention can
    # move on to when the word is written, so that END is easy to predict (off in models saved before it)
    end_marker: bool = False
    # the share of training rows whose text is hidden (zero context), so that the same network also learns to
    # write without it: what classifier-free guidance needs at sampling (``generate(guidance=...)``)
    text_dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CursiveTransformerConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"CursiveTransformerConfig: unknown fields {sorted(unknown)}")
        return cls(**d)


class TextEmbedding(nn.Module):
    """Character ids ``(B, U)`` → ``(B, U, d_model)``: character embeddings (0 = padding) plus character
    position embeddings (the paper's fix: without positions cross-attention cannot tell "ab" from "ba").

    With ``end_marker`` one more learned character (id ``alphabet_size``) follows every text's last
    character (:meth:`mark_end`): without it, the model must notice that no character is left to write."""

    def __init__(self, alphabet_size: int, text_len: int, d_model: int, end_marker: bool = False):
        super().__init__()
        self.text_len = text_len
        self.end_marker = bool(end_marker)
        self.end_id = alphabet_size
        self.char_emb = nn.Embedding(alphabet_size + self.end_marker, d_model, padding_idx=0)
        self.pos_emb = nn.Embedding(text_len + self.end_marker, d_model)

    def mark_end(self, text: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(text, mask)`` with the end marker written after each row's valid characters (which come first
        in a row) and the mask grown to cover it; unchanged (mask ``text != 0``) without a marker."""
        mask = (text != 0) if mask is None else mask.bool()
        if not self.end_marker:
            return text, mask
        rows, n = torch.arange(text.shape[0], device=text.device), mask.sum(1)
        text, mask = F.pad(text, (0, 1)), F.pad(mask, (0, 1))
        text[rows, n] = self.end_id
        mask[rows, n] = True
        return text, mask

    def forward(self, text: torch.Tensor, zero_context: bool | torch.Tensor = False) -> torch.Tensor:
        """``zero_context``: ``True`` hides the text of every row, a ``(B,)`` bool tensor that of some rows."""
        U = text.shape[1] - self.end_marker
        if U > self.text_len:
            raise ValueError(f"text of {U} characters exceeds text_len={self.text_len}; shorten it or split it "
                             "into lines")
        ctx = self.char_emb(text) + self.pos_emb.weight[: text.shape[1]]
        if isinstance(zero_context, torch.Tensor):
            return ctx.masked_fill(zero_context.reshape(-1, 1, 1), 0.0)
        return torch.zeros_like(ctx) if zero_context else ctx


class DecoderBase(nn.Module):
    """What the cursive transformer and the MDN transformer share: learned positions, a stack of
    :class:`Block` s (with cross-attention to the text when ``alphabet_size > 0``), the final LayerNorm,
    text contexts, KV caches and the fast decoding plan.  Subclasses embed their inputs and own the heads."""

    def _build_trunk(self, d_model, n_head, n_layer, block_size, dropout, bias, mlp_ratio, alphabet_size, text_len,
                     end_marker: bool = False):
        self.block_size = block_size
        self.n_head, self.d_model = n_head, d_model
        self.pos_emb = nn.Embedding(block_size, d_model)
        self.text = TextEmbedding(alphabet_size, text_len, d_model, end_marker) if alphabet_size > 0 else None
        self.drop = nn.Dropout(dropout)
        cross = self.text is not None
        self.blocks = nn.ModuleList(Block(d_model, n_head, dropout, bias, mlp_ratio, cross=cross) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(d_model, bias=bias)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def embed_text(self, text: torch.Tensor, zero_context: bool = False) -> torch.Tensor:
        """Context vectors ``(B, U, d_model)`` of character ids ``(B, U)``; ``zero_context=True`` is the
        paper's ablation (the model then sees no text at all)."""
        if self.text is None:
            raise ValueError(f"{type(self).__name__} was built without text conditioning (alphabet_size=0)")
        return self.text(self.text.mark_end(text)[0], zero_context)

    def prepare_context(self, text, text_mask=None, zero_context: bool = False) -> TextContext | None:
        """Embed the text and compute every block's cross-attention keys/values once (``None`` without text).
        With an end marker the context has one position more than ``text`` (the marker after each row's
        last character), and so has the cross-attention."""
        if self.text is None or text is None:
            return None
        text, text_mask = self.text.mark_end(text, text_mask)
        ctx = self.drop(self.text(text, zero_context))
        return TextContext([b.context_kv(ctx) for b in self.blocks], context_mask(text_mask))

    def with_end_marker_rows(self, state: dict) -> dict:
        """``state`` (a state dict of this architecture saved without the end marker) completed with this
        model's own, freshly initialised marker embedding and one more character position (a copy of the
        last): fine-tuning a model to use the marker.  Returned unchanged when it already fits."""
        if self.text is None or not self.text.end_marker:
            return state
        state = dict(state)
        chars, pos = state["text.char_emb.weight"], state["text.pos_emb.weight"]
        if len(chars) == self.text.char_emb.num_embeddings - 1:
            state["text.char_emb.weight"] = torch.cat([chars, self.text.char_emb.weight.detach()[-1:].to(chars.dtype)])
        if len(pos) == self.text.pos_emb.num_embeddings - 1:
            state["text.pos_emb.weight"] = torch.cat([pos, pos[-1:]])
        return state

    def _trunk(self, x, context: TextContext | None, caches=None, start: int = 0, weights=None):
        """Embedded inputs ``(B, T, C)`` (without positions) → final features ``(B, T, C)``."""
        T = x.shape[1]
        if start + T > self.block_size:
            raise ValueError(f"{start + T} positions exceed block_size={self.block_size}")
        x = self.drop(x + self.pos_emb.weight[start : start + T])
        for i, blk in enumerate(self.blocks):
            w = [] if weights is not None else None
            kv = None if context is None else context.kv[i]
            x = blk(x, kv, None if context is None else context.mask, None if caches is None else caches[i], w)
            if weights is not None and w:
                weights.append(w[0])
        return self.ln_f(x)

    def new_caches(self, batch: int, capacity: int | None = None, device=None, dtype=None) -> list[KVCache]:
        """One empty :class:`KVCache` per block (``capacity`` positions, default ``block_size``)."""
        p = next(self.parameters())
        return [
            KVCache(batch, self.n_head, capacity or self.block_size, self.d_model // self.n_head, device or p.device,
                    dtype or p.dtype)
            for _ in self.blocks
        ]

    def _decode_trunk(self, x: torch.Tensor, plan: "DecodePlan", caches: list[KVCache]) -> torch.Tensor:
        """One embedded position per row ``(B, C)`` → plain-normalised features (see :class:`DecodePlan`)."""
        pos = caches[0].length
        if pos >= self.block_size:
            raise ValueError(f"{pos + 1} positions exceed block_size={self.block_size}")
        return plan.run(x + self.pos_emb.weight[pos], caches)


class CursiveTransformer(DecoderBase):
    """GPT decoder over pen tokens with cross-attention to the text in every block."""

    def __init__(self, config: CursiveTransformerConfig):
        super().__init__()
        self.config = c = config
        if c.alphabet_size < 2:
            raise ValueError("CursiveTransformerConfig.alphabet_size must count the characters plus padding (>= 2)")
        self.tok_emb = nn.Embedding(c.vocab_size, c.d_model)
        self._build_trunk(c.d_model, c.n_head, c.n_layer, c.block_size, c.dropout, c.bias, c.mlp_ratio,
                          c.alphabet_size, c.text_len, c.end_marker)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        init_gpt_weights(self, c.n_layer)
        if c.tie_weights:
            self.head.weight = self.tok_emb.weight

    @property
    def tokenizer(self):
        """The tokenizer saved in the config (``None`` if the model was built without one)."""
        return None if self.config.tokenizer is None else tokenizer_from_dict(self.config.tokenizer)

    @property
    def positions_per_point(self) -> int:
        """Context positions one point takes (its tokens): how :func:`handwriting.generate.default_line_chars`
        counts what fits into ``block_size``."""
        tok = self.tokenizer
        return 2 if tok is None else tok.tokens_per_point

    def forward(self, tokens, text, text_mask=None, zero_context: bool = False) -> torch.Tensor:
        """Logits ``(B, T, vocab)`` for input tokens ``(B, T)`` and character ids ``(B, U)``."""
        return self.head(self._trunk(self.tok_emb(tokens), self.prepare_context(text, text_mask, zero_context)))

    def training_step(self, batch: "TokenBatch") -> dict:
        """Next-token cross-entropy on a :class:`TokenBatch` (the trainer's contract: ``loss`` is the mean
        NLL per predicted token, ``nll_sum`` nats summed over them, ``points`` their number)."""
        tokens, mask = batch.tokens, batch.token_mask
        inp, tgt, m = tokens[:, :-1], tokens[:, 1:], mask[:, 1:]
        hide = False
        if self.training and self.config.text_dropout > 0:
            hide = torch.rand(tokens.shape[0]) < self.config.text_dropout  # drawn on the CPU: resumes exactly
            hide = hide.to(tokens.device)
        h = self._trunk(self.tok_emb(inp), self.prepare_context(batch.text, batch.text_mask, hide))
        if not bool(m.all()):
            h, tgt = h[m], tgt[m]  # only positions with a target reach the (vocabulary-sized) head
        h, tgt = h.reshape(-1, h.shape[-1]), tgt.reshape(-1)
        if self.head.bias is None:  # the head fused with the loss: no (tokens × vocabulary) logits kept
            nll_sum = LinearCrossEntropy.apply(h, self.head.weight, tgt)
        else:
            nll_sum = F.cross_entropy(self.head(h).float(), tgt, reduction="sum")
        n = int(tgt.numel())
        return {"loss": nll_sum / max(n, 1), "nll_sum": float(nll_sum.detach()), "points": n,
                "sequences": int(tokens.shape[0])}

    # -- incremental decoding -----------------------------------------------------------------------------
    def step(self, tokens, context: TextContext, caches: list[KVCache], weights: list | None = None):
        """Feed ``tokens`` ``(B, t)`` after the ``caches[0].length`` tokens already cached; returns the logits
        ``(B, t, vocab)``.  With ``weights`` (a list) each layer's cross-attention ``(B, H, t, U)`` is
        appended."""
        return self.head(self._trunk(self.tok_emb(tokens), context, caches, caches[0].length, weights))

    @torch.no_grad()
    def decode_plan(self, context: TextContext) -> "DecodePlan":
        """Folded weights for :meth:`decode_step` (build once per :meth:`generate` call: it reads the current
        weights, so rebuild it after any training)."""
        plan = DecodePlan(self.blocks, context, self.ln_f)
        plan.head = fold_layer_norm(self.ln_f, self.head.weight, self.head.bias)
        return plan

    def decode_step(self, tokens: torch.Tensor, plan: "DecodePlan", caches: list[KVCache]) -> torch.Tensor:
        """Logits ``(B, vocab)`` for one new token per row ``(B,)`` after the cached ones: the fast path of
        :meth:`generate`; equal (to float rounding) to :meth:`step` and to the full forward pass."""
        wt, b = plan.head
        return torch.addmm(b, self._decode_trunk(F.embedding(tokens, self.tok_emb.weight), plan, caches), wt)

    @sampling
    def generate(
        self,
        text_ids: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        max_new_tokens: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        greedy: bool = False,
        generator: torch.Generator | None = None,
        prefix_tokens: torch.Tensor | None = None,
        return_attention: bool = False,
        zero_context: bool = False,
        min_new_tokens: int = 0,
        min_p: float = 0.0,
        end_attention: float | None = None,
        guidance: float = 0.0,
    ):
        """Sample token sequences for a batch of texts.

        Returns ``tokens`` ``(B, L)`` long: ``BOS``, the prefix, then the sampled tokens; a row that produced
        ``END`` is padded with ``PAD`` after it.  Sampling stops when every row has ended or after
        ``max_new_tokens`` (default and maximum: what fits into ``block_size``).  Self-attention keys/values
        are cached and the text's cross-attention keys/values computed once, so each new token costs one
        position's worth of work.  ``top_k`` keeps the k most likely tokens, ``temperature`` divides the
        logits, ``min_p`` drops the tokens less likely than ``min_p`` times the most likely one (after the
        temperature), ``greedy`` takes the most likely token.  ``prefix_tokens`` ``(P,)`` or ``(B, P)`` primes the
        model (``BOS`` is added if missing).  With ``return_attention=True`` returns ``(tokens, attention)``
        where attention is ``(B, layers, heads, L - 1, U)``: the cross-attention of every input position.
        ``zero_context=True`` is the paper's ablation (no text); ``min_new_tokens`` forbids ``END`` before that
        many new tokens.  ``end_attention`` (a model with an end marker; :data:`END_ATTENTION` when writing)
        ends a row with ``END`` after a point that lifts the pen once the row's cross-attention puts more than that
        share on the end marker (:func:`attention_says_end`).  ``guidance`` > 0 (a model trained with
        ``text_dropout``) is classifier-free guidance: every row is also run with its text hidden, and the logits
        become ``c + guidance · (c − u)`` (``c`` with the text, ``u`` without), which pushes the pen towards what
        the text asks for (Ho & Salimans 2022; Sanchez et al. 2023 for language models)."""
        device = next(self.parameters()).device
        text_ids = torch.as_tensor(text_ids, device=device)
        if text_ids.dim() == 1:
            text_ids = text_ids[None]
        B = text_ids.shape[0]
        if text_mask is not None:
            text_mask = torch.as_tensor(text_mask, device=device).reshape(text_ids.shape)
        if prefix_tokens is None:
            prefix = torch.full((B, 1), BOS, dtype=torch.long, device=device)
        else:
            prefix = torch.as_tensor(prefix_tokens, dtype=torch.long, device=device)
            if prefix.dim() == 1:
                prefix = prefix[None].expand(B, -1)
            if prefix.shape[0] != B:
                raise ValueError(f"prefix_tokens has {prefix.shape[0]} rows for {B} texts")
            if prefix.shape[1] == 0 or bool((prefix[:, 0] != BOS).any()):
                prefix = torch.cat([torch.full((B, 1), BOS, dtype=torch.long, device=device), prefix], 1)
        P = prefix.shape[1]
        room = self.config.block_size + 1 - P  # the last sampled token is never fed back
        if room <= 0:
            raise ValueError(f"the prefix ({P} tokens with BOS) leaves no room in block_size={self.config.block_size}")
        n_new = room if max_new_tokens is None else max(0, min(int(max_new_tokens), room))
        out = torch.full((B, P + n_new), PAD, dtype=torch.long, device=device)
        out[:, :P] = prefix
        if not greedy and not temperature > 0:
            raise ValueError(f"temperature must be > 0 (use greedy=True for argmax), got {temperature}")
        if not 0.0 <= min_p < 1.0:
            raise ValueError(f"min_p must be in [0, 1), got {min_p}")
        if guidance < 0 or (guidance > 0 and not self.config.text_dropout > 0):
            raise ValueError(f"guidance={guidance}: give 0, or a positive weight for a network trained with "
                             "text_dropout > 0 (`handwriting train transformer --text-dropout P`); this one never "
                             "learnt to write without its text")
        guided = guidance > 0 and self.text is not None and not zero_context
        if guided:  # rows B.. are the same texts hidden: one batch of 2B, every step
            if text_mask is None:
                text_mask = text_ids != 0
            hide = torch.arange(2 * B, device=device) >= B
            context = self.prepare_context(text_ids.repeat(2, 1), text_mask.repeat(2, 1), hide)
        else:
            context = self.prepare_context(text_ids, text_mask, zero_context)
        rows = 2 * B if guided else B
        caches = self.new_caches(rows, min(P + n_new, self.config.block_size), device)
        plan = None
        if not return_attention:
            plan = self.decode_plan(context)
            wt, b = plan.head
            if not greedy and temperature != 1.0:  # fold the temperature into the head: one operation less
                wt, b = wt / temperature, b / temperature
            b = b.clone()
            if not guided:  # (guided: masked after the two halves are combined, as -inf - -inf is nan)
                b[..., [PAD, BOS]] = float("-inf")  # never sampled: folded into the head's bias
            plan.head = (wt, b)
        weights = [] if return_attention else None
        watch = bool(end_attention) and context is not None and self.text.end_marker and self.tokenizer is not None
        if watch:
            if plan is not None:
                plan.keep_attention = True
            end_pos = context.mask[:B, 0, 0].sum(1) - 1  # the marker follows the valid characters
            pen_up = self.tokenizer.r_offset + self.tokenizer.n_r  # this token and above: the pen lifts after it
            only_end = torch.full((1, self.config.vocab_size), float("-inf"), device=device)
            only_end[0, END] = 0.0
        noise = GumbelNoise(B, self.config.vocab_size, n_new, generator, device) if not greedy else None
        cols = out.unbind(1)
        check_every = 8 if device.type == "cpu" else 32  # how often to look whether every row has ended
        ended, checked = torch.zeros(B, dtype=torch.bool, device=device), 0
        inp, length = (prefix.repeat(2, 1) if guided else prefix), P + n_new
        for i in range(n_new):
            if weights is None and inp.shape[1] == 1:
                logits = self.decode_step(inp[:, 0], plan, caches)  # the temperature is folded into the plan
            else:
                w = [] if weights is not None else None
                logits = self.step(inp, context, caches, w)[:, -1].float()
                if not greedy and temperature != 1.0:
                    logits = logits / temperature
                if weights is not None:
                    weights.append(torch.stack(w, 1)[:B])  # (B, layers, H, t, U)
                if not guided:  # (guided: masked once the two halves are combined, as -inf - -inf is nan)
                    logits[:, [PAD, BOS]] = float("-inf")
            if guided:
                c, u = logits[:B], logits[B:]
                logits = torch.lerp(u, c, 1.0 + guidance)  # u + (1 + g)(c − u) = c + g(c − u)
                logits[:, [PAD, BOS]] = float("-inf")
            if i < min_new_tokens:
                logits[:, END] = float("-inf")
            elif watch and i > 0:  # from the first token the model drew itself (i = 0 reads the prefix)
                attention = plan.cross_attention if weights is None else [a[:, :, -1] for a in w]
                attention = [a[:B] for a in attention]  # the rows that see their text
                ends = attention_says_end(attention, end_pos, end_attention) & (inp[:B, 0] >= pen_up)
                logits = torch.where(ends[:, None], only_end, logits)  # no host sync: fine on a GPU
            nxt = self.pick(logits, top_k, noise, i, min_p)
            cols[P + i].copy_(nxt)
            inp = (nxt.repeat(2) if guided else nxt)[:, None]
            if (i + 1) % check_every == 0 or i + 1 == n_new:  # only the tokens since the last look
                ended |= (out[:, P + checked : P + i + 1] == END).any(1)
                checked = i + 1
                if bool(ended.all()):
                    length = P + i + 1
                    break
        # every row stops at its first END: PAD after it, and the batch ends where its last row ended
        new = out[:, P:length]
        is_end = new == END
        if bool(is_end.any()):
            first = torch.where(is_end.any(1), is_end.int().argmax(1), new.shape[1])
            after = torch.arange(new.shape[1], device=device)[None] > first[:, None]
            new.masked_fill_(after, PAD)
            if bool(is_end.any(1).all()):
                length = P + int(first.max()) + 1
        out = out[:, :length]
        if not return_attention:
            return out
        n_in = length - 1  # every position that was fed in, its cross-attention
        attn = (torch.cat(weights, dim=3)[:, :, :, :n_in] if weights else
                torch.zeros(B, self.config.n_layer, self.config.n_head, 0, text_ids.shape[1]))
        return out, attn

    def write_rows(self, text_ids, text_mask, bias, generator, prime: Priming | None = None, internals: bool = False,
                   max_steps: int | None = None) -> WrittenRows:
        """The writing interface (:class:`~handwriting.models.base.TextWriter`) over :meth:`generate`: the bias
        becomes min-p truncation at temperature 1 (:func:`bias_min_p`; one :meth:`generate` call per distinct
        bias), a row ends at a pen lift once its attention is on the end marker (:data:`END_ATTENTION`), the
        prime's tokens are the prefix (and its points are cut from the rows), ``max_steps`` caps the new tokens.
        The internals are each row's ``tokens`` and cross-``attention``."""
        tok = self.tokenizer
        if tok is None:
            raise DataError("this cursive transformer has no tokenizer (config.tokenizer); load it from a checkpoint")
        device, B = next(self.parameters()).device, text_ids.shape[0]
        prefix, n_prime = None, 0
        if prime is not None:
            ptoks = tok.encode(prime.offsets, bos=True, end=False)
            prefix = torch.as_tensor(ptoks, dtype=torch.long)[None].expand(B, -1)
            n_prime = len(tok.decode(ptoks))
            pids = prime.text_ids.to(text_ids.device)[None].expand(B, -1)
            text_ids, text_mask = concat_texts(pids, pids != 0, text_ids, text_mask)
        by_bias: dict[float, list[int]] = {}  # one min-p per call: rows grouped by bias (usually one group)
        for r, b in enumerate(bias):
            by_bias.setdefault(float(b), []).append(r)
        results: dict[int, tuple] = {}
        for b, idx in by_bias.items():
            out = self.generate(
                text_ids[idx], text_mask[idx], max_new_tokens=max_steps, min_p=bias_min_p(b),
                end_attention=END_ATTENTION,
                generator=generator, prefix_tokens=None if prefix is None else prefix[idx].to(device),
                return_attention=internals,
            )  # fmt: skip
            tokens, attn = out if internals else (out, None)
            for j, r in enumerate(idx):
                results[r] = (tokens[j], None if attn is None else attn[j])
        seqs, stopped, extra = [], [], [] if internals else None
        for r in range(B):
            tokens, attn = results[r]
            off = tok.decode(tokens)[n_prime:]
            if len(off) == 0:
                off = np.array([[0.0, 0.0, 1.0]], np.float32)
            off = off.copy()
            off[-1, 2] = 1.0
            seqs.append(off)
            stopped.append(bool((tokens == END).any()))
            if internals:
                extra.append({"tokens": tokens.cpu().numpy(), "attention": attn.float().cpu().numpy()})
        return WrittenRows(seqs, stopped, extra)

    @staticmethod
    def pick(logits, top_k, noise, i, min_p=0.0):
        """The next token of every row: argmax without ``noise`` (greedy), else a draw from softmax(logits)
        by the Gumbel-max trick with pre-drawn noise (two operations per token instead of a CDF search);
        ``top_k`` and ``min_p`` (p < min_p · p_max, i.e. logit < max logit + log min_p) remove tokens first."""
        if top_k is not None and 0 < top_k < logits.shape[-1]:
            kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if min_p > 0:
            floor = logits.amax(-1, keepdim=True) + math.log(min_p)
            logits = logits.masked_fill(logits < floor, float("-inf"))
        if noise is None:
            return logits.argmax(-1)
        return (logits + noise[i]).argmax(-1)


class GumbelNoise:
    """Gumbel(0, 1) noise for ``steps`` × ``(B, V)`` draws, made in blocks of 64 steps as they are needed."""

    BLOCK = 64

    def __init__(self, B, V, steps, generator, device):
        self.shape, self.steps, self.generator, self.device = (B, V), steps, generator, device
        self.start, self.block = 0, ()

    def __getitem__(self, i: int) -> torch.Tensor:
        if not self.start <= i < self.start + len(self.block):
            n = min(self.BLOCK, self.steps - i)
            u = torch.rand((n, *self.shape), generator=self.generator, device=self.device)
            self.block = u.clamp_(1e-20, 1.0 - 1e-7).log_().neg_().log_().neg_().unbind(0)
            self.start = i
        return self.block[i - self.start]
