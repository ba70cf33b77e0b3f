"""Graves' handwriting networks (Graves 2013, "Generating Sequences With Recurrent Neural Networks",
arXiv:1308.0850): the prediction network (§4) and the synthesis network with its soft window (§5).

This file is the model as the paper writes it, to be read top to bottom:

1. :class:`GravesConfig` — the sizes (Graves' defaults: 3 layers of 400 LSTM cells, 20 mixture components,
   10 window Gaussians);
2. :func:`lstm_cell` — one LSTM step (eqs. 7–11) and :func:`soft_window` — one step of the window (eqs. 46–51);
3. :class:`PredictionNetwork` and :class:`SynthesisNetwork` — the parameters, and ``forward_reference``: the
   network stepped through time one point at a time, topped by the mixture density head
   (:class:`~handwriting.models.mdn.MDNHead`, eqs. 17–22), and differentiated by autograd;
4. sampling (§5.3–5.5): the bias, priming and Graves' stopping rule.

``forward``, ``training_step`` and ``sample`` compute the same model with the fast path of
:mod:`handwriting.models.graves_fused` (whole-sequence matmuls, back-propagation through time written by
hand, bf16 matmuls where the hardware has them).  ``tests/test_graves.py`` checks that ``forward`` and
``forward_reference`` agree: the same outputs, and the same gradients to 1e-9 in float64.

The synthesis network
---------------------
``L`` stacked LSTM layers of ``H`` cells.  The input ``x_t`` goes to every layer (a skip connection), and
after layer 1 a window of ``K`` Gaussians reads the characters ``c_1 … c_U`` (one-hot vectors); Graves'
equation numbers on the right::

    (α̂, β̂, κ̂) = W h¹_t + b,   α = exp(α̂),   β = exp(β̂),   κ_t = κ_{t-1} + kappa_scale · exp(κ̂)   (48–51)
    φ(t, u) = Σ_k α_k exp(-β_k (κ_k - u)²)        u = 1 … U; padded characters get φ = 0        (46)
    w_t = Σ_u φ(t, u) c_u                                                                          (47)
    h¹_t = LSTM([x_t, w_{t-1}], h¹_{t-1}),   hⁿ_t = LSTM([x_t, w_t, hⁿ⁻¹_t], hⁿ_{t-1}) for n ≥ 2     (52–53)
    ŷ_t = b_y + Σ_n W_n hⁿ_t  →  mixture parameters (the output layer of §4, unchanged in §5)

So ``w_t`` feeds layers 2 … L at step t and layer 1 at step t + 1 (``w_0 = 0``, ``κ_0 = 0``); the output
layer reads the hidden layers ``h¹ … h^L`` only.  The prediction network is the same without the window.

Graves' eq. 51 has no scale on the κ increment; with ``kappa_scale = 1/25`` (≈ 1 / points per character
in IAM lines) a fresh network moves its window at about the pace of real handwriting, which makes the
alignment easier to learn (several implementations use a scale for the same reason).

Parameters (the ``state_dict``): layer n is ``lstms[n - 1]``, an ``nn.LSTM`` over ``[x (3), w (A)]`` for
n = 1 and over ``[x, w, hⁿ⁻¹]`` for n ≥ 2 (the prediction network has no ``w``); ``window`` is
``Linear(H, 3K)``; ``head.linear`` is a ``Linear`` over ``[h¹ … h^L]``.
Every sequence starts from the input ``(0, 0, 1)`` (a lifted pen), so the network predicts every point:
inputs ``[start, x_1 … x_{T-1}]``, targets ``x_1 … x_T``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..devices import bf16_matmul_supported
from ..strokes import Normalizer
from .base import Priming, WrittenRows, concat_texts
from .graves_fused import (
    StepSampler,
    prediction_forward,
    prediction_step,
    prediction_step_pack,
    resolve_precision,
    synthesis_forward,
    synthesis_step,
    synthesis_step_pack,
)
from .graves_sampling import (
    Prime,
    SampleResult,
    _padded_prime,
    _window_internals,
    drop_leading,
    shift_for_lifts,
    window_stop,
)
from .mdn import LOG_SIGMA_MAX, LOG_SIGMA_MIN, RHO_MAX, MDNHead, MixtureParams, mdn_nll

__all__ = [
    "GravesConfig",
    "GravesState",
    "GravesOutput",
    "Prime",
    "SampleResult",
    "PredictionNetwork",
    "SynthesisNetwork",
    "lstm_cell",
    "soft_window",
    "clip_derivative",
    "resolve_precision",
    "bf16_matmul_supported",
    "concat_texts",
    "window_stop",
    "drop_leading",
    "shift_for_lifts",
    "rehearsed_lift_offsets",
    "REHEARSAL_SHIFTS",
    "REHEARSAL_REPEATS",
    "REHEARSAL_SHARE",
    "sample_rows",
]


# ----------------------------------------------------------------------------------------------------------
# configuration and what forward returns


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
    precision: str = "auto"  # "auto" | "fp32" | "bf16": the matmul precision of forward (the fast path)

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


# ----------------------------------------------------------------------------------------------------------
# the building blocks, as Graves writes them


def lstm_cell(inp, h, c, lstm: nn.LSTM, clip: float | None = None):
    """One step of an LSTM layer (Graves eqs. 7–11) with the parameters of ``lstm`` → new ``(h, c)``.

    PyTorch's ``nn.LSTM`` layout: gates in the order (i, f, g, o), two bias vectors, and no peephole
    weights (Graves' cell also feeds ``c`` to the gates).  ``clip`` is Graves' limit on the derivatives of
    the gate pre-activations (§4; None: off).
    """
    gates = inp @ lstm.weight_ih_l0.t() + lstm.bias_ih_l0 + h @ lstm.weight_hh_l0.t() + lstm.bias_hh_l0
    gates = clip_derivative(gates, clip)
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # eqs. 7–9: input and forget gates, cell
    h = torch.sigmoid(o) * torch.tanh(c)  # eqs. 10–11: output gate, hidden state
    return h, c


def soft_window(h1, kappa, text_onehot, text_mask, window: nn.Linear, kappa_scale: float):
    """One step of the soft window (Graves eqs. 46–51): which characters the pen is writing now.

    ``h1`` (B, H) the first layer's output, ``kappa`` (B, K) the previous position κ_{t-1}, ``text_onehot``
    (B, U, A) the characters c_u, ``text_mask`` (B, U) 1 for real characters and 0 for padding.  Returns
    the window vector w_t (B, A), φ(t, u) (B, U), and α, β, κ_t (B, K).
    """
    alpha, beta, kappa_step = torch.exp(window(h1)).chunk(3, -1)  # eqs. 48–50, and exp(κ̂) of eq. 51
    kappa = kappa + kappa_scale * kappa_step  # eq. 51 (κ only moves forward)
    u = torch.arange(1, text_mask.shape[1] + 1, dtype=h1.dtype, device=h1.device)  # positions 1 … U
    phi = (alpha.unsqueeze(-1) * torch.exp(-beta.unsqueeze(-1) * (kappa.unsqueeze(-1) - u) ** 2)).sum(1)  # eq. 46
    phi = phi * text_mask  # padding gets no weight
    w = (phi.unsqueeze(-1) * text_onehot).sum(1)  # eq. 47
    return w, phi, alpha, beta, kappa


def clip_derivative(t: torch.Tensor, limit: float | None) -> torch.Tensor:
    """Graves' derivative clipping (§4): ``t`` unchanged, but back-propagation clamps the derivative of the
    loss with respect to ``t`` to ±``limit`` (None: off)."""
    if limit is not None and t.requires_grad:
        t.register_hook(lambda g: g.clamp(-limit, limit))
    return t


# ----------------------------------------------------------------------------------------------------------
# the networks


class _GravesBase(nn.Module):
    config: GravesConfig
    _clip_output: float | None = None
    _clip_lstm: float | None = None

    def set_gradient_clipping(self, output: float | None = None, lstm: float | None = None) -> None:
        """Graves' derivative clipping (§4), applied inside the backward pass: the derivatives w.r.t. the
        output layer's pre-activations are clamped to ±``output`` and those w.r.t. every LSTM gate
        pre-activation to ±``lstm`` (``None``: off); ``forward_reference`` clips the same way.  The
        trainer's ``clip="graves"`` calls this with the limits in the units of the loss it back-propagates."""
        self._clip_output = None if output is None else float(output)
        self._clip_lstm = None if lstm is None else float(lstm)

    @property
    def _dtype(self) -> torch.dtype:
        return self.head.linear.weight.dtype

    def _initial_hc(self, B: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.zeros(self.config.layers, B, self.config.hidden, device=device, dtype=self._dtype)
        return z, z.clone()

    def _params(self, raw: torch.Tensor) -> MixtureParams:
        """Raw head outputs (T, B, 1 + 6M) of the fast path → mixture parameters (B, T)."""
        return self.head.split(clip_derivative(raw, self._clip_output)).map(lambda t: t.transpose(0, 1))

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


def _config(config: GravesConfig | None, overrides: dict) -> GravesConfig:
    if config is None:
        return GravesConfig(**overrides)
    if overrides:
        raise TypeError("pass either a config or keyword overrides, not both")
    return config


class PredictionNetwork(_GravesBase):
    """Graves §4: unconditional handwriting prediction, ``L`` stacked LSTMs with skip connections + MDN head."""

    def __init__(self, config: GravesConfig | None = None, **overrides: Any):
        super().__init__()
        self.config = config = _config(config, overrides)
        H, L = config.hidden, config.layers
        self.lstms = nn.ModuleList([nn.LSTM(3 if n == 0 else 3 + H, H) for n in range(L)])
        self.head = MDNHead(L * H, config.mixtures, config.log_sigma_min, config.log_sigma_max, config.rho_max)

    def forward_reference(self, x: torch.Tensor, state: GravesState | None = None) -> GravesOutput:
        """The network as Graves writes it (eqs. 1–3), one point at a time; autograd differentiates it.

        The same function as :meth:`forward`, with the same derivative clipping, computed in the
        parameters' dtype and without dropout (Graves used none) — slowly: read this one, train with
        ``forward``.
        """
        _check_x(x)
        B, T, _ = x.shape
        h, c = self._initial_hc(B, x.device) if state is None else (state.h, state.c)
        h, c = list(h.unbind(0)), list(c.unbind(0))
        x = x.to(self._dtype)
        y_hat = []
        for t in range(T):
            for n, lstm in enumerate(self.lstms):
                inp = x[:, t] if n == 0 else torch.cat([x[:, t], h[n - 1]], 1)  # eqs. 1–2: x_t reaches every layer
                h[n], c[n] = lstm_cell(inp, h[n], c[n], lstm, self._clip_lstm)
            y_hat.append(clip_derivative(self.head.linear(torch.cat(h, 1)), self._clip_output))  # eq. 3: every layer
        params = self.head.split(torch.stack(y_hat, 1))  # eqs. 17–22
        return GravesOutput(params, GravesState(torch.stack(h), torch.stack(c)))

    def forward(self, x: torch.Tensor, state: GravesState | None = None) -> GravesOutput:
        """Network inputs ``x`` (B, T, 3) (already shifted: ``x_t`` predicts ``x_{t+1}``) → parameters (B, T).

        :meth:`forward_reference`, computed fast (:func:`~handwriting.models.graves_fused.prediction_forward`).
        """
        _check_x(x)
        h0, c0 = (state.h, state.c) if state is not None else self._initial_hc(x.shape[0], x.device)
        raw, hT, cT = prediction_forward(self, x, h0, c0)
        return GravesOutput(self._params(raw), GravesState(torch.stack(hT), torch.stack(cT)))

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
        pk = prediction_step_pack(self)
        sampler = StepSampler(n, M, steps, bias, generator, device, cfg.log_sigma_min, cfg.log_sigma_max, cfg.rho_max)
        h = [torch.zeros(n, H, device=device) for _ in range(L)]
        c = [torch.zeros(n, H, device=device) for _ in range(L)]
        x = _start_token(n, device)[:, 0]
        out = torch.zeros(n, steps, 3, device=device)
        raws = torch.zeros(steps, n, 1 + 6 * M, device=device) if internals else None
        for t in range(steps):
            raw = prediction_step(pk, x, h, c)
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
        self.config = config = _config(config, overrides)
        H, L, A, K = config.hidden, config.layers, config.alphabet_size, config.window_mixtures
        self.lstms = nn.ModuleList([nn.LSTM(3 + A if n == 0 else 3 + A + H, H) for n in range(L)])
        self.window = nn.Linear(H, 3 * K)
        self.head = MDNHead(L * H, config.mixtures, config.log_sigma_min, config.log_sigma_max, config.rho_max)
        with torch.no_grad():  # start with broad, weak windows (α ≈ 1, β ≈ exp(-1)): a gentle beginning
            self.window.bias.zero_()
            self.window.bias[K : 2 * K].fill_(-1.0)

    # -- training / evaluation ------------------------------------------------------------------------------

    def forward_reference(
        self,
        x: torch.Tensor,
        text: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        state: GravesState | None = None,
    ) -> GravesOutput:
        """The network as Graves writes it (eqs. 46–53), one point at a time; autograd differentiates it.

        The same function as :meth:`forward` (with ``internals=True``), with the same derivative clipping,
        computed in the parameters' dtype and without dropout (Graves used none) — slowly: read this one,
        train with ``forward``.
        """
        mask = self._check_inputs(x, text, text_mask).to(self._dtype)
        cfg = self.config
        B, T, _ = x.shape
        onehot = F.one_hot(text, cfg.alphabet_size).to(self._dtype)  # c_u
        if state is None:
            h, c = self._initial_hc(B, x.device)
            kappa = torch.zeros(B, cfg.window_mixtures, device=x.device, dtype=self._dtype)  # κ_0 = 0
            w = torch.zeros(B, cfg.alphabet_size, device=x.device, dtype=self._dtype)  # w_0 = 0
        else:
            h, c, kappa = state.h, state.c, state.kappa
            w = (state.phi.unsqueeze(-1) * onehot).sum(1)  # the window vector of the last step (eq. 47)
        h, c = list(h.unbind(0)), list(c.unbind(0))
        x = x.to(self._dtype)
        steps = []
        for t in range(T):
            h[0], c[0] = lstm_cell(torch.cat([x[:, t], w], 1), h[0], c[0], self.lstms[0], self._clip_lstm)  # eq. 52
            w, phi, alpha, beta, kappa = soft_window(h[0], kappa, onehot, mask, self.window, cfg.kappa_scale)
            for n in range(1, cfg.layers):  # eq. 53: the layers above read this step's window
                inp = torch.cat([x[:, t], w, h[n - 1]], 1)
                h[n], c[n] = lstm_cell(inp, h[n], c[n], self.lstms[n], self._clip_lstm)
            y_hat = clip_derivative(self.head.linear(torch.cat(h, 1)), self._clip_output)  # hidden layers only
            steps.append((y_hat, phi, alpha, beta, kappa, w))
        y_hat, phi, alpha, beta, kappa_t, w_t = (torch.stack(s, 1) for s in zip(*steps))
        internals = {"phi": phi, "alpha": alpha, "beta": beta, "kappa": kappa_t, "w": w_t}
        state = GravesState(torch.stack(h), torch.stack(c), kappa, phi[:, -1])
        return GravesOutput(self.head.split(y_hat), state, internals)  # eqs. 17–22

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
        :meth:`forward_reference`, computed fast (:func:`~handwriting.models.graves_fused.synthesis_forward`).
        """
        mask_b = self._check_inputs(x, text, text_mask)
        B, U, K = x.shape[0], text.shape[1], self.config.window_mixtures
        if state is None:
            h0, c0 = self._initial_hc(B, x.device)
            kappa0 = torch.zeros(B, K, device=x.device, dtype=self._dtype)
            phi0 = torch.zeros(B, U, device=x.device, dtype=self._dtype)
        else:
            h0, c0, kappa0, phi0 = state.h, state.c, state.kappa, state.phi
            if phi0 is None or phi0.shape != (B, U):
                raise ValueError("state.phi must be (B, U) over the same text")
        raw, hT, cT, phis, abk, w_seq = synthesis_forward(self, x, text, mask_b, h0, c0, kappa0, phi0, internals)
        new_state = GravesState(torch.stack(hT), torch.stack(cT), abk[-1, :, 2 * K :], phis[-1])
        extra = None
        if internals:
            extra = _window_internals(phis.transpose(0, 1), abk.transpose(0, 1), w_seq.transpose(0, 1), K)
        return GravesOutput(self._params(raw), new_state, extra)

    def training_step(self, batch) -> dict:
        out = self.forward(_shift_inputs(batch.x), batch.text, batch.text_mask)
        return self._nll_step(batch, out.params)

    def _check_inputs(self, x: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None) -> torch.Tensor:
        """Validate ``x`` and ``text``; return the text's bool mask (B, U)."""
        _check_x(x)
        mask_b = _text_mask(text, text_mask)
        if text.shape[0] != x.shape[0]:
            raise ValueError(f"x has {x.shape[0]} sequences but text has {text.shape[0]} rows")
        if int(text.max()) >= self.config.alphabet_size or int(text.min()) < 0:
            raise ValueError(f"character ids must lie in [0, alphabet_size={self.config.alphabet_size}); got {int(text.max())}")
        return mask_b

    # -- sampling (Graves §5.3–5.5) ---------------------------------------------------------------------------

    @torch.inference_mode()
    def prime_state(self, prime: Prime, text: torch.Tensor, text_mask: torch.Tensor, catch_up: bool = False):
        """Run the network over the prime strokes (teacher forcing) with the window over ``text`` (the
        concatenated text); rows stop at their own prime length.  Returns the step state and each row's
        last prime point (the first input of the continuation).  ``catch_up`` (what sampling does): a
        window left more than one character short of the prime's closing space is moved on to it."""
        _check_x(prime.x, "prime.x")
        B, Tp, _ = prime.x.shape
        device = prime.x.device
        x_mask = prime.x_mask.bool() if prime.x_mask is not None else torch.ones(B, Tp, dtype=torch.bool, device=device)
        plen = x_mask.sum(1)
        if bool((plen == 0).any()):
            raise ValueError("every prime sequence needs at least one point")
        pk = synthesis_step_pack(self, text, text_mask)
        cfg = self.config
        H, L, K, A = cfg.hidden, cfg.layers, cfg.window_mixtures, cfg.alphabet_size
        h = [torch.zeros(B, H, device=device) for _ in range(L)]
        c = [torch.zeros(B, H, device=device) for _ in range(L)]
        kappa = torch.zeros(B, K, device=device)
        w = torch.zeros(B, A, device=device)
        inputs = _shift_inputs(prime.x.float())
        phi = torch.zeros(B, text.shape[1] + 1, device=device)
        for t in range(int(plen.max())):
            active = (t < plen).view(B, 1)
            h_old, c_old, kappa_old, w_old = list(h), list(c), kappa, w
            raw, kappa, w, phi_t, *_ = synthesis_step(pk, inputs[:, t], h, c, kappa, w)
            phi = torch.where(active, phi_t[:, 0], phi)
            if not bool(active.all()):
                h = [torch.where(active, a, b) for a, b in zip(h, h_old)]
                c = [torch.where(active, a, b) for a, b in zip(c, c_old)]
                kappa = torch.where(active, kappa, kappa_old)
                w = torch.where(active, w, w_old)
        if catch_up:
            # the prime's ink is all written, so its text is too: a window left behind on it (the network misread
            # a hand it does not know) would write the prime's last letters again before the new text
            closing = (prime.text_mask if prime.text_mask is not None else prime.text != 0).sum(1).float()
            peak = phi.argmax(1).float() + 1  # the window's positions u are 1-based
            kappa = kappa + ((closing - peak) * (peak < closing - 1)).unsqueeze(1)
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
        lift_offset: float | torch.Tensor | None = None,
    ) -> SampleResult:
        """Write ``text`` (B, U) (ids, 0 = padding) — all rows at once.

        Each row stops when its window has passed its last character (Graves' rule, :func:`window_stop`)
        or after ``points_per_char`` × its number of characters (and never after ``max_steps``).  ``bias``
        is a float or one value per row (Graves §5.4).  ``prime`` continues a real sequence in its style
        (§5.5): the window runs over the prime's text followed by ``text`` (from the prime's end: ``catch_up`` of
        :meth:`prime_state`); strokes the network ends before its window reaches ``text`` finish the prime (a hand
        that dots and crosses after the word does so there) and are left out of the row (:func:`drop_leading`),
        since the prime is not on the page to receive them.  ``lift_offset`` (one value or one per row) is added to
        the end-of-stroke logit: > 0 lifts the pen more often, < 0 less (:meth:`rehearse_lifts` finds the one of a
        prime's hand).  ``internals=True`` also returns
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
            (h, c, kappa, w), x = self.prime_state(prime, full, full_mask, catch_up=True)
            first_new = pmask.sum(1)  # where each row's own text begins in `full`
            on_text = torch.zeros(B, dtype=torch.bool, device=device)
        else:
            full, full_mask = text, mask_b
            h = [torch.zeros(B, H, device=device) for _ in range(L)]
            c = [torch.zeros(B, H, device=device) for _ in range(L)]
            kappa = torch.zeros(B, K, device=device)
            w = torch.zeros(B, A, device=device)
            x = _start_token(B, device)[:, 0]
        pk = synthesis_step_pack(self, full, full_mask)
        U1 = full.shape[1] + 1
        sampler = StepSampler(B, M, steps, bias, generator, device, cfg.log_sigma_min, cfg.log_sigma_max, cfg.rho_max,
                              lift_offset=None if lift_offset is None else torch.as_tensor(lift_offset, device=device).expand(B))
        out = torch.zeros(B, steps, 3, device=device)
        lengths = torch.zeros(B, dtype=torch.long, device=device)
        lead = torch.zeros(B, dtype=torch.long, device=device)  # primed: points of strokes that finish the prime
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
            raw, kappa, w, phi, phi_raw, alpha, beta = synthesis_step(pk, x, h, c, kappa, w)
            x = sampler(raw, t)
            out_l[t].copy_(x)
            if prime is not None:
                # a stroke ended before the window reaches the new text finishes the prime (its late dots and crosses)
                on_text |= phi.view(B, -1)[:, :-1].argmax(1) >= first_new
                lead.masked_fill_(~on_text & (x[:, 2] > 0.5), t + 1)
            if rec is not None:
                rec["raw"][t] = raw
                rec["phi"][t] = phi[:, 0, :-1]
                rec["abk"][t] = torch.cat([alpha, beta, kappa], 1)
            if stop:
                fired = window_stop(phi.view(B, -1), phi_raw.gather(2, end_index).view(B))
                new = fired & ~done
                # x_t was drawn by a window already past the last character: where it begins a new stroke it
                # belongs to no letter (it would be a stray dot after the text), so the row ends before it
                lifted = out_l[t - 1][:, 2] > 0.5 if t > 0 else torch.zeros_like(new)
                lengths.masked_fill_(new, t + 1)
                lengths.masked_fill_(new & lifted, t)
                stopped |= new
                done |= new
            new = guard_hit[t] & ~done
            lengths.masked_fill_(new, t + 1)
            done |= new
            if (t + 1) % check_every == 0 and bool(done.all()):
                t_end = t + 1
                break
        lengths = torch.where(done, lengths, torch.full_like(lengths, t_end))
        if bool(lead.any()):
            out, lengths, rec = drop_leading(out, lengths, lead, rec)
        T = int(lengths.max())
        strokes = out[:, :T]
        strokes = strokes * (torch.arange(T, device=device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
        res = SampleResult(strokes, lengths, stopped, sampler.bias, text=full, text_mask=full_mask)
        if rec is not None:
            res.params = self.head.split(rec["raw"][:T].transpose(0, 1).contiguous())
            phi_bt = rec["phi"][:T].transpose(0, 1)
            onehot = F.one_hot(full, A).float() * full_mask.unsqueeze(-1).float()
            res.internals = _window_internals(phi_bt, rec["abk"][:T].transpose(0, 1), torch.bmm(phi_bt, onehot), K)
        return res

    @torch.inference_mode()
    def rehearse_lifts(self, prime: Prime, lines: Prime, bias: float, generator: torch.Generator | None = None) -> float:
        """The shift of the end-of-stroke logit at which the network, primed with ``prime`` (one row), lifts the
        pen as often as the prime's hand did in ``lines`` (rows of that hand's ink, each with its own text; the
        prime itself can be one).  The network writes every line's text after the prime at every shift of
        :data:`REHEARSAL_SHIFTS`, :data:`REHEARSAL_REPEATS` times, at ``bias``, and :func:`shift_for_lifts` reads
        the shift off its lifts.  A rate of lifts is a property of a hand *and* of its letters: rehearsing the
        hand's own texts compares the two on the same letters, and writing freely (not teacher-forced) measures
        what sampling will do."""
        S, R, J = len(REHEARSAL_SHIFTS), REHEARSAL_REPEATS, lines.x.shape[0]
        n = S * R * J
        shifts = torch.tensor(REHEARSAL_SHIFTS, device=self.device).repeat_interleave(J).repeat(R)  # (R, S, J) order
        text = lines.text.repeat(S * R, 1)
        many = Prime(prime.x.expand(n, -1, -1), prime.text.expand(n, -1),
                     None if prime.x_mask is None else prime.x_mask.expand(n, -1),
                     None if prime.text_mask is None else prime.text_mask.expand(n, -1))
        res = self.sample(text, lines.text_mask.repeat(S * R, 1) if lines.text_mask is not None else None, bias=bias,
                          generator=generator, prime=many, lift_offset=shifts)
        keep = torch.arange(res.strokes.shape[1], device=self.device).unsqueeze(0) < res.lengths.unsqueeze(1)
        written = (res.strokes[..., 2] * keep).sum(1).view(R, S, J).sum((0, 2)) / R
        mask = lines.x_mask if lines.x_mask is not None else torch.ones(lines.x.shape[:2], dtype=torch.bool, device=self.device)
        hand = float((lines.x[..., 2] * mask).sum())
        return shift_for_lifts(REHEARSAL_SHIFTS, written.tolist(), hand)

    def write_rows(self, text_ids, text_mask, bias, generator, prime: Priming | None = None, internals: bool = False,
                   max_steps: int | None = None) -> WrittenRows:
        """The writing interface (:class:`~handwriting.models.base.TextWriter`) over :meth:`sample`
        (:func:`sample_rows`); primed, each row's rate of pen lifts moves towards the prime's hand's
        (:func:`rehearsed_lift_offsets`)."""
        shift = None if prime is None else rehearsed_lift_offsets(self, prime, bias, generator)
        return sample_rows(self, text_ids, text_mask, bias, generator, prime, internals, max_steps, lift_offset=shift)


#: the shifts of the end-of-stroke logit a primed network rehearses at (:meth:`SynthesisNetwork.rehearse_lifts`)
REHEARSAL_SHIFTS = (-1.5, -0.5, 0.5, 1.5, 2.5)
#: how often it writes each of the hand's lines at each shift
REHEARSAL_REPEATS = 2
#: the share of the rehearsed shift that sampling takes: matching a hand's rate of lifts in full costs legibility
REHEARSAL_SHARE = 0.5


def rehearsed_lift_offsets(model: SynthesisNetwork, prime: Priming, bias: Sequence[float], generator) -> torch.Tensor:
    """Per row, the shift of the end-of-stroke logit that writing after the writing interface's ``prime`` takes:
    :data:`REHEARSAL_SHARE` of :meth:`SynthesisNetwork.rehearse_lifts` at the row's bias (once per distinct bias),
    over the prime's own line and its further lines (``prime.more``).  The rehearsal
    draws from its own generator, seeded from ``generator``'s state without advancing it: the writing then draws
    the same random numbers as without a rehearsal."""
    device = model.device
    normalizer = getattr(model, "normalizer", None) or Normalizer()
    p = Prime(torch.from_numpy(normalizer.normalize(prime.offsets))[None].to(device), prime.text_ids[None].to(device))
    own = [(prime.offsets, prime.text_ids[:-1])]  # the prime's text ends with the space before the new text
    lines = _padded_prime([normalizer.normalize(o) for o, _ in own + list(prime.more)],
                          [t for _, t in own + list(prime.more)], device)
    seed = None
    if generator is not None:
        clone = torch.Generator(device=generator.device)
        clone.set_state(generator.get_state())
        seed = int(torch.randint(0, 2**62, (1,), generator=clone, device=generator.device))
    shifts = {}
    for k, b in enumerate(sorted(set(float(v) for v in bias))):
        g = None if seed is None else torch.Generator(device=device).manual_seed(seed + k)
        shifts[b] = REHEARSAL_SHARE * model.rehearse_lifts(p, lines, b, g)
    return torch.tensor([shifts[float(v)] for v in bias], dtype=torch.float32, device=device)


def sample_rows(model, text_ids, text_mask, bias, generator, prime: Priming | None = None, internals: bool = False,
                max_steps: int | None = None, lift_offset: torch.Tensor | None = None) -> WrittenRows:
    """:meth:`~handwriting.models.base.TextWriter.write_rows` for a model whose ``sample`` draws normalised
    offsets into a :class:`SampleResult` (the synthesis network, the MDN transformer): the prime goes in
    normalised with ``model.normalizer`` (none: identity) and the rows come out denormalised with it; the
    internals are cut to each row's points (φ also to the characters the row's window ran over).
    ``lift_offset`` goes to ``sample`` where given (the synthesis network's)."""
    device = next(model.parameters()).device
    normalizer = getattr(model, "normalizer", None) or Normalizer()
    B = text_ids.shape[0]
    primed = None
    if prime is not None:
        x = torch.from_numpy(normalizer.normalize(prime.offsets))[None].expand(B, -1, -1).to(device)
        primed = Prime(x=x.contiguous(), text=prime.text_ids[None].expand(B, -1).to(device).contiguous())
    res = model.sample(
        text=text_ids, text_mask=text_mask, bias=torch.tensor(list(bias), dtype=torch.float32, device=device),
        generator=generator, max_steps=max_steps, internals=internals, prime=primed,
        **({} if lift_offset is None else {"lift_offset": lift_offset}),
    )  # fmt: skip
    seqs = [normalizer.denormalize(s) for s in res.sequences()]
    stopped = [bool(s) for s in res.stopped.tolist()]
    if not internals:
        return WrittenRows(seqs, stopped)
    extra = []
    params = res.biased_params()
    chars = res.text_mask.sum(1).tolist()
    for r in range(B):
        n = len(seqs[r])
        d: dict[str, Any] = {}
        for k, v in res.internals.items():
            a = v[r, :n].detach().float().cpu().numpy()
            d[k] = a[:, : int(chars[r])] if k == "phi" else a
        if params is not None:
            d["params"] = params.map(lambda t: t[r, :n].detach().cpu())
            d["pi"] = torch.softmax(params.pi_logits[r, :n].float(), -1).cpu().numpy()
            d["eos"] = torch.sigmoid(params.eos_logit[r, :n].float()).cpu().numpy()
        extra.append(d)
    return WrittenRows(seqs, stopped, extra)


# ----------------------------------------------------------------------------------------------------------
# small helpers


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


def _resolve_generator(generator, seed, device):
    if generator is None and seed is not None:
        generator = torch.Generator(device=device)
        generator.manual_seed(int(seed))
    return generator
