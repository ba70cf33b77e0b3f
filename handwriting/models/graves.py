"""Graves' handwriting networks (Graves 2013, arXiv:1308.0850): the prediction network (§4) and the
synthesis network with its soft attention window (§5), built for speed on a CPU.

Model (both networks)
---------------------
* ``L`` stacked LSTM layers of ``H`` cells (default 3 × 400).  Skip connections: the input goes to every
  layer and every layer goes to the output, a mixture density head (:class:`~handwriting.models.mdn.MDNHead`,
  ``M`` = 20 bivariate Gaussians + an end-of-stroke Bernoulli).
* Synthesis only: after layer 1 a window of ``K`` = 10 Gaussians over the characters ``c_1 … c_U``::

      (α̂, β̂, κ̂) = W h¹_t + b,   α = exp(α̂),   β = exp(β̂),   κ_t = κ_{t-1} + kappa_scale · exp(κ̂)
      φ(t, u) = Σ_k α_k exp(-β_k (κ_k - u)²)       (u = 1 … U; padded characters get φ = 0)
      w_t = Σ_u φ(t, u) c_u                         (c_u one-hot)

  ``w_t`` feeds layers 2 … L and the output at step t, and layer 1 at step t + 1 (``w_0 = 0``, ``κ_0 = 0``).
  Graves' eq. 51 has no scale on the κ increment; with ``kappa_scale = 1/25`` (≈ 1 / points per character
  in IAM lines) a fresh network moves its window at about the pace of real handwriting, which makes the
  alignment easier to learn (several implementations use a scale for the same reason).

Parameter layout: layer 1 is an ``nn.LSTM`` over ``[x (3), w (A)]`` (synthesis) or ``x`` (prediction); layer
``n ≥ 2`` an ``nn.LSTM`` over ``[x, w, h^{n-1}]`` (synthesis) or ``[x, h^{n-1}]`` (prediction); the head a
``Linear`` over ``[h¹ … h^L]``.  Every sequence starts from the input ``(0, 0, 1)`` (a lifted pen), so the
network predicts every point of the batch: inputs ``[start, x_1 … x_{T-1}]``, targets ``x_1 … x_T``.

Speed
-----
Training (``forward``) never steps more than it must in Python:

* all input projections (x, the window vector, the layer below) are single big matmuls over the whole
  sequence; the window enters the gates as ``φ · E`` with ``E = (W_w c_u)_u`` (a gather of weight columns),
  i.e. ``U`` characters instead of an ``A``-wide one-hot;
* the recurrences are custom autograd functions (:class:`_LSTMRecurrence`, :class:`_WindowRecurrence`)
  that step only ``h @ W_hh`` plus the gate (and window) arithmetic, save what backward needs, and run
  back-propagation through time by hand: the step loop of the backward pass only carries ``dh``, ``dc``,
  ``dκ``, ``dφ``; all weight gradients are one matmul each over the whole sequence afterwards.  Autograd
  therefore sees a handful of nodes, not thousands;
* with ``precision="bf16"`` (default ``"auto"``: bf16 where the hardware has bf16 matmuls — CUDA, or CPUs
  with AVX-512-BF16/AMX — else fp32) every matmul runs in bf16 while the cell state, the window and the
  log-likelihood stay in fp32.

Sampling (``sample``) steps all layers (layer n at step t needs the window of step t, which needs the
sampled point of step t - 1), batched, under ``torch.inference_mode``, with one fused ``torch.lstm_cell``
per layer and all random numbers drawn up front.

Everything is plain PyTorch; the same code runs on CUDA (where layers 2…L use the fused cuDNN LSTM).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .mdn import LOG_SIGMA_MAX, LOG_SIGMA_MIN, RHO_MAX, MDNHead, MixtureParams, mdn_nll, split_raw

__all__ = [
    "GravesConfig",
    "GravesState",
    "GravesOutput",
    "Prime",
    "SampleResult",
    "PredictionNetwork",
    "SynthesisNetwork",
    "resolve_precision",
    "bf16_matmul_supported",
    "concat_texts",
    "window_stop",
]


# ----------------------------------------------------------------------------------------------------------
# configuration and small containers


@dataclass
class GravesConfig:
    """Hyper-parameters of both Graves networks (the prediction network ignores the text/window fields).

    ``alphabet_size`` is the width of the one-hot character vectors: character ids run ``1 …
    alphabet_size - 1`` and id 0 is padding (it never receives window weight).  Defaults follow Graves §5.
    """

    alphabet_size: int = 80
    hidden: int = 400
    layers: int = 3
    mixtures: int = 20
    window_mixtures: int = 10
    kappa_scale: float = 1.0 / 25.0
    dropout: float = 0.0  # on the outputs of each layer that feed later layers / the head (training only)
    log_sigma_min: float = LOG_SIGMA_MIN
    log_sigma_max: float = LOG_SIGMA_MAX
    rho_max: float = RHO_MAX
    precision: str = "auto"  # "auto" | "fp32" | "bf16": the matmul precision of training/evaluation passes

    def __post_init__(self) -> None:
        if self.layers < 1:
            raise ValueError("GravesConfig.layers must be at least 1")
        if self.hidden < 1 or self.mixtures < 1 or self.window_mixtures < 1:
            raise ValueError("GravesConfig: hidden, mixtures and window_mixtures must be positive")
        if self.alphabet_size < 2:
            raise ValueError("GravesConfig.alphabet_size must be at least 2 (id 0 is padding)")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"GravesConfig.precision must be 'auto', 'fp32' or 'bf16', not {self.precision!r}")


@dataclass
class GravesState:
    """Recurrent state carried between calls: ``h``, ``c`` of shape ``(L, B, H)``; synthesis only: the
    window position ``kappa`` ``(B, K)`` and the last window weights ``phi`` ``(B, U)`` (over the same text)."""

    h: torch.Tensor
    c: torch.Tensor
    kappa: torch.Tensor | None = None
    phi: torch.Tensor | None = None

    def detach(self) -> "GravesState":
        d = lambda t: None if t is None else t.detach()  # noqa: E731
        return GravesState(d(self.h), d(self.c), d(self.kappa), d(self.phi))


@dataclass
class GravesOutput:
    """What ``forward`` returns: mixture parameters ``(B, T)``, the final state, and (when asked) the window
    internals ``phi`` ``(B, T, U)``, ``kappa``/``alpha``/``beta`` ``(B, T, K)``, ``w`` ``(B, T, A)``."""

    params: MixtureParams
    state: GravesState
    internals: dict[str, torch.Tensor] | None = None


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


# ----------------------------------------------------------------------------------------------------------
# precision


def bf16_matmul_supported(device: torch.device | str) -> bool:
    """Whether bf16 matmuls are native (fast) on ``device``."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
        except AttributeError:  # older torch
            return False
    return False


