"""Mixture density output for pen offsets: bivariate Gaussians for ``(dx, dy)`` plus a Bernoulli end of stroke.

The maths follows Graves (2013, arXiv:1308.0850, §4.1, eqs. 18–26).  For one time step the network emits
``1 + 6M`` numbers; they become

* ``eos_logit`` — the logit of the end-of-stroke probability, ``e = sigmoid(eos_logit)``.  Graves writes
  ``e = 1 / (1 + exp(ê))``, i.e. ``eos_logit = -ê``: the same family, only the sign of the raw output differs;
* ``pi_logits`` — ``π = softmax(π̂)``;
* ``mu`` — ``μ = μ̂``;
* ``log_sigma`` — ``log σ = σ̂``, softly bounded to ``[log_sigma_min, log_sigma_max]`` so that a collapsing
  Gaussian cannot drive the loss to ``-inf`` (the bound is the identity well inside the range);
* ``rho`` — ``ρ = rho_max · tanh(ρ̂)`` with ``rho_max = 1 - 1e-4`` so ``1 - ρ²`` stays away from 0.

:func:`mdn_nll` evaluates ``-log Σ_j π_j N(x | μ_j, σ_j, ρ_j) - log Bernoulli(eos | e)`` entirely in log
space in float32 (``logsumexp`` over the mixture, the closed-form log density written with ``log σ`` and
``log(1 - ρ²)``, binary cross-entropy with logits for the pen) — no additive epsilons anywhere.

:func:`sample_mixture` draws one point per batch row, with Graves' sampling bias (§5.4) applied at
sampling time only: ``σ = exp(log σ̂ - b)`` and ``π = softmax(π̂ · (1 + b))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "MixtureParams",
    "MDNHead",
    "soft_clamp",
    "mdn_nll",
    "mixture_log_density",
    "sample_mixture",
    "LOG_SIGMA_MIN",
    "LOG_SIGMA_MAX",
    "RHO_MAX",
]

LOG_SIGMA_MIN = -7.0  # σ ≥ 9e-4 in normalised units
LOG_SIGMA_MAX = 4.0  # σ ≤ 55 in normalised units
RHO_MAX = 1.0 - 1e-4
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class MixtureParams:
    """Mixture parameters for any leading shape ``S`` (e.g. ``(B, T)``, or ``(B,)`` for one step).

    pi_logits ``S+(M,)``, mu ``S+(M, 2)``, log_sigma ``S+(M, 2)``, rho ``S+(M,)``, eos_logit ``S``.
    All transforms except the softmax over ``pi_logits`` are already applied.
    """

    pi_logits: torch.Tensor
    mu: torch.Tensor
    log_sigma: torch.Tensor
    rho: torch.Tensor
    eos_logit: torch.Tensor

    # ---- convenient views ------------------------------------------------------------------------------
    @property
    def shape(self) -> torch.Size:
        return self.eos_logit.shape

    @property
    def num_mixtures(self) -> int:
        return self.pi_logits.shape[-1]

    @property
    def pi(self) -> torch.Tensor:
        return torch.softmax(self.pi_logits.float(), dim=-1)

    @property
    def sigma(self) -> torch.Tensor:
        return self.log_sigma.float().exp()

    @property
    def eos_prob(self) -> torch.Tensor:
        return torch.sigmoid(self.eos_logit.float())

    def map(self, fn) -> "MixtureParams":
        """Apply ``fn`` to every tensor (e.g. ``lambda t: t[:, 5]`` or ``torch.Tensor.detach``)."""
        return MixtureParams(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def __getitem__(self, index) -> "MixtureParams":
        """Index the leading dimensions, e.g. ``params[0]`` (first sequence) or ``params[:, t]``."""
        return self.map(lambda t: t[index])

    def detach(self) -> "MixtureParams":
        return self.map(torch.Tensor.detach)

    def float(self) -> "MixtureParams":
        return self.map(torch.Tensor.float)

    def to(self, *args, **kwargs) -> "MixtureParams":
        return self.map(lambda t: t.to(*args, **kwargs))

    def cpu(self) -> "MixtureParams":
        return self.map(torch.Tensor.cpu)

    @staticmethod
    def cat(items: list["MixtureParams"], dim: int = 0) -> "MixtureParams":
        return MixtureParams(**{f.name: torch.cat([getattr(p, f.name) for p in items], dim) for f in fields(MixtureParams)})

    @staticmethod
    def stack(items: list["MixtureParams"], dim: int = 0) -> "MixtureParams":
        return MixtureParams(
            **{f.name: torch.stack([getattr(p, f.name) for p in items], dim) for f in fields(MixtureParams)}
        )


def soft_clamp(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Smoothly confine ``x`` to ``(low, high)``: ``low + softplus(x - low) - softplus(x - high)``.

    It is the identity (to within ``exp(-distance)``) well inside the range, has slope in ``(0, 1)`` and
    never produces inf/NaN.
    """
    x = x.clamp(low - 30.0, high + 30.0)  # beyond this the softplus terms are saturated to < 1e-13
    return (low + F.softplus(x - low) - F.softplus(x - high)).clamp(low, high)


