"""The cursive transformer's fast path, beside the readable model in :mod:`handwriting.models.transformer`.

* :class:`KVCache`: pre-allocated self-attention keys/values for incremental decoding (used by
  :meth:`~handwriting.models.transformer.DecoderBase.new_caches`, by ``step`` and by the plan below);
* :class:`DecodePlan` and :func:`fold_layer_norm`: a stack of blocks regrouped for one new position per row
  (LayerNorms folded into the following linear layers, cross-attention to a fixed text folded into two
  batched products), what ``generate`` runs each new token through;
* :class:`LinearCrossEntropy`: the head and its cross-entropy fused, without the ``(N, vocab)`` logits.

Each computes what the plain modules compute (to float rounding; ``tests/test_transformer.py`` compares them).
Torch only: this module imports nothing from the package, and :mod:`handwriting.models.transformer`
re-exports all four names.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["KVCache", "DecodePlan", "LinearCrossEntropy", "fold_layer_norm"]


class KVCache:
    """Pre-allocated keys/values of one self-attention layer for incremental decoding.

    ``kv`` is ``(2, B, H, capacity, D)`` (keys, then values); ``length`` tokens are filled.  Writes happen in
    place and reads are views, so a decoding step allocates nothing here."""

    def __init__(self, batch: int, n_head: int, capacity: int, head_dim: int, device=None, dtype=torch.float32):
        self.kv = torch.zeros(2, batch, n_head, capacity, head_dim, device=device, dtype=dtype)
        self.flat = self.kv.view(2, batch * n_head, capacity, head_dim)  # the same memory, heads flattened
        self.zero = torch.zeros(1, 1, 1, device=device, dtype=dtype)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.kv.shape[3]

    @property
    def k(self) -> torch.Tensor:
        return self.kv[0, :, :, : self.length]

    @property
    def v(self) -> torch.Tensor:
        return self.kv[1, :, :, : self.length]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``(B, H, t, D)`` keys and values after the cached ones; return views of all so far."""
        t0, t1 = self.length, self.length + k.shape[2]
        if t1 > self.capacity:
            raise RuntimeError(f"KVCache: {t1} tokens exceed the capacity {self.capacity}")
        self.kv[0, :, :, t0:t1] = k
        self.kv[1, :, :, t0:t1] = v
        self.length = t1
        return self.kv[0, :, :, :t1], self.kv[1, :, :, :t1]


def fold_layer_norm(ln: nn.LayerNorm, weight: torch.Tensor, bias: torch.Tensor | None):
    """``Linear(LayerNorm(x))`` = ``plain_layer_norm(x) @ wt + b``: the LayerNorm's scale and shift folded into
    the following linear layer.  Returns ``(wt (in, out), b (1, out))`` ready for ``torch.addmm``."""
    g = ln.weight if ln.weight is not None else torch.ones_like(weight[0])
    wt = (weight * g).t().contiguous()
    b = torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device) if bias is None else bias.clone()
    if ln.bias is not None:
        b = b + weight @ ln.bias
    return wt, b[None].contiguous()