def resolve_precision(precision: str, device: torch.device | str) -> torch.dtype:
    """``"fp32"`` / ``"bf16"`` / ``"auto"`` → the matmul dtype (auto: bf16 where it is native)."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if bf16_matmul_supported(device) else torch.float32
    raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', not {precision!r}")


def _mm(a: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``a @ w`` computed in ``w``'s dtype, returned in ``a``'s dtype."""
    if w.dtype == a.dtype:
        return torch.mm(a, w)
    return torch.mm(a.to(w.dtype), w).to(a.dtype)


# ----------------------------------------------------------------------------------------------------------
# hand-written recurrences (forward + back-propagation through time)


def _lstm_views(acts, H):
    """Per-step views (lists over t) of the four gate activations stored in ``acts`` (T, B, 4H)."""
    return [acts[..., k * H : (k + 1) * H].unbind(0) for k in range(4)]


def _lstm_step(g, c, t, H, a_l, gates, cs_l, tcs_l, hs_l):
    """Gate pre-activations ``g`` (B, 4H), nn.LSTM order (i, f, g, o) → new (h, c), written into the buffers."""
    i_l, f_l, g_l, o_l = gates
    torch.sigmoid(g, out=a_l[t])
    torch.tanh(g[:, 2 * H : 3 * H], out=g_l[t])
    c = torch.addcmul(f_l[t] * c, i_l[t], g_l[t], out=cs_l[t])
    h = torch.mul(o_l[t], torch.tanh(c, out=tcs_l[t]), out=hs_l[t])
    return h, c


def _lstm_backward_factors(acts, tcs, c0, cs, H):
    """Bulk (whole-sequence) factors of the LSTM backward pass: D = d(activation)/d(pre-activation) per gate,
    Q = o (1 - tanh² c) and the previous cell states."""
    D = acts * (1 - acts)
    gg = acts[..., 2 * H : 3 * H]
    D[..., 2 * H : 3 * H] = 1 - gg * gg
    Q = acts[..., 3 * H :] * (1 - tcs * tcs)
    c_prev = torch.cat([c0.unsqueeze(0), cs[:-1]], 0)
    return D.unbind(0), Q.unbind(0), c_prev.unbind(0)


class _LSTMBackStep:
    """One step back through the LSTM arithmetic with preallocated scratch (9 tensor ops per step)."""

    def __init__(self, acts, tcs, c0, cs, H, B):
        self.H = H
        self.D, self.Q, self.c_prev = _lstm_backward_factors(acts, tcs, c0, cs, H)
        self.i, self.f, self.g, _ = _lstm_views(acts, H)
        self.tc = tcs.unbind(0)
        self.L = acts.new_empty(B, 4 * H)
        self.Li, self.Lf, self.Lg, self.Lo = (self.L[:, k * H : (k + 1) * H] for k in range(4))

    def __call__(self, t, dh, dc, out):
        dc = torch.addcmul(dc, dh, self.Q[t])
        torch.mul(dc, self.g[t], out=self.Li)
        torch.mul(dc, self.c_prev[t], out=self.Lf)
        torch.mul(dc, self.i[t], out=self.Lg)
        torch.mul(dh, self.tc[t], out=self.Lo)
        torch.mul(self.L, self.D[t], out=out)
        return dc * self.f[t]


def _step_mm(x, w, fused: bool):
    return torch.mm(x, w) if fused else torch.mm(x.to(w.dtype), w).to(x.dtype)


class _LSTMRecurrence(torch.autograd.Function):
    """``h_t, c_t = LSTM(gx_t + h_{t-1} W_hhᵀ, c_{t-1})`` over a whole sequence.

    gx (T, B, 4H) holds the input projections plus biases; w_hh (4H, H).  Returns hs (T, B, H) and the
    final cell state (B, H).  ``mm_dtype`` is the dtype of the recurrent matmuls.
    """

    @staticmethod
    def forward(ctx, gx, w_hh, h0, c0, mm_dtype, *clip):
        T, B, G = gx.shape
        H = G // 4
        fused = mm_dtype == gx.dtype
        w_t = w_hh.t().to(mm_dtype).contiguous()  # (H, 4H)
        acts, cs, tcs, hs = gx.new_empty(T, B, G), gx.new_empty(T, B, H), gx.new_empty(T, B, H), gx.new_empty(T, B, H)
        gx_l, a_l, cs_l, tcs_l, hs_l = gx.unbind(0), acts.unbind(0), cs.unbind(0), tcs.unbind(0), hs.unbind(0)
        gates = _lstm_views(acts, H)
        h, c = h0, c0
        for t in range(T):
            g = torch.addmm(gx_l[t], h, w_t) if fused else gx_l[t] + _step_mm(h, w_t, False)
            h, c = _lstm_step(g, c, t, H, a_l, gates, cs_l, tcs_l, hs_l)
        ctx.save_for_backward(w_hh, h0, c0, acts, cs, tcs, hs)
        ctx.mm_dtype = mm_dtype
        ctx.n_clip, ctx.clip = len(clip), (clip[0] if clip else None)
        return hs, c.clone()

    @staticmethod
    def backward(ctx, dhs, dc_last):
        w_hh, h0, c0, acts, cs, tcs, hs = ctx.saved_tensors
        T, B, G = acts.shape
        H = G // 4
        dt = ctx.mm_dtype
        fused = dt == acts.dtype
        w = w_hh.to(dt).contiguous()  # (4H, H)
        step = _LSTMBackStep(acts, tcs, c0, cs, H, B)
        dG = acts.new_empty(T, B, G)
        dG_l = dG.unbind(0)
        dhs_l = dhs.unbind(0) if dhs is not None else None
        dh_rec = torch.zeros_like(h0)
        dc = torch.zeros_like(c0) if dc_last is None else dc_last.to(acts.dtype)
        for t in range(T - 1, -1, -1):
            dh = dh_rec if dhs_l is None else dhs_l[t] + dh_rec
            dc = step(t, dh, dc, dG_l[t])
            if ctx.clip is not None:  # Graves' clipping of the LSTM derivatives (gate pre-activations)
                dG_l[t].clamp_(-ctx.clip, ctx.clip)
            dh_rec = _step_mm(dG_l[t], w, fused)
        dw = None
        if ctx.needs_input_grad[1]:
            h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]], 0).reshape(T * B, H)
            dw = _mm(dG.reshape(T * B, G).t(), h_prev.to(dt)).to(w_hh.dtype)
        return (dG, dw, dh_rec, dc, None) + (None,) * ctx.n_clip