def split_raw(
    raw: torch.Tensor,
    num_mixtures: int,
    log_sigma_min: float = LOG_SIGMA_MIN,
    log_sigma_max: float = LOG_SIGMA_MAX,
    rho_max: float = RHO_MAX,
) -> MixtureParams:
    """Turn raw ``(..., 1 + 6M)`` outputs into :class:`MixtureParams`.

    Layout of the last dimension: ``[eos | π̂ (M) | μ̂ (2M: x then y) | σ̂ (2M) | ρ̂ (M)]``.
    """
    M = num_mixtures
    if raw.shape[-1] != 1 + 6 * M:
        raise ValueError(f"expected a last dimension of 1 + 6*{M} = {1 + 6 * M}, got {raw.shape[-1]}")
    lead = raw.shape[:-1]
    eos = raw[..., 0]
    pi = raw[..., 1 : 1 + M]
    mu = raw[..., 1 + M : 1 + 3 * M].reshape(*lead, 2, M).transpose(-1, -2)
    ls = raw[..., 1 + 3 * M : 1 + 5 * M].reshape(*lead, 2, M).transpose(-1, -2)
    rho = raw[..., 1 + 5 * M :]
    return MixtureParams(
        pi_logits=pi,
        mu=mu,
        log_sigma=soft_clamp(ls, log_sigma_min, log_sigma_max),
        rho=rho_max * torch.tanh(rho),
        eos_logit=eos,
    )


class MDNHead(nn.Module):
    """``Linear(in_features, 1 + 6M)`` followed by Graves' output transforms (see the module docstring)."""

    def __init__(
        self,
        in_features: int,
        num_mixtures: int,
        log_sigma_min: float = LOG_SIGMA_MIN,
        log_sigma_max: float = LOG_SIGMA_MAX,
        rho_max: float = RHO_MAX,
    ):
        super().__init__()
        if not log_sigma_min < log_sigma_max:
            raise ValueError("log_sigma_min must be below log_sigma_max")
        if not 0 < rho_max < 1:
            raise ValueError("rho_max must lie in (0, 1)")
        self.in_features = in_features
        self.num_mixtures = num_mixtures
        self.log_sigma_min = float(log_sigma_min)
        self.log_sigma_max = float(log_sigma_max)
        self.rho_max = float(rho_max)
        self.linear = nn.Linear(in_features, 1 + 6 * num_mixtures)

    @property
    def out_features(self) -> int:
        return 1 + 6 * self.num_mixtures

    def split(self, raw: torch.Tensor) -> MixtureParams:
        return split_raw(raw, self.num_mixtures, self.log_sigma_min, self.log_sigma_max, self.rho_max)

    def forward(self, h: torch.Tensor) -> MixtureParams:
        return self.split(self.linear(h))

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_mixtures={self.num_mixtures}, "
            f"log_sigma=[{self.log_sigma_min}, {self.log_sigma_max}], rho_max={self.rho_max}"
        )


def _loss_dtype(params: MixtureParams) -> torch.dtype:
    """The likelihood is computed in float32 at least (bf16/fp16 outputs are upcast: their rounding would
    swamp the log-density), and in float64 for float64 outputs, so that a float64 check is float64 throughout."""
    return torch.promote_types(params.mu.dtype, torch.float32)


def _component_log_density(params: MixtureParams, xy: torch.Tensor) -> torch.Tensor:
    """``log N(xy | μ_j, σ_j, ρ_j)`` for every component: xy ``S+(2,)`` → ``S+(M,)`` (float32 or float64)."""
    dt = _loss_dtype(params)
    mu = params.mu.to(dt)
    log_sigma = params.log_sigma.to(dt)
    rho = params.rho.to(dt)
    d = (xy.to(dt).unsqueeze(-2) - mu) * torch.exp(-log_sigma)  # standardised offsets, S+(M,2)
    d1, d2 = d[..., 0], d[..., 1]
    one_minus_rho2 = (1.0 - rho) * (1.0 + rho)  # accurate near |ρ| = 1, unlike 1 - ρ²
    # (d1² + d2² - 2ρ d1 d2) / (1 - ρ²) written without the cancellation that the textbook form suffers
    # on the ridge d1 ≈ ±d2 when |ρ| → 1
    e = d1 - rho * d2
    z = d2 * d2 + e * e / one_minus_rho2
    return -_LOG_2PI - log_sigma.sum(-1) - 0.5 * torch.log(one_minus_rho2) - 0.5 * z