class DecodePlan:
    """A stack of :class:`Block` rewritten for one new position per row (batch-1 sampling is all per-call
    overhead, so the work is regrouped into as few calls as possible, with the same result):

    * every LayerNorm's scale/shift is folded into the linear layer that follows it;
    * cross-attention to a fixed text is reduced to two batched matrix products per block: the query
      projection is folded into the text's keys (``(C, heads × characters)`` per text, padding as −inf in
      the bias) and the output projection into its values (``(heads × characters, C)``);
    * residual additions go into ``addmm``/``baddbmm``'s input argument.

    Built from the current weights by :meth:`CursiveTransformer.decode_plan` (and by the MDN transformer);
    :meth:`run` returns the final features, normalised without the final LayerNorm's affine (fold that into
    the head with :func:`fold_layer_norm`).  With ``keep_attention`` set, every :meth:`run` keeps each
    block's cross-attention ``(B, heads, characters)`` in ``cross_attention``."""

    keep_attention = False

    def __init__(self, blocks, context, final_ln: nn.LayerNorm):
        # context: a transformer.TextContext (its kv and mask) or None
        self.eps = final_ln.eps
        self.layers = []
        with torch.no_grad():
            for i, blk in enumerate(blocks):
                a = blk.attn
                L = {
                    "H": a.n_head, "D": a.head_dim, "eps": (blk.ln1.eps, blk.ln3.eps), "scale": a.head_dim ** -0.5,
                    "qkv": fold_layer_norm(blk.ln1, a.qkv.weight, a.qkv.bias),
                    "proj": (a.proj.weight.t().contiguous(), a.proj.bias),
                    "fc": fold_layer_norm(blk.ln3, blk.fc.weight, blk.fc.bias),
                    "fc_out": (blk.fc_out.weight.t().contiguous(), blk.fc_out.bias),
                    "cross": None,
                }
                kv = None if context is None else context.kv[i]
                if blk.cross is not None and kv is not None:
                    L["cross"] = self._fold_cross(blk, kv, context.mask)
                    L["eps2"] = blk.ln2.eps
                self.layers.append(L)

    @staticmethod
    def _fold_cross(blk, kv, mask):
        c = blk.cross
        k, v = (t.float() for t in kv)  # (B, H, U, D)
        B, H, U, D = k.shape
        C = H * D
        wq = c.q.weight.float()  # (C_out, C_in): head h uses rows h*D:(h+1)*D
        g = blk.ln2.weight.float() if blk.ln2.weight is not None else torch.ones(C, device=k.device)
        beta = blk.ln2.bias.float() if blk.ln2.bias is not None else torch.zeros(C, device=k.device)
        bq = c.q.bias.float() if c.q.bias is not None else torch.zeros(C, device=k.device)
        scale = 1.0 / math.sqrt(D)
        # score[h, u] = (n*g + beta) . (Wq_h^T k_hu) * scale + bq_h . k_hu * scale
        kq = torch.einsum("bhud,hdc->bhuc", k, wq.view(H, D, C)) * scale  # (B, H, U, C)
        q0 = (wq @ beta + bq).view(H, D)
        sbias = torch.einsum("bhud,hd->bhu", k, q0) * scale
        sbias = sbias.masked_fill(~mask[:, 0], float("-inf")) if mask is not None else sbias  # mask (B,1,1,U)
        kq = (kq * g).reshape(B, H * U, C).transpose(1, 2).contiguous()  # (B, C, H*U)
        wp = c.proj.weight.float()  # (C, C_in)
        vp = torch.einsum("bhud,chd->bhuc", v, wp.view(C, H, D)).reshape(B, H * U, C).contiguous()
        bp = c.proj.bias if c.proj.bias is not None else torch.zeros(C, device=k.device)
        return kq, sbias.reshape(B, 1, H * U).contiguous(), vp, bp, (H, U)

    def run(self, x: torch.Tensor, caches: list[KVCache]) -> torch.Tensor:
        """``x`` ``(B, C)``: the embedded new token (a fresh tensor: it is updated in place); appends to
        ``caches``; returns plain-normalised features."""
        B, C = x.shape
        ln = torch.layer_norm  # the C binding: a little less overhead per call than F.layer_norm
        if self.keep_attention:
            self.cross_attention = []
        for L, cache in zip(self.layers, caches):
            H, D = L["H"], L["D"]
            # self-attention
            wt, b = L["qkv"]
            qkv = torch.addmm(b, ln(x, (C,), None, None, L["eps"][0]), wt).view(B, 3, H, D)
            t = cache.length
            cache.kv.select(3, t).copy_(qkv[:, 1:].transpose(0, 1))
            cache.length = t + 1
            s = torch.baddbmm(cache.zero, qkv[:, 0].reshape(B * H, 1, D), cache.flat[0, :, : t + 1].transpose(1, 2),
                              beta=0.0, alpha=L["scale"])
            y = torch.bmm(s.softmax(-1), cache.flat[1, :, : t + 1]).view(B, C)
            wt, b = L["proj"]
            x.addmm_(y, wt)
            if b is not None:
                x.add_(b)
            # cross-attention
            if L["cross"] is not None:
                kq, sbias, vp, bp, (Hc, U) = L["cross"]
                s = torch.baddbmm(sbias, ln(x, (C,), None, None, L["eps2"]).view(B, 1, C), kq)
                a = s.view(B, Hc, U).softmax(-1).view(B, 1, Hc * U)
                if self.keep_attention:
                    self.cross_attention.append(a.view(B, Hc, U))
                x.view(B, 1, C).baddbmm_(a, vp)
                x.add_(bp)
            # MLP
            wt, b = L["fc"]
            h = F.gelu(torch.addmm(b, ln(x, (C,), None, None, L["eps"][1]), wt), approximate="tanh")
            wt, b = L["fc_out"]
            x.addmm_(h, wt)
            if b is not None:
                x.add_(b)
        return torch.layer_norm(x, (C,), None, None, self.eps)


class LinearCrossEntropy(torch.autograd.Function):
    """``F.cross_entropy(h @ weightᵀ, target, reduction="sum")`` without the ``(N, vocab)`` logits in memory.

    The rows are processed in chunks that stay in cache; the gradient (softmax − one-hot) of each chunk is
    formed while its logits are at hand and pushed straight through the head, so the backward pass only
    scales two stored tensors.  Same value and gradients as the plain expression (tested), in float32; about
    half the time of logits + ``F.cross_entropy`` for the 33,600 × 526 head of the benchmark on a CPU."""

    @staticmethod
    def forward(ctx, h, weight, target, chunk: int = 4096):
        h32, w32 = h.float(), weight.float()
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dh = torch.empty_like(h32) if need_h else None
        dw = torch.zeros_like(w32) if need_w else None
        total = h32.new_zeros(())
        with torch.autocast(h.device.type, enabled=False):  # the log-likelihood in float32, also under autocast
            LinearCrossEntropy._chunks(h32, w32, target, chunk, dh, dw, total)
        ctx.save_for_backward(dh if need_h else None, dw if need_w else None)
        ctx.dtypes = (h.dtype, weight.dtype)
        return total

    @staticmethod
    def _chunks(h32, w32, target, chunk, dh, dw, total):
        need_h, need_w = dh is not None, dw is not None
        for s in range(0, h32.shape[0], chunk):
            hc, tc = h32[s : s + chunk], target[s : s + chunk, None]
            logits = hc @ w32.t()
            lse = torch.logsumexp(logits, 1, keepdim=True)
            total += (lse - logits.gather(1, tc)).sum()
            if need_h or need_w:
                p = logits.sub_(lse).exp_()  # softmax
                p.scatter_add_(1, tc, p.new_full(tc.shape, -1.0))  # − one-hot
                if need_h:
                    torch.mm(p, w32, out=dh[s : s + chunk])
                if need_w:
                    dw.addmm_(p.t(), hc)

    @staticmethod
    def backward(ctx, grad):
        dh, dw = ctx.saved_tensors
        return (None if dh is None else (dh * grad).to(ctx.dtypes[0]),
                None if dw is None else (dw * grad).to(ctx.dtypes[1]), None, None)