class _WindowRecurrence(torch.autograd.Function):
    """Layer 1 of the synthesis network together with its soft window, over a whole sequence.

    Inputs: gx (T, B, 4H) input projection of x plus biases; w_hh (4H, H); E (B, U, 4H) the window-to-gate
    vectors of each character (``W_w c_u``); w_win (3K, H), b_win (3K,); mask (B, U) float (1 = real char);
    initial h0, c0 (B, H), kappa0 (B, K), phi0 (B, U).  Outputs: hs (T, B, H), phis (T, B, U), the final
    cell state (B, H), and (not differentiable) abk (T, B, 3K) = α, β, κ of every step.
    """

    @staticmethod
    def forward(ctx, gx, w_hh, E, w_win, b_win, mask, h0, c0, kappa0, phi0, scale, mm_dtype, *clip):
        T, B, G = gx.shape
        H = G // 4
        U = E.shape[1]
        K = w_win.shape[0] // 3
        fused = mm_dtype == gx.dtype
        u = torch.arange(1, U + 1, device=gx.device, dtype=gx.dtype)
        w_t = w_hh.t().to(mm_dtype).contiguous()
        E_c = E.to(mm_dtype)
        w_win_t = w_win.t().contiguous()
        acts, cs, tcs, hs = gx.new_empty(T, B, G), gx.new_empty(T, B, H), gx.new_empty(T, B, H), gx.new_empty(T, B, H)
        phis = gx.new_empty(T, B, U)
        ep = gx.new_empty(T, B, 3 * K)  # exp of the window outputs: α, β, exp(κ̂)
        kap = gx.new_empty(T, B, K)
        dd = gx.new_empty(T, B, K, U)  # κ_k - u
        ex = gx.new_empty(T, B, K, U)  # exp(-β_k (κ_k - u)²)
        gx_l, a_l, cs_l, tcs_l, hs_l = gx.unbind(0), acts.unbind(0), cs.unbind(0), tcs.unbind(0), hs.unbind(0)
        gates = _lstm_views(acts, H)
        ep_l, kap_l, dd_l, ex_l = ep.unbind(0), kap.unbind(0), dd.unbind(0), ex.unbind(0)
        ek_l = ep[..., 2 * K :].unbind(0)
        alpha3_l = ep[..., :K].unsqueeze(2).unbind(0)  # (B, 1, K)
        beta3_l = ep[..., K : 2 * K].unsqueeze(3).unbind(0)  # (B, K, 1)
        kap3_l = kap.unsqueeze(3).unbind(0)  # (B, K, 1)
        phi3_l = phis.unsqueeze(2).unbind(0)  # (B, 1, U)
        mask3 = mask.unsqueeze(1)
        h, c, kappa, phi3 = h0, c0, kappa0, phi0.unsqueeze(1)
        for t in range(T):
            if fused:
                g = torch.baddbmm(torch.addmm(gx_l[t], h, w_t).unsqueeze(1), phi3, E_c).squeeze(1)
            else:
                g = gx_l[t] + _step_mm(h, w_t, False) + torch.bmm(phi3.to(mm_dtype), E_c).squeeze(1).to(gx.dtype)
            h, c = _lstm_step(g, c, t, H, a_l, gates, cs_l, tcs_l, hs_l)
            torch.exp(torch.addmm(b_win, h, w_win_t), out=ep_l[t])
            kappa = torch.add(kappa, ek_l[t], alpha=scale, out=kap_l[t])
            d = torch.sub(kap3_l[t], u, out=dd_l[t])
            e = torch.exp(torch.mul(d * d, beta3_l[t]).neg_(), out=ex_l[t])
            phi3 = torch.mul(torch.bmm(alpha3_l[t], e), mask3, out=phi3_l[t])
        ctx.save_for_backward(w_hh, E, w_win, mask, h0, c0, phi0, acts, cs, tcs, hs, phis, ep, dd, ex)
        ctx.mm_dtype = mm_dtype
        ctx.scale = scale
        ctx.n_clip, ctx.clip = len(clip), (clip[0] if clip else None)
        abk = torch.cat([ep[..., : 2 * K], kap], -1)
        ctx.mark_non_differentiable(abk)
        return hs, phis, c.clone(), abk

    @staticmethod
    def backward(ctx, dhs, dphis, dc_last, _dabk):
        w_hh, E, w_win, mask, h0, c0, phi0, acts, cs, tcs, hs, phis, ep, dd, ex = ctx.saved_tensors
        T, B, G = acts.shape
        H = G // 4
        K = w_win.shape[0] // 3
        dt = ctx.mm_dtype
        fused = dt == acts.dtype
        w = w_hh.to(dt).contiguous()  # (4H, H)
        E_T = E.transpose(1, 2).to(dt).contiguous()  # (B, 4H, U)
        step = _LSTMBackStep(acts, tcs, c0, cs, H, B)
        alpha_l = ep[..., :K].unbind(0)
        alpha3_l = ep[..., :K].unsqueeze(3).unbind(0)  # (B, K, 1)
        negbeta_l = (-ep[..., K : 2 * K]).unbind(0)
        m2beta_l = (-2 * ep[..., K : 2 * K]).unbind(0)
        inc_l = (ctx.scale * ep[..., 2 * K :]).unbind(0)
        dd_l, ex_l = dd.unbind(0), ex.unbind(0)
        dG = acts.new_empty(T, B, G)
        dP = acts.new_empty(T, B, 3 * K)
        dG_l, dP_l = dG.unbind(0), dP.unbind(0)
        dPa_l, dPb_l, dPk_l = (dP[..., k * K : (k + 1) * K].unbind(0) for k in range(3))
        dhs_l = dhs.unbind(0) if dhs is not None else None
        dphis_l = dphis.unbind(0) if dphis is not None else None
        dh_rec = torch.zeros_like(h0)
        dphi_rec = torch.zeros_like(phi0)
        dkappa = torch.zeros(B, K, dtype=acts.dtype, device=acts.device)
        dc = torch.zeros_like(c0) if dc_last is None else dc_last.to(acts.dtype)
        for t in range(T - 1, -1, -1):
            dphi = dphi_rec if dphis_l is None else dphis_l[t] + dphi_rec
            A = ex_l[t] * (dphi * mask).unsqueeze(1)  # (B, K, U)
            torch.mul(A.sum(2), alpha_l[t], out=dPa_l[t])
            Ad = A * alpha3_l[t] * dd_l[t]
            torch.mul((Ad * dd_l[t]).sum(2), negbeta_l[t], out=dPb_l[t])
            dkappa = torch.addcmul(dkappa, Ad.sum(2), m2beta_l[t])
            torch.mul(dkappa, inc_l[t], out=dPk_l[t])
            dh = torch.addmm(dh_rec, dP_l[t], w_win)
            if dhs_l is not None:
                dh = dh + dhs_l[t]
            dc = step(t, dh, dc, dG_l[t])
            if ctx.clip is not None:
                dG_l[t].clamp_(-ctx.clip, ctx.clip)
            dh_rec = _step_mm(dG_l[t], w, fused)
            if fused:
                dphi_rec = torch.bmm(dG_l[t].unsqueeze(1), E_T).squeeze(1)
            else:
                dphi_rec = torch.bmm(dG_l[t].unsqueeze(1).to(dt), E_T).squeeze(1).to(acts.dtype)
        need = ctx.needs_input_grad
        dw_hh = dE = dw_win = db_win = None
        if need[1]:
            h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]], 0).reshape(T * B, H)
            dw_hh = _mm(dG.reshape(T * B, G).t(), h_prev.to(dt)).to(w_hh.dtype)
        if need[2]:
            phi_prev = torch.cat([phi0.unsqueeze(0), phis[:-1]], 0)  # (T, B, U)
            dE = torch.bmm(phi_prev.permute(1, 2, 0).to(dt), dG.transpose(0, 1).to(dt)).to(E.dtype)
        if need[3]:
            dw_win = dP.reshape(T * B, 3 * K).t() @ hs.reshape(T * B, H)
        if need[4]:
            db_win = dP.sum((0, 1))
        return (dG, dw_hh, dE, dw_win, db_win, None, dh_rec, dc, dkappa, dphi_rec, None, None) + (None,) * ctx.n_clip


