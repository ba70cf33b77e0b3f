"""The fast path of Graves' networks: the model of :mod:`handwriting.models.graves`, computed for speed.

:mod:`handwriting.models.graves` writes the model as the paper does — one LSTM step, one window step at a
time, differentiated by autograd (``forward_reference``).  This module computes the same function (the same
parameters, the same outputs, the same gradients; ``tests/test_graves.py`` checks it against the reference
to 1e-9 in float64) with far fewer Python steps and autograd nodes.  ``forward``, ``training_step`` and
``sample`` of both networks run this code.

Training and evaluation (:func:`prediction_forward`, :func:`synthesis_forward`)
------------------------------------------------------------------------------
* All input projections (x, the window vector, the layer below) are single big matmuls over the whole
  sequence.  The window enters the gates as ``φ · E`` with ``E = (W_w c_u)_u`` (a gather of weight
  columns), i.e. ``U`` characters instead of an ``A``-wide one-hot.
* The recurrences are custom autograd functions (:class:`_LSTMRecurrence`, :class:`_WindowRecurrence`)
  that step only ``h @ W_hh`` plus the gate (and window) arithmetic on preallocated buffers, save what
  backward needs, and run back-propagation through time by hand: the backward step loop only carries
  ``dh``, ``dc``, ``dκ``, ``dφ``; every weight gradient is one matmul over the whole sequence afterwards.
  Autograd therefore sees a handful of nodes, not thousands.  Graves' clipping of the gate derivatives
  happens inside that loop.
* Precision: with ``precision="bf16"`` (``"auto"``: bf16 where the hardware has native bf16 matmuls — CUDA,
  or CPUs with AVX-512-BF16/AMX — else fp32) every matmul runs in bf16 while the cell state, the window and
  the log-likelihood stay in fp32 (or the parameters' dtype).
* On CUDA, layers 2 … L of both networks run as cuDNN ``nn.LSTM`` calls instead (there Graves' clipping
  can only clamp the derivatives of the layer outputs).

Sampling (:func:`synthesis_step`, :func:`prediction_step`, :class:`StepSampler`)
-------------------------------------------------------------------------------
Layer n at step t needs the window of step t, which needs the point sampled at step t − 1, so sampling
steps all layers, batched, with one fused ``torch.lstm_cell`` per layer, weights packed once per call, and
all random numbers drawn up front.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..devices import bf16_matmul_supported

__all__ = [
    "resolve_precision",
    "matmul_dtype",
    "prediction_forward",
    "synthesis_forward",
    "StepSampler",
    "prediction_step_pack",
    "prediction_step",
    "synthesis_step_pack",
    "synthesis_step",
]


# ----------------------------------------------------------------------------------------------------------
# precision


def resolve_precision(precision: str, device: torch.device | str) -> torch.dtype:
    """``"fp32"`` / ``"bf16"`` / ``"auto"`` → the matmul dtype (auto: bf16 where it is native)."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if bf16_matmul_supported(device) else torch.float32
    raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', not {precision!r}")


def matmul_dtype(precision: str, device: torch.device | str, param_dtype: torch.dtype) -> torch.dtype:
    """The dtype the matmuls run in: bf16 if ``precision`` asks for it, else the parameters' own dtype."""
    dt = resolve_precision(precision, device)
    return param_dtype if dt == torch.float32 else dt


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
# the fused forward passes (training and evaluation)


def _layer_weights(lstm: nn.LSTM):
    return lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0


def _proj(inp: torch.Tensor, w: torch.Tensor, b: torch.Tensor, dt: torch.dtype) -> torch.Tensor:
    """``inp @ wᵀ + b`` over all leading dimensions at once (flattened), with the matmul in ``dt``."""
    flat = inp.reshape(-1, inp.shape[-1])
    if dt == flat.dtype:
        return torch.addmm(b, flat, w.t())
    return torch.addmm(b.to(dt), flat.to(dt), w.t().to(dt)).to(flat.dtype)


def _dropout(model: nn.Module, h: torch.Tensor) -> torch.Tensor:
    p = model.config.dropout
    return F.dropout(h, p, model.training) if p > 0 else h


def _clip_args(model: nn.Module) -> tuple:
    """The optional trailing argument of the recurrences: Graves' limit on the gate derivatives."""
    limit = model._clip_lstm
    return () if limit is None or not torch.is_grad_enabled() else (limit,)


def _clamp_grad(t: torch.Tensor, limit: float | None) -> torch.Tensor:
    if limit is not None and t.requires_grad:
        t.register_hook(lambda g: g.clamp(-limit, limit))
    return t