def mixture_log_density(params: MixtureParams, xy: torch.Tensor) -> torch.Tensor:
    """``log Σ_j π_j N(xy | μ_j, σ_j, ρ_j)`` (pen offsets only), float32 (float64 for float64 params);
    broadcasts ``xy`` ``S'+(2,)``.

    Handy for drawing the predicted next-point density over a grid (Graves' figures 10 and 14).
    """
    log_pi = torch.log_softmax(params.pi_logits.to(_loss_dtype(params)), dim=-1)
    return torch.logsumexp(log_pi + _component_log_density(params, xy), dim=-1)


def mdn_nll(params: MixtureParams, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-step negative log-likelihood (nats) of ``target`` ``S+(3,)`` = (dx, dy, eos) under ``params``.

    Returns a float32 tensor (float64 for float64 params) of shape ``S``; where ``mask`` (bool, shape ``S``) is False the value is 0
    (computed with ``torch.where``, so a garbage padded step can never leak NaN into the sum or the grads).
    """
    target = target.to(_loss_dtype(params))
    if mask is not None:  # padded targets may hold anything (even NaN): keep them out of the gradients too
        target = torch.where(mask.unsqueeze(-1), target, torch.zeros((), dtype=target.dtype, device=target.device))
    nll = -mixture_log_density(params, target[..., :2])
    nll = nll + F.binary_cross_entropy_with_logits(params.eos_logit.to(target.dtype), target[..., 2], reduction="none")
    if mask is not None:
        nll = torch.where(mask, nll, torch.zeros((), dtype=nll.dtype, device=nll.device))
    return nll


def sample_mixture(
    params: MixtureParams,
    bias: float | torch.Tensor = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one ``(dx, dy, eos)`` per row from ``params`` of leading shape ``(B,)`` → ``(B, 3)`` float32.

    ``bias`` (a float, or a ``(B,)`` tensor for one bias per row) sharpens the distribution at sampling
    time only (Graves §5.4): ``π = softmax(π̂ (1 + b))`` and ``σ = exp(log σ̂ - b)``.  The end-of-stroke bit
    is drawn from ``Bernoulli(sigmoid(eos_logit))`` unchanged.  Vectorised over the batch.
    """
    if params.eos_logit.dim() != 1:
        raise ValueError(f"sample_mixture expects parameters of one step, shape (B,), got {tuple(params.shape)}")
    B = params.eos_logit.shape[0]
    device = params.eos_logit.device
    b = torch.as_tensor(bias, dtype=torch.float32, device=device)
    if b.dim() == 1:
        b = b.unsqueeze(-1)  # (B, 1)
    logits = params.pi_logits.float() * (1.0 + b)
    # Gumbel-max: argmax(logits + G) is a draw from softmax(logits)
    u = torch.rand(logits.shape, generator=generator, device=device).clamp_(min=1e-20, max=1.0 - 1e-7)
    comp = torch.argmax(logits - torch.log(-torch.log(u)), dim=-1)  # (B,)
    idx = comp.view(B, 1, 1).expand(B, 1, 2)
    mu = params.mu.float().gather(1, idx).squeeze(1)  # (B, 2)
    log_sigma = params.log_sigma.float().gather(1, idx).squeeze(1)
    rho = params.rho.float().gather(1, comp.view(B, 1)).squeeze(1)
    sigma = torch.exp(log_sigma - b.view(-1, 1) if b.dim() else log_sigma - b)
    z = torch.randn((B, 2), generator=generator, device=device)
    dx = mu[:, 0] + sigma[:, 0] * z[:, 0]
    dy = mu[:, 1] + sigma[:, 1] * (rho * z[:, 0] + torch.sqrt((1.0 - rho) * (1.0 + rho)) * z[:, 1])
    e = torch.rand((B,), generator=generator, device=device) < torch.sigmoid(params.eos_logit.float())
    return torch.stack([dx, dy, e.float()], dim=-1)