# ----------------------------------------------------------------------------------------------------------
# helpers shared by both networks


def _start_token(B: int, device, dtype=torch.float32) -> torch.Tensor:
    x = torch.zeros(B, 1, 3, device=device, dtype=dtype)
    x[..., 2] = 1.0
    return x


def _shift_inputs(x: torch.Tensor) -> torch.Tensor:
    """Targets ``x`` (B, T, 3) → network inputs ``[start, x_1 … x_{T-1}]``."""
    return torch.cat([_start_token(x.shape[0], x.device, x.dtype), x[:, :-1]], 1)


def _check_x(x: torch.Tensor, name: str = "x") -> None:
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must be (B, T, 3) normalised offsets (dx, dy, eos), got shape {tuple(x.shape)}")


def _text_mask(text: torch.Tensor, text_mask: torch.Tensor | None) -> torch.Tensor:
    if text.dim() != 2:
        raise ValueError(f"text must be (B, U) character ids, got shape {tuple(text.shape)}")
    return (text != 0) if text_mask is None else text_mask.bool()


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


def window_stop(phi: torch.Tensor, phi_end: torch.Tensor) -> torch.Tensor:
    """Graves' stopping rule: the window has passed the last character when ``φ(t, U+1) > φ(t, u)`` for
    every real character ``u`` (``phi`` (B, U) already zero on padding; ``phi_end`` (B,) = φ(t, U_b + 1))."""
    return phi_end > phi.amax(-1)


class _Sampler:
    """Pre-drawn random numbers + one-step sampling from raw head outputs (B, 1 + 6M).

    Draws the same thing as :func:`~handwriting.models.mdn.sample_mixture` (Gumbel-max for the component,
    a correlated Gaussian, a Bernoulli pen), with the bias applied to π and σ, in few tensor operations.
    """

    def __init__(self, B, M, steps, bias, generator, device, lo, hi, rho_max):
        n = max(int(steps), 1)
        u = torch.rand((n, B, M + 1), generator=generator, device=device).clamp_(1e-12, 1 - 1e-7)
        self.gumbel = (-torch.log(-torch.log(u[..., :M]))).unbind(0)
        # e = 1 iff u < sigmoid(eos_logit) iff eos_logit > logit(u)
        self.eos_threshold = torch.logit(u[..., M:]).unbind(0)  # (B, 1) each
        z = torch.randn((n, B, 2), generator=generator, device=device)
        self.z1, self.z2 = z[..., :1].unbind(0), z[..., 1:].unbind(0)
        b = torch.as_tensor(bias, dtype=torch.float32, device=device)
        self.bias = b.expand(B).clone() if b.dim() == 0 else b.reshape(B).clone()
        self.one_plus_b = (1 + self.bias).unsqueeze(1)
        self.lo_minus_b = lo - self.bias.unsqueeze(1)
        # columns of (μx, μy, σ̂x, σ̂y, ρ̂) of component 0 in the raw layout [e | π | μx | μy | σ̂x | σ̂y | ρ̂]
        self.offsets = torch.arange(1 + M, 1 + 6 * M, M, device=device).unsqueeze(0)
        self.lohi = torch.tensor([lo, hi], device=device)
        self.M, self.rho_max = M, rho_max

    def __call__(self, raw: torch.Tensor, t: int) -> torch.Tensor:
        comp = torch.addcmul(self.gumbel[t], raw[:, 1 : 1 + self.M], self.one_plus_b).argmax(1, keepdim=True)
        sel = raw.gather(1, comp + self.offsets)  # (B, 5)
        sp = F.softplus(sel[:, 2:4].unsqueeze(2) - self.lohi)  # soft clamp of log σ, then the bias
        sigma = (sp[..., 0] - sp[..., 1]).add_(self.lo_minus_b).exp_()
        rho = torch.tanh(sel[:, 4:5]).mul_(self.rho_max)
        z1 = self.z1[t]
        n2 = torch.addcmul(rho * z1, torch.sqrt((1 - rho) * (1 + rho)), self.z2[t])
        xy = torch.addcmul(sel[:, :2], sigma, torch.cat([z1, n2], 1))
        return torch.cat([xy, (raw[:, :1] > self.eos_threshold[t]).to(xy.dtype)], 1)