def _cudnn_layer(model, lstm: nn.LSTM, inp, h0, c0, dt):
    """One layer as a cuDNN ``nn.LSTM`` call (CUDA): Graves' clipping then acts on the layer's outputs."""
    fdt = inp.dtype
    with torch.autocast("cuda", dtype=dt, enabled=dt != torch.float32):
        hs, (hn, cn) = lstm(inp, (h0.unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous()))
    return _clamp_grad(hs.to(fdt), model._clip_lstm), hn[0].to(fdt), cn[0].to(fdt)


def _head_raw(model, outs: list[torch.Tensor], dt) -> torch.Tensor:
    """The head's raw outputs (T, B, 1 + 6M) from every layer's hidden states (Graves' skip connections)."""
    feats = torch.cat([_dropout(model, o) for o in outs], -1)
    lin = model.head.linear
    return _proj(feats, lin.weight, lin.bias, dt).view(*feats.shape[:-1], -1)


def prediction_forward(model, x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor):
    """``PredictionNetwork.forward``, fast: inputs ``x`` (B, T, 3), initial ``h0``, ``c0`` (L, B, H) →
    raw head outputs (T, B, 1 + 6M) and the lists of final ``h``, ``c`` per layer."""
    B, T, _ = x.shape
    cfg = model.config
    H = cfg.hidden
    lin = model.head.linear
    dt = matmul_dtype(cfg.precision, x.device, lin.weight.dtype)
    xt = x.transpose(0, 1).to(lin.weight.dtype)  # (T, B, 3)
    layers = []  # (hidden states, final h, final c) of every layer
    for n, lstm in enumerate(model.lstms):
        w_ih, w_hh, b_ih, b_hh = _layer_weights(lstm)
        inp = xt if not layers else torch.cat([xt, _dropout(model, layers[-1][0])], -1)
        if x.device.type == "cuda":
            layers.append(_cudnn_layer(model, lstm, inp, h0[n], c0[n], dt))
        else:
            gx = _proj(inp, w_ih, b_ih + b_hh, dt).view(T, B, 4 * H)
            hs, cn = _LSTMRecurrence.apply(gx, w_hh, h0[n], c0[n], dt, *_clip_args(model))
            layers.append((hs, hs[-1], cn))
    outs, hT, cT = (list(v) for v in zip(*layers))
    return _head_raw(model, outs, dt), hT, cT


def _char_gates(model, lstm: nn.LSTM, text: torch.Tensor) -> torch.Tensor:
    """E (B, U, 4H): the gate input of the window vector when it is the one-hot of each character."""
    A = model.config.alphabet_size
    return F.embedding(text, lstm.weight_ih_l0[:, 3 : 3 + A].t())


def synthesis_forward(model, x, text, mask_b, h0, c0, kappa0, phi0, want_w: bool):
    """``SynthesisNetwork.forward``, fast: inputs ``x`` (B, T, 3), text ids (B, U) and their bool mask,
    initial state ``h0``, ``c0`` (L, B, H), ``kappa0`` (B, K), ``phi0`` (B, U) → raw head outputs
    (T, B, 1 + 6M), lists of final ``h``, ``c`` per layer, φ (T, B, U), α‖β‖κ (T, B, 3K), and (when
    ``want_w``; always on CUDA) the window vectors w (T, B, A), else None."""
    cfg = model.config
    B, T, _ = x.shape
    H, A = cfg.hidden, cfg.alphabet_size
    device = x.device
    fdt = model.head.linear.weight.dtype
    dt = matmul_dtype(cfg.precision, device, fdt)
    mask = mask_b.to(fdt)
    xt = x.transpose(0, 1).to(fdt).contiguous()  # (T, B, 3)
    # layer 1 + window
    w_ih, w_hh, b_ih, b_hh = _layer_weights(model.lstms[0])
    gx = _proj(xt, w_ih[:, :3], b_ih + b_hh, dt).view(T, B, 4 * H)
    E1 = _char_gates(model, model.lstms[0], text)
    hs, phis, c1, abk = _WindowRecurrence.apply(
        gx, w_hh, E1, model.window.weight, model.window.bias, mask, h0[0], c0[0], kappa0, phi0,
        float(cfg.kappa_scale), dt, *_clip_args(model),
    )
    layers = [(hs, hs[-1], c1)]  # (hidden states, final h, final c) of every layer
    phi_bt = phis.transpose(0, 1)  # (B, T, U)
    w_seq = None
    if device.type == "cuda" or want_w:
        onehot = F.one_hot(text, A).to(fdt) * mask.unsqueeze(-1)
        w_seq = torch.bmm(phi_bt, onehot).transpose(0, 1)  # (T, B, A)
    for n in range(1, cfg.layers):
        lstm = model.lstms[n]
        w_ih, w_hh, b_ih, b_hh = _layer_weights(lstm)
        below = layers[-1][0]
        if device.type == "cuda":
            inp = torch.cat([xt, w_seq, _dropout(model, below)], -1)
            layers.append(_cudnn_layer(model, lstm, inp, h0[n], c0[n], dt))
        else:
            inp = torch.cat([xt, _dropout(model, below)], -1)
            w_xh = torch.cat([w_ih[:, :3], w_ih[:, 3 + A :]], 1)
            gx = _proj(inp, w_xh, b_ih + b_hh, dt).view(T, B, 4 * H)
            En = _char_gates(model, lstm, text)
            if dt == fdt:
                gw = torch.bmm(phi_bt, En)
            else:
                gw = torch.bmm(phi_bt.to(dt), En.to(dt)).to(fdt)
            gx = gx + gw.transpose(0, 1)
            hs, cn = _LSTMRecurrence.apply(gx, w_hh, h0[n], c0[n], dt, *_clip_args(model))
            layers.append((hs, hs[-1], cn))
    outs, hT, cT = (list(v) for v in zip(*layers))
    return _head_raw(model, outs, dt), hT, cT, phis, abk, w_seq


# ----------------------------------------------------------------------------------------------------------
# sampling: one step of every layer at a time


class StepSampler:
    """Pre-drawn random numbers + one-step sampling from raw head outputs (B, 1 + 6M).

    Draws the same thing as :func:`~handwriting.models.mdn.sample_mixture` (Gumbel-max for the component,
    a correlated Gaussian, a Bernoulli pen), with the bias applied to π and σ, in few tensor operations.
    ``lift_offset`` (B,) shifts each row's end-of-stroke logit (a primed hand's rate of pen lifts).
    """

    def __init__(self, B, M, steps, bias, generator, device, lo, hi, rho_max, lift_offset=None):
        n = max(int(steps), 1)
        u = torch.rand((n, B, M + 1), generator=generator, device=device).clamp_(1e-12, 1 - 1e-7)
        self.gumbel = (-torch.log(-torch.log(u[..., :M]))).unbind(0)
        # e = 1 iff u < sigmoid(eos_logit + offset) iff eos_logit > logit(u) - offset
        threshold = torch.logit(u[..., M:])
        if lift_offset is not None:  # (B,): added to each row's end-of-stroke logit
            threshold = threshold - lift_offset.to(threshold).view(1, B, 1)
        self.eos_threshold = threshold.unbind(0)  # (B, 1) each
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



def prediction_step_pack(model) -> dict:
    """The prediction network's weights in the layout :func:`prediction_step` uses (float32)."""
    return {
        "weights": [tuple(w.float() for w in _layer_weights(l)) for l in model.lstms],
        "w_head": model.head.linear.weight.float().t().contiguous(),
        "b_head": model.head.linear.bias.float(),
    }


def prediction_step(pk: dict, x, h: list, c: list) -> torch.Tensor:
    """One step of every layer (updates the ``h``/``c`` lists in place) → raw head output (B, 1 + 6M)."""
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(pk["weights"]):
        inp = x if k == 0 else torch.cat([x, h[k - 1]], 1)
        h[k], c[k] = torch.lstm_cell(inp, (h[k], c[k]), w_ih, w_hh, b_ih, b_hh)
    return torch.addmm(pk["b_head"], torch.cat(h, 1), pk["w_head"])


def synthesis_step_pack(model, text: torch.Tensor, mask_b: torch.Tensor) -> dict:
    """The synthesis network's weights and the text (B, U) in the layout :func:`synthesis_step` uses."""
    cfg = model.config
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
        "weights": [tuple(w.float() for w in _layer_weights(l)) for l in model.lstms],
        "w_win": model.window.weight.float().t().contiguous(),
        "b_win": model.window.bias.float(),
        "w_head": model.head.linear.weight.float().t().contiguous(),
        "b_head": model.head.linear.bias.float(),
        "pos": pos,
        "mask": mask_ext,
        "onehot": onehot,
        "end_index": lengths.view(B, 1, 1).long(),  # column of φ(t, U_b + 1)
        "K": cfg.window_mixtures,
        "scale": float(cfg.kappa_scale),
    }


def synthesis_step(pk: dict, x, h: list, c: list, kappa, w):
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