def _layer_weights(lstm: nn.LSTM):
    return lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0


def _resolve_generator(generator, seed, device):
    if generator is None and seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed))
    return generator


# ----------------------------------------------------------------------------------------------------------
# the networks


class _GravesBase(nn.Module):
    config: GravesConfig
    _clip_output: float | None = None
    _clip_lstm: float | None = None

    def set_gradient_clipping(self, output: float | None = None, lstm: float | None = None) -> None:
        """Graves' derivative clipping (§4), applied inside the backward pass: the derivatives w.r.t. the
        output layer's pre-activations are clamped to ±``output`` and those w.r.t. every LSTM gate
        pre-activation to ±``lstm`` (``None``: off).  The trainer's ``clip="graves"`` calls this with the
        limits in the units of the loss it back-propagates."""
        self._clip_output = None if output is None else float(output)
        self._clip_lstm = None if lstm is None else float(lstm)

    def _clip_args(self) -> tuple:
        return () if self._clip_lstm is None or not torch.is_grad_enabled() else (self._clip_lstm,)

    @staticmethod
    def _clamp_grad(t: torch.Tensor, limit: float | None) -> torch.Tensor:
        if limit is not None and t.requires_grad:
            t.register_hook(lambda g: g.clamp(-limit, limit))
        return t

    def _mm_dtype(self, device) -> torch.dtype:
        dt = resolve_precision(self.config.precision, device)
        return self._dtype if dt == torch.float32 else dt

    @property
    def _dtype(self) -> torch.dtype:
        return self.head.linear.weight.dtype

    def _drop(self, h: torch.Tensor) -> torch.Tensor:
        p = self.config.dropout
        return F.dropout(h, p, self.training) if p > 0 else h

    def _initial_hc(self, B: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.zeros(self.config.layers, B, self.config.hidden, device=device, dtype=self._dtype)
        return z, z.clone()

    def _nll_step(self, batch, params: MixtureParams) -> dict:
        nll = mdn_nll(params, batch.x, batch.x_mask)
        points = int(batch.x_mask.sum())
        nll_sum = nll.sum()
        return {
            "loss": nll_sum / max(points, 1),
            "nll_sum": float(nll_sum.detach()),
            "points": points,
            "sequences": int(batch.x.shape[0]),
        }

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class PredictionNetwork(_GravesBase):
    """Graves §4: unconditional handwriting prediction, ``L`` stacked LSTMs with skip connections + MDN head."""

    def __init__(self, config: GravesConfig | None = None, **overrides: Any):
        super().__init__()
        if config is None:
            config = GravesConfig(**overrides)
        elif overrides:
            raise TypeError("pass either a config or keyword overrides, not both")
        self.config = config
        H, L = config.hidden, config.layers
        self.lstms = nn.ModuleList([nn.LSTM(3 if n == 0 else 3 + H, H) for n in range(L)])
        self.head = MDNHead(L * H, config.mixtures, config.log_sigma_min, config.log_sigma_max, config.rho_max)

    def forward(self, x: torch.Tensor, state: GravesState | None = None) -> GravesOutput:
        """Network inputs ``x`` (B, T, 3) (already shifted: ``x_t`` predicts ``x_{t+1}``) → parameters (B, T)."""
        _check_x(x)
        B, T, _ = x.shape
        cfg = self.config
        H = cfg.hidden
        device = x.device
        dt = self._mm_dtype(device)
        h0, c0 = (state.h, state.c) if state is not None else self._initial_hc(B, device)
        xt = x.transpose(0, 1).to(self._dtype)  # (T, B, 3)
        outs, hT, cT = [], [], []
        below = None
        for n, lstm in enumerate(self.lstms):
            w_ih, w_hh, b_ih, b_hh = _layer_weights(lstm)
            inp = xt if below is None else torch.cat([xt, self._drop(below)], -1)
            if device.type == "cuda":
                with torch.autocast("cuda", dtype=dt, enabled=dt != torch.float32):
                    hs, (hn, cn) = lstm(inp, (h0[n : n + 1].contiguous(), c0[n : n + 1].contiguous()))
                hs, hn, cn = hs.to(xt.dtype), hn[0].to(xt.dtype), cn[0].to(xt.dtype)
                hs = self._clamp_grad(hs, self._clip_lstm)  # fused kernel: its outputs' derivatives
            else:
                gx = self._proj(inp, w_ih, b_ih + b_hh, dt).view(T, B, 4 * H)
                hs, cn = _LSTMRecurrence.apply(gx, w_hh, h0[n], c0[n], dt, *self._clip_args())
                hn = hs[-1]
            outs.append(hs)
            hT.append(hn)
            cT.append(cn)
            below = hs
        feats = torch.cat([self._drop(o) for o in outs], -1)
        params = self._head(feats, dt)
        return GravesOutput(params.map(lambda t: t.transpose(0, 1)), GravesState(torch.stack(hT), torch.stack(cT)))

    @staticmethod
    def _proj(inp: torch.Tensor, w: torch.Tensor, b: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
        flat = inp.reshape(-1, inp.shape[-1])
        if dt == flat.dtype:
            return torch.addmm(b, flat, w.t())
        return torch.addmm(b.to(dt), flat.to(dt), w.t().to(dt)).to(flat.dtype)

    def _head(self, feats: torch.Tensor, dt: torch.dtype) -> MixtureParams:
        lin = self.head.linear
        raw = self._proj(feats, lin.weight, lin.bias, dt).view(*feats.shape[:-1], -1)
        return self.head.split(self._clamp_grad(raw, self._clip_output))

    def training_step(self, batch) -> dict:
        out = self.forward(_shift_inputs(batch.x))
        return self._nll_step(batch, out.params)

    @torch.inference_mode()
    def sample(
        self,
        n: int = 1,
        steps: int = 700,
        bias: float | torch.Tensor = 0.0,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        internals: bool = False,
    ) -> SampleResult:
        """``n`` unconditional sequences of ``steps`` points each (Graves §4, figure 11)."""
        cfg = self.config
        device = self.device
        generator = _resolve_generator(generator, seed, device)
        H, L, M = cfg.hidden, cfg.layers, cfg.mixtures
        weights = [tuple(w.float() for w in _layer_weights(l)) for l in self.lstms]
        w_head, b_head = self.head.linear.weight.float().t().contiguous(), self.head.linear.bias.float()
        sampler = _Sampler(n, M, steps, bias, generator, device, cfg.log_sigma_min, cfg.log_sigma_max, cfg.rho_max)
        h = [torch.zeros(n, H, device=device) for _ in range(L)]
        c = [torch.zeros(n, H, device=device) for _ in range(L)]
        x = _start_token(n, device)[:, 0]
        out = torch.zeros(n, steps, 3, device=device)
        raws = torch.zeros(steps, n, 1 + 6 * M, device=device) if internals else None
        for t in range(steps):
            for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
                inp = x if k == 0 else torch.cat([x, h[k - 1]], 1)
                h[k], c[k] = torch.lstm_cell(inp, (h[k], c[k]), w_ih, w_hh, b_ih, b_hh)
            raw = torch.addmm(b_head, torch.cat(h, 1), w_head)
            x = sampler(raw, t)
            out[:, t] = x
            if raws is not None:
                raws[t] = raw
        res = SampleResult(
            strokes=out,
            lengths=torch.full((n,), steps, dtype=torch.long, device=device),
            stopped=torch.zeros(n, dtype=torch.bool, device=device),
            bias=sampler.bias,
        )
        if raws is not None:
            res.params = self.head.split(raws.transpose(0, 1).contiguous())
        return res


class SynthesisNetwork(_GravesBase):
    """Graves §5: handwriting synthesis — the prediction network plus a soft window over the text."""

    def __init__(self, config: GravesConfig | None = None, **overrides: Any):
        super().__init__()
        if config is None:
            config = GravesConfig(**overrides)
        elif overrides:
            raise TypeError("pass either a config or keyword overrides, not both")
        self.config = config
        H, L, A, K = config.hidden, config.layers, config.alphabet_size, config.window_mixtures
        self.lstms = nn.ModuleList([nn.LSTM(3 + A if n == 0 else 3 + A + H, H) for n in range(L)])
        self.window = nn.Linear(H, 3 * K)
        self.head = MDNHead(L * H, config.mixtures, config.log_sigma_min, config.log_sigma_max, config.rho_max)
        with torch.no_grad():  # start with broad, weak windows (α ≈ 1, β ≈ exp(-1)): a gentle beginning
            self.window.bias.zero_()
            self.window.bias[K : 2 * K].fill_(-1.0)

    # -- training / evaluation ------------------------------------------------------------------------------

    def _char_gates(self, lstm: nn.LSTM, text: torch.Tensor) -> torch.Tensor:
        """E (B, U, 4H): the gate input of the window vector when it is the one-hot of each character."""
        A = self.config.alphabet_size
        return F.embedding(text, lstm.weight_ih_l0[:, 3 : 3 + A].t())

    def forward(
        self,
        x: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        state: GravesState | None = None,
        internals: bool = False,
    ) -> GravesOutput:
        """Network inputs ``x`` (B, T, 3) (already shifted) and text ids (B, U) → parameters (B, T).

        ``state`` continues from an earlier call over the same text (its ``phi`` must have U columns).
        """
        _check_x(x)
        mask_b = _text_mask(text, text_mask)
        if text.shape[0] != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} sequences but text has {text.shape[0]} rows")
        if int(text.max()) >= self.config.alphabet_size or int(text.min()) < 0:
            raise ValueError(f"character ids must lie in [0, alphabet_size={self.config.alphabet_size}); got {int(text.max())}")
        cfg = self.config
        B, T, _ = x.shape
        U = text.shape[1]
        H, K, A = cfg.hidden, cfg.window_mixtures, cfg.alphabet_size
        device = x.device
        dt = self._mm_dtype(device)
        fdt = self._dtype
        mask = mask_b.to(fdt)
        if state is None:
            h0, c0 = self._initial_hc(B, device)
            kappa0 = torch.zeros(B, K, device=device, dtype=fdt)
            phi0 = torch.zeros(B, U, device=device, dtype=fdt)
        else:
            h0, c0, kappa0, phi0 = state.h, state.c, state.kappa, state.phi
            if phi0 is None or phi0.shape != (B, U):
                raise ValueError("state.phi must be (B, U) over the same text")
        xt = x.transpose(0, 1).to(fdt).contiguous()  # (T, B, 3)
        # layer 1 + window
        w_ih, w_hh, b_ih, b_hh = _layer_weights(self.lstms[0])
        gx = PredictionNetwork._proj(xt, w_ih[:, :3], b_ih + b_hh, dt).view(T, B, 4 * H)
        E1 = self._char_gates(self.lstms[0], text)
        hs, phis, c1, abk = _WindowRecurrence.apply(
            gx, w_hh, E1, self.window.weight, self.window.bias, mask, h0[0], c0[0], kappa0, phi0,
            float(cfg.kappa_scale), dt, *self._clip_args(),
        )
        outs, hT, cT = [hs], [hs[-1]], [c1]
        phi_bt = phis.transpose(0, 1)  # (B, T, U)
        w_seq = None
        if device.type == "cuda" or internals:
            onehot = F.one_hot(text, A).to(fdt) * mask.unsqueeze(-1)
            w_seq = torch.bmm(phi_bt, onehot).transpose(0, 1)  # (T, B, A)
        below = hs
        for n in range(1, cfg.layers):
            lstm = self.lstms[n]
            w_ih, w_hh, b_ih, b_hh = _layer_weights(lstm)
            if device.type == "cuda":
                inp = torch.cat([xt, w_seq, self._drop(below)], -1)
                with torch.autocast("cuda", dtype=dt, enabled=dt != torch.float32):
                    hs, (hn, cn) = lstm(inp, (h0[n : n + 1].contiguous(), c0[n : n + 1].contiguous()))
                hs, hn, cn = hs.to(fdt), hn[0].to(fdt), cn[0].to(fdt)
                hs = self._clamp_grad(hs, self._clip_lstm)
            else:
                inp = torch.cat([xt, self._drop(below)], -1)
                w_xh = torch.cat([w_ih[:, :3], w_ih[:, 3 + A :]], 1)
                gx = PredictionNetwork._proj(inp, w_xh, b_ih + b_hh, dt).view(T, B, 4 * H)
                En = self._char_gates(lstm, text)
                if dt == fdt:
                    gw = torch.bmm(phi_bt, En)
                else:
                    gw = torch.bmm(phi_bt.to(dt), En.to(dt)).to(fdt)
                gx = gx + gw.transpose(0, 1)
                hs, cn = _LSTMRecurrence.apply(gx, w_hh, h0[n], c0[n], dt, *self._clip_args())
                hn = hs[-1]
            outs.append(hs)
            hT.append(hn)
            cT.append(cn)
            below = hs
        feats = torch.cat([self._drop(o) for o in outs], -1)
        lin = self.head.linear
        raw = PredictionNetwork._proj(feats, lin.weight, lin.bias, dt).view(T, B, -1)
        raw = self._clamp_grad(raw, self._clip_output)
        params = self.head.split(raw).map(lambda t: t.transpose(0, 1))
        new_state = GravesState(torch.stack(hT), torch.stack(cT), abk[-1, :, 2 * K :], phis[-1])
        extra = None
        if internals:
            abk_bt = abk.transpose(0, 1)
            extra = {
                "phi": phi_bt,
                "alpha": abk_bt[..., :K],
                "beta": abk_bt[..., K : 2 * K],
                "kappa": abk_bt[..., 2 * K :],
                "w": w_seq.transpose(0, 1),
            }
        return GravesOutput(params, new_state, extra)

    def training_step(self, batch) -> dict:
        out = self.forward(_shift_inputs(batch.x), batch.text, batch.text_mask)
        return self._nll_step(batch, out.params)

    # -- sampling ---------------------------------------------------------------------------------------------

    def _step_pack(self, text: torch.Tensor, mask_b: torch.Tensor):
        cfg = self.config
        A = cfg.alphabet_size
        B, U = text.shape
        device = text.device
        lengths = mask_b.sum(1)
        # one extra column so φ(t, U_b + 1) exists for the longest rows too
        pos = torch.arange(1, U + 2, device=device, dtype=torch.float32)
        mask_ext = torch.zeros(B, 1, U + 1, device=device)
        mask_ext[:, 0, :U] = mask_b.float()
        onehot = torch.zeros(B, U + 1, A, device=device)
        onehot[:, :U] = F.one_hot(text, A).float() * mask_b.unsqueeze(-1).float()
        return {
            "weights": [tuple(w.float() for w in _layer_weights(l)) for l in self.lstms],
            "w_win": self.window.weight.float().t().contiguous(),
            "b_win": self.window.bias.float(),
            "w_head": self.head.linear.weight.float().t().contiguous(),
            "b_head": self.head.linear.bias.float(),
            "pos": pos,
            "mask": mask_ext,
            "onehot": onehot,
            "end_index": lengths.view(B, 1, 1).long(),  # column of φ(t, U_b + 1)
            "K": cfg.window_mixtures,
            "scale": float(cfg.kappa_scale),
        }

    @staticmethod
    def _step(pk, x, h, c, kappa, w):
        """One step of every layer; updates ``h``/``c`` lists in place; returns raw head output, κ, w, and
        the window pieces (masked φ (B, 1, U+1), raw φ, α, β)."""
        weights = pk["weights"]
        w_ih, w_hh, b_ih, b_hh = weights[0]
        h[0], c[0] = torch.lstm_cell(torch.cat([x, w], 1), (h[0], c[0]), w_ih, w_hh, b_ih, b_hh)
        alpha, beta, ek = torch.addmm(pk["b_win"], h[0], pk["w_win"]).exp_().view(-1, 3, pk["K"]).unbind(1)
        kappa = torch.add(kappa, ek, alpha=pk["scale"])
        d = kappa.unsqueeze(2) - pk["pos"]  # (B, K, U+1)
        phi_raw = torch.bmm(alpha.unsqueeze(1), d.square_().mul_(beta.unsqueeze(2)).neg_().exp_())  # (B, 1, U+1)
        phi = phi_raw * pk["mask"]
        w = torch.bmm(phi, pk["onehot"]).squeeze(1)
        for k in range(1, len(weights)):
            w_ih, w_hh, b_ih, b_hh = weights[k]
            h[k], c[k] = torch.lstm_cell(torch.cat([x, w, h[k - 1]], 1), (h[k], c[k]), w_ih, w_hh, b_ih, b_hh)
        raw = torch.addmm(pk["b_head"], torch.cat(h, 1), pk["w_head"])
        return raw, kappa, w, phi, phi_raw, alpha, beta

    @torch.inference_mode()
    def prime_state(self, prime: Prime, text: torch.Tensor, text_mask: torch.Tensor):
        """Run the network over the prime strokes (teacher forcing) with the window over ``text`` (the
        concatenated text); rows stop at their own prime length.  Returns the step state and each row's
        last prime point (the first input of the continuation)."""
        _check_x(prime.x, "prime.x")
        B, Tp, _ = prime.x.shape
        device = prime.x.device
        x_mask = prime.x_mask.bool() if prime.x_mask is not None else torch.ones(B, Tp, dtype=torch.bool, device=device)
        plen = x_mask.sum(1)
        if bool((plen == 0).any()):
            raise ValueError("every prime sequence needs at least one point")
        pk = self._step_pack(text, text_mask)
        cfg = self.config
        H, L, K, A = cfg.hidden, cfg.layers, cfg.window_mixtures, cfg.alphabet_size
        h = [torch.zeros(B, H, device=device) for _ in range(L)]
        c = [torch.zeros(B, H, device=device) for _ in range(L)]
        kappa = torch.zeros(B, K, device=device)
        w = torch.zeros(B, A, device=device)
        inputs = _shift_inputs(prime.x.float())
        for t in range(int(plen.max())):
            active = (t < plen).view(B, 1)
            h_old, c_old, kappa_old, w_old = list(h), list(c), kappa, w
            _, kappa, w, *_ = self._step(pk, inputs[:, t], h, c, kappa, w)
            if not bool(active.all()):
                h = [torch.where(active, a, b) for a, b in zip(h, h_old)]
                c = [torch.where(active, a, b) for a, b in zip(c, c_old)]
                kappa = torch.where(active, kappa, kappa_old)
                w = torch.where(active, w, w_old)
        last = prime.x.float()[torch.arange(B, device=device), plen - 1]
        return (h, c, kappa, w), last

    @torch.inference_mode()
    def sample(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        bias: float | torch.Tensor = 0.0,
        max_steps: int | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        prime: Prime | None = None,
        internals: bool = False,
        points_per_char: int = 40,
        stop: bool = True,
    ) -> SampleResult:
        """Write ``text`` (B, U) (ids, 0 = padding) — all rows at once.

        Each row stops when its window has passed its last character (Graves' rule, :func:`window_stop`)
        or after ``points_per_char`` × its number of characters (and never after ``max_steps``).  ``bias``
        is a float or one value per row (Graves §5.4).  ``prime`` continues a real sequence in its style
        (§5.5): the window runs over the prime's text followed by ``text``.  ``internals=True`` also returns
        the per-step mixture parameters and window (φ, κ, α, β, w) for plotting.  ``stop=False`` ignores
        the window rule (every row runs to its length guard: fixed-length sampling, benchmarks).
        """
        cfg = self.config
        device = self.device
        text = text.to(device)
        mask_b = _text_mask(text, text_mask).to(device)
        B = text.shape[0]
        new_len = mask_b.sum(1)
        if bool((new_len == 0).any()):
            raise ValueError("every row needs at least one character to write")
        if int(text.max()) >= cfg.alphabet_size:
            raise ValueError(f"character ids must lie below alphabet_size={cfg.alphabet_size}")
        generator = _resolve_generator(generator, seed, device)
        guard = points_per_char * new_len
        steps = int(guard.max())
        if max_steps is not None:
            steps = min(steps, int(max_steps))
            guard = guard.clamp(max=steps)
        H, L, K, A, M = cfg.hidden, cfg.layers, cfg.window_mixtures, cfg.alphabet_size, cfg.mixtures
        if prime is not None:
            ptext = prime.text.to(device)
            pmask = _text_mask(ptext, prime.text_mask).to(device)
            full, full_mask = concat_texts(ptext, pmask, text, mask_b)
            prime = Prime(
                prime.x.to(device), ptext, None if prime.x_mask is None else prime.x_mask.to(device), pmask
            )
            (h, c, kappa, w), x = self.prime_state(prime, full, full_mask)
        else:
            full, full_mask = text, mask_b
            h = [torch.zeros(B, H, device=device) for _ in range(L)]
            c = [torch.zeros(B, H, device=device) for _ in range(L)]
            kappa = torch.zeros(B, K, device=device)
            w = torch.zeros(B, A, device=device)
            x = _start_token(B, device)[:, 0]
        pk = self._step_pack(full, full_mask)
        U1 = full.shape[1] + 1
        sampler = _Sampler(B, M, steps, bias, generator, device, cfg.log_sigma_min, cfg.log_sigma_max, cfg.rho_max)
        out = torch.zeros(B, steps, 3, device=device)
        lengths = torch.zeros(B, dtype=torch.long, device=device)
        stopped = torch.zeros(B, dtype=torch.bool, device=device)
        done = torch.zeros(B, dtype=torch.bool, device=device)
        rec = None
        if internals:
            rec = {
                "raw": torch.zeros(steps, B, 1 + 6 * M, device=device),
                "phi": torch.zeros(steps, B, U1 - 1, device=device),
                "abk": torch.zeros(steps, B, 3 * K, device=device),
            }
        end_index = pk["end_index"]
        # rows that reach their length guard at step t; the window rule is checked as we go
        guard_hit = (torch.arange(1, steps + 1, device=device).unsqueeze(1) >= guard.unsqueeze(0)).unbind(0)
        out_l = out.unbind(1)
        check_every = 4 if device.type == "cpu" else 32
        t_end = steps
        for t in range(steps):
            raw, kappa, w, phi, phi_raw, alpha, beta = self._step(pk, x, h, c, kappa, w)
            x = sampler(raw, t)
            out_l[t].copy_(x)
            if rec is not None:
                rec["raw"][t] = raw
                rec["phi"][t] = phi[:, 0, :-1]
                rec["abk"][t] = torch.cat([alpha, beta, kappa], 1)
            if stop:
                fired = window_stop(phi.view(B, -1), phi_raw.gather(2, end_index).view(B))
                new = fired & ~done
                lengths.masked_fill_(new, t + 1)
                stopped |= new
                done |= new
            new = guard_hit[t] & ~done
            lengths.masked_fill_(new, t + 1)
            done |= new
            if (t + 1) % check_every == 0 and bool(done.all()):
                t_end = t + 1
                break
        lengths = torch.where(done, lengths, torch.full_like(lengths, t_end))
        T = int(lengths.max())
        strokes = out[:, :T]
        strokes = strokes * (torch.arange(T, device=device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
        res = SampleResult(strokes, lengths, stopped, sampler.bias, text=full, text_mask=full_mask)
        if rec is not None:
            res.params = self.head.split(rec["raw"][:T].transpose(0, 1).contiguous())
            abk = rec["abk"][:T].transpose(0, 1)
            phi_bt = rec["phi"][:T].transpose(0, 1)
            onehot = F.one_hot(full, A).float() * full_mask.unsqueeze(-1).float()
            res.internals = {
                "phi": phi_bt,
                "alpha": abk[..., :K],
                "beta": abk[..., K : 2 * K],
                "kappa": abk[..., 2 * K :],
                "w": torch.bmm(phi_bt, onehot),
            }
        return res
